"""The Patchscopes paper's evaluations: next-token prediction from a hidden state, decoding
accuracy over (source layer × target layer) grids, attribute extraction, and heatmap figures.

Layers follow :mod:`circuits.patchscopes.core`: ``ℓ`` in ``[0, n_layers]`` is the residual
stream before block ``ℓ``, ``n_layers`` the final residual before the last norm.

- :func:`next_token_scores`: for every token ``i ≥ 1`` of a set of prompts, the state at
  (prompt, ``ℓ``, ``i``) is mapped and patched into a target; precision@1 is the share of
  tokens where the patched run's top-1 equals the model's own top-1 at ``i`` (run normally),
  surprisal the mean ``−ln p`` (nats) of that token under the patched run. Targets: the same
  prompt at the last layer (``target=None``; with the identity mapping this is the logit
  lens, with a fitted :class:`~circuits.patchscopes.mappings.Affine` a tuned-lens-like map)
  or a :class:`~circuits.patchscopes.prompts.TargetPrompt` (e.g. the paper's identity prompt,
  ``identity_prompt(tok)``, ending at the placeholder: "prompt-id"), patched at ``ℓ`` by
  default.
- :func:`layer_heatmap`: share of sources decoded to an expected token, for every (source
  layer, target layer) pair; :func:`identity_heatmap` and :func:`attribute_heatmap` fill in
  the sources, the expected tokens and the target prompt.
- :meth:`Heatmap.save` writes the grid as PNG and SVG (:func:`circuits.plotting.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from circuits.patchscopes.core import (
    PatchscopeError,
    _device,
    _dtype,
    _pad,
    _pad_id,
    _tokenizer_of,
    check_layer,
    check_position,
    d_model_of,
    encode_prompt,
    n_layers_of,
    residual_stream,
    run_patched,
)
from circuits.patchscopes.mappings import as_mapping
from circuits.patchscopes.prompts import TargetPrompt, _appended

__all__ = [
    "Heatmap",
    "NextTokenScores",
    "attribute_heatmap",
    "heatmap_figure",
    "identity_heatmap",
    "layer_heatmap",
    "next_token_scores",
    "task_prompts",
]


# --------------------------------------------------------------------------- data


def task_prompts(
    split: str = "train",
    n_per_task: int = 20,
    *,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    with_answers: bool = True,
) -> list[str]:
    """Prompts of the bundled tasks' ``split`` (``n_per_task`` each, drawn with ``seed``),
    each followed by its first answer when ``with_answers``: fitting and evaluation data
    for :func:`~circuits.patchscopes.fitting.fit_affine` and :func:`next_token_scores`."""
    from circuits.tasks.registry import TASK_NAMES, get_task

    out = []
    for name in tasks or TASK_NAMES:
        for ex in get_task(name).examples(n_per_task, seed=seed, split=split):
            out.append(ex.clean + (ex.answers[0] if with_answers else ""))
    return out


# --------------------------------------------------------------------------- next token


@dataclass(frozen=True)
class NextTokenScores:
    """Next-token prediction from the hidden state at ``layer``: ``precision_at_1`` against the
    model's own top-1, mean ``surprisal`` (nats) of that token, over ``n`` token positions."""

    layer: int
    target_layer: int
    mapping: str
    target: str
    precision_at_1: float
    surprisal: float
    n: int


def next_token_scores(
    model: Any,
    prompts: Sequence[Any],
    layer: int,
    *,
    mapping: Any = None,
    target: TargetPrompt | None = None,
    target_layer: int | None = None,
    tokenizer: Any = None,
    skip_first: bool = True,
    batch_size: int = 128,
) -> NextTokenScores:
    """Precision@1 and surprisal of next-token prediction from the states at ``layer``.

    Args:
        prompts: source prompts; every token position (but position 0 with ``skip_first``)
            is one sample.
        mapping: as in :func:`~circuits.patchscopes.core.patchscope` (``None`` = identity).
        target: ``None`` patches into the same prompt at the same position (read there), at
            ``target_layer`` (default ``n_layers``); a :class:`TargetPrompt` patches into its
            placeholder at ``target_layer`` (default ``layer``) and reads after its last token.
    """
    n_layers = n_layers_of(model)
    check_layer(model, layer)
    if target_layer is None:
        target_layer = n_layers if target is None else layer
    check_layer(model, target_layer, "target_layer")
    d = d_model_of(model)
    mapper = as_mapping(mapping, d_in=d, d_out=d)
    ids = [encode_prompt(model, p, tokenizer) for p in prompts]
    if target is not None:
        tgt_ids = encode_prompt(model, target.text, tokenizer)
        check_position(target.position, len(tgt_ids), "target position")
    first = 1 if skip_first else 0
    if all(len(r) <= first for r in ids):
        raise PatchscopeError("the prompts have no token positions to evaluate")
    pad = _pad_id(model, tokenizer)
    hits, surprisal, n = 0, 0.0, 0
    for start in range(0, len(ids), batch_size):
        out, reference = _chunk_logits(
            model, ids[start : start + batch_size], first, layer, mapper, target,
            tgt_ids if target is not None else None, target_layer, pad, batch_size,
        )  # fmt: skip
        logp = torch.log_softmax(out.double(), dim=-1)
        hits += int((out.argmax(-1) == reference).sum())
        surprisal += float(-logp.gather(-1, reference[:, None]).sum())
        n += len(reference)
    return NextTokenScores(
        layer=layer,
        target_layer=target_layer,
        mapping=getattr(mapper, "name", "mapping"),
        target="same prompt" if target is None else target.kind,
        precision_at_1=hits / n,
        surprisal=surprisal / n,
        n=n,
    )


def _chunk_logits(
    model: Any,
    chunk: list,
    first: int,
    layer: int,
    mapper: Any,
    target: TargetPrompt | None,
    tgt_ids: list | None,
    target_layer: int,
    pad: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(patched next-token logits [k, vocab], the unpatched run's next tokens [k])`` for
    the ``k`` evaluated positions of one chunk of prompts."""
    n_layers, d = n_layers_of(model), d_model_of(model)
    tokens, mask = _pad(chunk, pad, _device(model))
    states, logits = residual_stream(model, tokens, mask, [layer])
    rows, cols = mask.bool().nonzero(as_tuple=True)
    keep = cols >= first
    rows, cols = rows[keep], cols[keep]
    reference = logits[rows, cols].argmax(-1)
    vectors = mapper(states[layer][rows, cols])
    if vectors.shape != (len(rows), d):
        raise PatchscopeError(
            f"the mapping returned shape {tuple(vectors.shape)}, expected [{len(rows)}, {d}]"
        )
    if target is None and target_layer == n_layers:
        # The final residual feeds only the unembedding at its own position: every
        # position of a prompt can be patched in the same row.
        out = run_patched(
            model,
            tokens,
            mask,
            layers=[target_layer] * len(rows),
            rows=rows.tolist(),
            positions=cols.tolist(),
            vectors=vectors,
        )[rows, cols]
    else:
        out = _patched_rows(
            model, chunk, rows, cols, vectors, target, tgt_ids, target_layer, pad, batch_size
        )
    return out, reference


def _patched_rows(model, chunk, rows, cols, vectors, target, tgt_ids, layer, pad, batch_size):
    """Next-token logits ``[k, vocab]`` of one patched run per (row, col) sample."""
    device = _device(model)
    outs = []
    for s in range(0, len(rows), batch_size):
        r, c = rows[s : s + batch_size].tolist(), cols[s : s + batch_size].tolist()
        if target is None:  # the source prompt cut after the patched position
            seqs = [chunk[i][: j + 1] for i, j in zip(r, c, strict=True)]
            positions = c
        else:
            seqs = [tgt_ids] * len(r)
            positions = [target.position] * len(r)
        tokens, mask = _pad(seqs, pad, device)
        logits = run_patched(
            model,
            tokens,
            mask,
            layers=[layer] * len(r),
            rows=list(range(len(r))),
            positions=positions,
            vectors=vectors[s : s + batch_size],
        )
        last = torch.tensor([len(q) - 1 for q in seqs], device=logits.device)
        outs.append(logits[torch.arange(len(r), device=logits.device), last])
    return torch.cat(outs)


# --------------------------------------------------------------------------- heatmaps


@dataclass
class Heatmap:
    """``values[i, j]``: the share of sources decoded correctly from source layer
    ``source_layers[i]`` patched into target layer ``target_layers[j]``, over ``n`` sources."""

    values: torch.Tensor
    source_layers: list[int]
    target_layers: list[int]
    n: int
    title: str = "Patchscope precision@1"
    metric: str = "precision@1"
    details: dict[str, Any] = field(default_factory=dict)

    def at(self, source_layer: int, target_layer: int) -> float:
        return float(
            self.values[
                self.source_layers.index(source_layer), self.target_layers.index(target_layer)
            ]
        )

    def diagonal(self) -> dict[int, float]:
        """``{ℓ: value at (ℓ, ℓ)}`` for layers on both axes."""
        return {
            layer: self.at(layer, layer)
            for layer in self.source_layers
            if layer in self.target_layers
        }

    def to_markdown(self, digits: int = 2) -> str:
        head = "| source \\ target | " + " | ".join(str(t) for t in self.target_layers) + " |"
        rule = "|---|" + "---|" * len(self.target_layers)
        lines = [head, rule]
        for i, s in enumerate(self.source_layers):
            cells = " | ".join(f"{float(v):.{digits}f}" for v in self.values[i])
            lines.append(f"| {s} | {cells} |")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the heatmap to ``path`` as ``.png`` and ``.svg``; returns both paths."""
        from circuits.plotting import save_and_close

        return save_and_close(lambda: heatmap_figure(self), path)


def heatmap_figure(heatmap: Heatmap) -> Any:
    """A matplotlib ``Figure`` (Agg canvas, no pyplot) of ``heatmap``, values written in cells."""
    from circuits.plotting import draw_heatmap, figure_style, new_figure

    n_s, n_t = len(heatmap.source_layers), len(heatmap.target_layers)
    with figure_style():
        fig = new_figure((1.2 + 0.7 * n_t, 1.0 + 0.6 * n_s))
        ax = fig.add_subplot()
        image = draw_heatmap(ax, heatmap.values.double().numpy(), origin="lower", fontsize=7)
        ax.set_xticks(range(n_t), [str(t) for t in heatmap.target_layers])
        ax.set_yticks(range(n_s), [str(s) for s in heatmap.source_layers])
        ax.set_xlabel("target layer")
        ax.set_ylabel("source layer")
        ax.set_title(f"{heatmap.title} (n={heatmap.n})", fontsize=9)
        fig.colorbar(image, ax=ax, label=heatmap.metric)
    return fig


def _expected_sets(expected: Sequence[Any]) -> list[set[int]]:
    out = []
    for e in expected:
        if isinstance(e, int):
            out.append({int(e)})
        else:
            out.append({int(i) for i in e})
    return out


def layer_heatmap(
    model: Any,
    sources: Sequence[tuple[Any, int]],
    target: TargetPrompt,
    *,
    expected: Sequence[int | Sequence[int]] | None = None,
    source_layers: Sequence[int] | None = None,
    target_layers: Sequence[int] | None = None,
    mapping: Any = None,
    tokenizer: Any = None,
    batch_size: int = 256,
    title: str = "Patchscope precision@1",
) -> Heatmap:
    """For every (source layer, target layer) pair, the share of ``sources`` — ``(prompt,
    position)`` — whose state, patched into ``target``'s placeholder, makes the target's
    next token one of ``expected[i]`` (default: the source token itself, i.e. the identity
    Patchscope's precision@1). Layers default to ``0..n_layers``."""
    n_layers = n_layers_of(model)
    source_layers = list(range(n_layers + 1)) if source_layers is None else list(source_layers)
    target_layers = list(range(n_layers + 1)) if target_layers is None else list(target_layers)
    for layer in source_layers:
        check_layer(model, layer, "source layer")
    for layer in target_layers:
        check_layer(model, layer, "target layer")
    if not sources:
        raise PatchscopeError("no sources given")
    d = d_model_of(model)
    mapper = as_mapping(mapping, d_in=d, d_out=d)
    ids, positions = [], []
    for i, (prompt, position) in enumerate(sources):
        row = encode_prompt(model, prompt, tokenizer)
        ids.append(row)
        positions.append(check_position(position, len(row), f"source {i} position"))
    if expected is None:
        expected_sets = [{row[p]} for row, p in zip(ids, positions, strict=True)]
    else:
        if len(expected) != len(sources):
            raise PatchscopeError(f"{len(sources)} sources but {len(expected)} expected answers")
        expected_sets = _expected_sets(expected)
    tgt_ids = encode_prompt(model, target.text, tokenizer)
    tgt_pos = check_position(target.position, len(tgt_ids), "target position")

    pad = _pad_id(model, tokenizer)
    states = _source_states(model, ids, positions, source_layers, pad, batch_size)
    mapped = {s: mapper(states[s]) for s in source_layers}
    hits = _target_hits(
        model, mapped, tgt_ids, tgt_pos, expected_sets, source_layers, target_layers, pad,
        batch_size,
    )  # fmt: skip
    return Heatmap(
        values=hits / len(ids),
        source_layers=source_layers,
        target_layers=target_layers,
        n=len(ids),
        title=title,
        details={"target": target.text, "target_position": tgt_pos, "mapping": mapper.name},
    )


def _source_states(
    model: Any,
    ids: list,
    positions: list[int],
    source_layers: list[int],
    pad: int,
    batch_size: int,
) -> dict[int, torch.Tensor]:
    """Per source layer, ``[len(ids), d]``: each prompt's residual state at its position."""
    device, d = _device(model), d_model_of(model)
    states = {
        s: torch.empty(len(ids), d, dtype=_dtype(model), device=device) for s in source_layers
    }
    for start in range(0, len(ids), batch_size):
        tokens, mask = _pad(ids[start : start + batch_size], pad, device)
        got, _ = residual_stream(model, tokens, mask, sorted(set(source_layers)))
        pos = torch.tensor(positions[start : start + batch_size], device=device)
        rows = torch.arange(len(pos), device=device)
        for s in source_layers:
            states[s][start : start + len(pos)] = got[s][rows, pos]
    return states


def _target_hits(
    model: Any,
    mapped: dict[int, torch.Tensor],
    tgt_ids: list,
    tgt_pos: int,
    expected_sets: list[set[int]],
    source_layers: list[int],
    target_layers: list[int],
    pad: int,
    batch_size: int,
) -> torch.Tensor:
    """``[source layers, target layers]``: how many sources' mapped states (``mapped``, per
    source layer), patched into the target prompt at each target layer, make its next token
    an expected one."""
    # every (source layer, target layer, source) is one row of the same target prompt
    jobs = [
        (s, t, k) for s in source_layers for t in target_layers for k in range(len(expected_sets))
    ]
    hits = torch.zeros(len(source_layers), len(target_layers))
    tokens_one, mask_one = _pad([tgt_ids], pad, _device(model))
    last = len(tgt_ids) - 1
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        vectors = torch.stack([mapped[s][k] for s, _, k in part])
        logits = run_patched(
            model,
            tokens_one.expand(len(part), -1),
            mask_one.expand(len(part), -1),
            layers=[t for _, t, _ in part],
            rows=list(range(len(part))),
            positions=[tgt_pos] * len(part),
            vectors=vectors,
        )
        top = logits[:, last].argmax(-1).tolist()
        for (s, t, k), tok in zip(part, top, strict=True):
            if tok in expected_sets[k]:
                hits[source_layers.index(s), target_layers.index(t)] += 1
    return hits


def identity_heatmap(
    model: Any,
    sources: Sequence[tuple[Any, int]],
    *,
    target: TargetPrompt | None = None,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Heatmap:
    """:func:`layer_heatmap` with the identity prompt (adapted to the tokenizer) as target:
    precision@1 of decoding each source's own token. The default target is the arrow form
    (``identity_prompt(tok, query_arrow=True)``), whose next token is the patched item itself."""
    from circuits.patchscopes.prompts import identity_prompt

    if target is None:
        tok = _tokenizer_of(model, tokenizer)
        if tok is None:
            raise PatchscopeError("the identity prompt needs a tokenizer: pass tokenizer=...")
        target = identity_prompt(tok, query_arrow=True)
    kwargs.setdefault("title", "identity Patchscope: precision@1 of the source token")
    return layer_heatmap(model, sources, target, tokenizer=tokenizer, **kwargs)


def attribute_heatmap(
    model: Any,
    attribute: str = "country",
    *,
    entities: Sequence[str] | None = None,
    source_template: str = "[E]",
    tokenizer: Any = None,
    n_shots: int = 2,
    seed: int = 0,
    world: Any = None,
    **kwargs: Any,
) -> Heatmap:
    """Attribute-extraction accuracy: the state of each entity's (last) token in
    ``source_template`` (``[E]`` marks the entity) patched into a few-shot prompt
    (:func:`~circuits.patchscopes.prompts.attribute_prompt`) whose answer must be the
    entity's ``attribute`` value in :data:`circuits.tasks.entities.WORLD`."""
    from circuits.patchscopes.prompts import attribute_prompt
    from circuits.tasks.entities import WORLD

    world = WORLD if world is None else world
    tok = _tokenizer_of(model, tokenizer)
    if tok is None:
        raise PatchscopeError("attribute extraction needs a tokenizer: pass tokenizer=...")
    entities = list(world.entities if entities is None else entities)
    unknown = [e for e in entities if e not in world.facts]
    if unknown:
        raise PatchscopeError(f"entities {unknown[:5]} are not in the world")
    if "[E]" not in source_template:
        raise PatchscopeError(f"source_template {source_template!r} has no [E] slot")
    target = attribute_prompt(tok, attribute, n_shots=n_shots, seed=seed, world=world)
    shown = {subject for subject, _ in target.shots}
    entities = [e for e in entities if e not in shown]  # the shots' cities are not evaluated
    if not entities:
        raise PatchscopeError("every entity given is one of the prompt's shots")
    sources, expected = [], []
    head = source_template.split("[E]", 1)[0]
    for e in entities:
        text = source_template.replace("[E]", e)
        position = len(encode_prompt(model, head + e, tokenizer)) - 1
        sources.append((text, position))
        answer = _appended(tok, target.text, " " + world.facts[e][attribute])
        if not answer or len(answer) != 1:
            raise PatchscopeError(
                f"the answer {world.facts[e][attribute]!r} is not one token after the prompt"
            )
        expected.append(answer[0])
    kwargs.setdefault("title", f"attribute extraction ({attribute}): accuracy")
    heat = layer_heatmap(model, sources, target, expected=expected, tokenizer=tokenizer, **kwargs)
    heat.metric = "accuracy"
    heat.details.update(
        {"attribute": attribute, "source_template": source_template, "shots": target.shots}
    )
    return heat
