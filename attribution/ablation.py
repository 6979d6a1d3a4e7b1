"""What replaces a clean write: the corrupted prompt's, a mean over reference prompts, or zero.

Shared by attribution and faithfulness evaluation, so both validate and ablate alike."""

from __future__ import annotations

import torch

from attribution.data import DataError, PromptPairs
from attribution.passes import collect_writes
from graphs import Graph

ABLATIONS = ("patching", "mean", "zero")


def check_inputs(model, graph: Graph, data: PromptPairs, ablation: str, mean_data) -> None:
    """Raise a clear error, before any model work, for an unknown ablation, mean ablation
    without reference data, a graph of another model, empty data or bad prompts."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    if ablation == "mean" and mean_data is None:
        raise ValueError(
            "ablation='mean' needs mean_data: the prompts whose mean activations replace clean ones"
        )
    graph.check_compatible(model)
    if len(data) == 0:
        raise DataError("no examples: data is empty")
    vocab = int(model.cfg.d_vocab)
    data.validate(vocab)
    if mean_data is not None:
        mean_data.validate(vocab)


def mean_writes(model, graph: Graph, data: PromptPairs, batch_size: int, dtype) -> torch.Tensor:
    """Mean write of every upstream node over the real clean tokens of ``data``: ``[n_forward, d]``."""
    total, count = None, 0
    for _, batch in data.batches(batch_size):
        writes, _ = collect_writes(model, graph, batch.clean, batch.attention_mask, torch.float64)
        real = batch.attention_mask.bool()
        part = writes[real].sum(0)
        total = part if total is None else total + part
        count += int(real.sum())
    return (total / count).to(dtype)


def ablated_writes(
    model,
    graph: Graph,
    batch: PromptPairs,
    ablation: str,
    means: torch.Tensor | None,
    clean_writes: torch.Tensor,
    nodes: range | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ablated writes ``[batch, pos, n_forward, d]`` shaped like ``clean_writes`` (which holds
    the forward indices ``nodes`` only, when given), and the corrupted run's logits
    ``[batch, pos, vocab]`` for ``patching`` (None otherwise)."""
    if ablation == "patching":
        return collect_writes(
            model, graph, batch.corrupted, batch.attention_mask, clean_writes.dtype, nodes
        )
    if ablation == "mean":
        ref = means if nodes is None else means[nodes.start : nodes.stop]
    else:
        ref = torch.zeros_like(clean_writes[0, 0])
    return ref.expand_as(clean_writes).clone(), None
