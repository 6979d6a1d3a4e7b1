"""Fitting a mapping from the models' own states: :func:`fit_affine` (least squares over
:func:`paired_states`).

Apart from :mod:`circuits.patchscopes.mappings` because fitting runs the models
(:mod:`circuits.patchscopes.core`) while ``core`` applies mappings: with both halves in one module
the two imported each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from circuits.patchscopes.core import _pad, _pad_id, check_layer, encode_prompt, residual_stream
from circuits.patchscopes.errors import PatchscopeError
from circuits.patchscopes.mappings import Affine

__all__ = ["fit_affine", "paired_states"]


def paired_states(
    model_a: Any,
    layer_a: int,
    model_b: Any,
    layer_b: int,
    prompts: Sequence[Any],
    *,
    tokenizer_a: Any = None,
    tokenizer_b: Any = None,
    skip_first: bool = True,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states ``(X [N, d_a], Y [N, d_b])`` of every token of ``prompts``: ``X`` at
    ``layer_a`` of ``model_a`` and ``Y`` at ``layer_b`` of ``model_b``, same prompt, same
    position. ``skip_first`` drops position 0 (the BOS token, whose state is an outlier).
    Both models must split each prompt into the same number of tokens."""
    check_layer(model_a, layer_a, "layer_a")
    check_layer(model_b, layer_b, "layer_b")
    if not prompts:
        raise PatchscopeError("fitting a mapping needs at least one prompt")
    ids_a = [encode_prompt(model_a, p, tokenizer_a) for p in prompts]
    ids_b = (
        ids_a
        if model_b is model_a and tokenizer_b is None
        else [encode_prompt(model_b, p, tokenizer_b) for p in prompts]
    )
    for i, (a, b) in enumerate(zip(ids_a, ids_b, strict=True)):
        if len(a) != len(b):
            raise PatchscopeError(
                f"prompt {i} has {len(a)} tokens for the source model but {len(b)} for the "
                "target model; an affine map is fitted position by position, so both "
                "tokenizers must split the prompts alike"
            )
    first = 1 if skip_first else 0
    xs, ys = [], []
    for start in range(0, len(prompts), batch_size):
        chunk_a, chunk_b = ids_a[start : start + batch_size], ids_b[start : start + batch_size]
        for model, layer, chunk, tok, out in (
            (model_a, layer_a, chunk_a, tokenizer_a, xs),
            (model_b, layer_b, chunk_b, tokenizer_b, ys),
        ):
            device = next(iter(model.parameters())).device
            tokens, mask = _pad(chunk, _pad_id(model, tok), device)
            states, _ = residual_stream(model, tokens, mask, [layer])
            keep = mask.bool().clone()
            keep[:, :first] = False
            out.append(states[layer][keep].to(torch.float64).cpu())
    return torch.cat(xs), torch.cat(ys)


def fit_affine(
    model_a: Any,
    layer_a: int,
    model_b: Any = None,
    layer_b: int | None = None,
    prompts: Sequence[Any] = (),
    *,
    tokenizer_a: Any = None,
    tokenizer_b: Any = None,
    ridge: float = 0.0,
    skip_first: bool = True,
    batch_size: int = 64,
) -> Affine:
    """Least-squares affine map from ``layer_a`` of ``model_a`` to ``layer_b`` of ``model_b``
    (default: the same model's last layer, ``n_layers``), fitted on every token of ``prompts``
    (position 0 skipped by default): ``min_{A,b} Σ ‖A h_a + b − h_b‖²`` solved in float64 with
    ``torch.linalg.lstsq``. ``ridge > 0`` adds ``ridge·‖A‖²`` (the bias is not penalised).

    Raises:
        PatchscopeError: a layer out of range, no prompts, prompts tokenised to different
            lengths by the two models, or fewer samples than ``d_a + 1`` without ``ridge``.
    """
    model_b = model_a if model_b is None else model_b
    layer_b = model_b.cfg.n_layers if layer_b is None else layer_b
    x, y = paired_states(
        model_a,
        layer_a,
        model_b,
        layer_b,
        prompts,
        tokenizer_a=tokenizer_a,
        tokenizer_b=tokenizer_b,
        skip_first=skip_first,
        batch_size=batch_size,
    )
    n, d_a = x.shape
    if ridge < 0:
        raise PatchscopeError(f"ridge must be ≥ 0, got {ridge}")
    if ridge == 0 and n < d_a + 1:
        raise PatchscopeError(
            f"{n} token states are too few to fit a {d_a}+1-parameter affine map per output; "
            f"give more prompts (at least {d_a + 1} tokens) or ridge > 0"
        )
    design = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    target = y
    if ridge > 0:
        reg = torch.zeros(d_a, d_a + 1, dtype=torch.float64)
        reg[:, :d_a] = torch.eye(d_a, dtype=torch.float64) * ridge**0.5
        design = torch.cat([design, reg])
        target = torch.cat([y, torch.zeros(d_a, y.shape[1], dtype=torch.float64)])
    solution = torch.linalg.lstsq(design, target, driver="gelsd").solution  # [d_a + 1, d_b]
    weight, bias = solution[:d_a].T.contiguous(), solution[d_a].contiguous()
    pred = x @ weight.T + bias
    resid = ((pred - y) ** 2).sum()
    total = ((y - y.mean(0)) ** 2).sum()
    r2 = float(1 - resid / total) if float(total) > 0 else float("nan")
    return Affine(
        weight,
        bias,
        fit={
            "layer_a": layer_a,
            "layer_b": layer_b,
            "cross_model": model_b is not model_a,
            "n_samples": n,
            "n_prompts": len(prompts),
            "ridge": ridge,
            "r2": r2,
            "d_in": d_a,
            "d_out": int(y.shape[1]),
        },
        name=f"affine {layer_a}->{layer_b}",
    )
