"""Mappings applied to a source hidden state before it is patched into the target.

A :class:`Mapping` turns ``[n, d_in]`` states into ``[n, d_out]`` ones and declares its sizes
(``None`` = any), so that a mapping that does not fit the source or target model is refused
before any forward pass. Three kinds:

- :class:`Identity`: the state as it is (source and target hidden sizes must be equal);
- :class:`Affine`: ``h ↦ A h + b``, fitted by least squares with :func:`fit_affine` from layer
  ``ℓ`` of one model to layer ``ℓ'`` of the same or another model (Patchscopes' and the tuned
  lens' learned map: ``h_last ≈ A h_ℓ + b``);
- :class:`FunctionMapping`: any callable, with optionally declared sizes.

Layers follow :mod:`circuits.patchscopes.core`: ``ℓ`` in ``[0, n_layers]`` is the residual
stream before block ``ℓ``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from circuits.patchscopes.core import (
    PatchscopeError,
    _pad,
    _pad_id,
    check_layer,
    encode_prompt,
    residual_stream,
)

__all__ = [
    "Affine",
    "FunctionMapping",
    "Identity",
    "Mapping",
    "as_mapping",
    "fit_affine",
    "paired_states",
]


class Mapping:
    """Base class: ``__call__([n, d_in]) -> [n, d_out]``; ``d_in`` / ``d_out`` (``None`` =
    any size) are checked against the models before any forward pass."""

    name: str = "mapping"
    d_in: int | None = None
    d_out: int | None = None

    def __call__(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, d_in: int, d_out: int) -> None:
        """Raise :class:`PatchscopeError` if the declared sizes do not fit ``d_in -> d_out``."""
        if self.d_in is not None and self.d_in != d_in:
            raise PatchscopeError(
                f"mapping {self.name!r} takes {self.d_in}-dimensional states but the source "
                f"hidden size is {d_in}"
            )
        if self.d_out is not None and self.d_out != d_out:
            raise PatchscopeError(
                f"mapping {self.name!r} produces {self.d_out}-dimensional states but the "
                f"target hidden size is {d_out}"
            )


class Identity(Mapping):
    """The state unchanged; only valid when source and target hidden sizes are equal."""

    name = "identity"

    def __init__(self, d: int | None = None):
        self.d_in = self.d_out = d

    def check(self, d_in: int, d_out: int) -> None:
        if d_in != d_out:
            raise PatchscopeError(
                f"the source hidden size ({d_in}) differs from the target's ({d_out}) and no "
                "mapping was given; pass mapping=fit_affine(source_model, layer, target_model, "
                f"layer, prompts) or a Mapping / FunctionMapping from {d_in} to {d_out}"
            )
        super().check(d_in, d_out)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h


class FunctionMapping(Mapping):
    """A user callable ``[n, d_in] -> [n, d_out]``; declare ``d_in`` / ``d_out`` to have
    mismatches caught before any forward pass (otherwise the output shape is checked after
    the call)."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        d_in: int | None = None,
        d_out: int | None = None,
        name: str | None = None,
    ):
        self.fn = fn
        self.d_in, self.d_out = d_in, d_out
        self.name = name or getattr(fn, "__name__", "function")

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.fn(h)


@dataclass(eq=False)
class Affine(Mapping):
    """``h ↦ h @ weight.T + bias`` (``weight`` ``[d_out, d_in]``, ``bias`` ``[d_out]``), stored
    in float64 and applied in float64, the result cast back to the input's dtype.

    ``fit`` records how it was fitted (layers, number of samples, R² on the fitting data).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    fit: dict[str, Any] = field(default_factory=dict)
    name: str = "affine"

    def __post_init__(self) -> None:
        if self.weight.dim() != 2 or self.bias.shape != (self.weight.shape[0],):
            raise PatchscopeError(
                f"an affine map needs weight [d_out, d_in] and bias [d_out], got "
                f"{tuple(self.weight.shape)} and {tuple(self.bias.shape)}"
            )
        self.d_out, self.d_in = (int(s) for s in self.weight.shape)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=h.device, dtype=torch.float64)
        b = self.bias.to(device=h.device, dtype=torch.float64)
        return (h.to(torch.float64) @ w.T + b).to(h.dtype)


def as_mapping(obj: Any, *, d_in: int, d_out: int) -> Mapping:
    """``obj`` as a :class:`Mapping` checked against ``d_in -> d_out``: ``None`` or
    ``"identity"`` is :class:`Identity`; a plain callable becomes a :class:`FunctionMapping`."""
    if obj is None or (isinstance(obj, str) and obj == "identity"):
        mapping: Mapping = Identity()
    elif isinstance(obj, Mapping):
        mapping = obj
    elif callable(obj):
        mapping = FunctionMapping(obj)
    else:
        raise PatchscopeError(
            f"mapping must be None, 'identity', a Mapping or a callable, got {obj!r}"
        )
    mapping.check(d_in, d_out)
    return mapping


# --------------------------------------------------------------------------- fitting


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
