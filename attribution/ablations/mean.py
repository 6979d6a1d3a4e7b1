"""Mean ablation: each edge's write is its node's mean write over reference prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attribution.ablations.base import Ablation
from attribution.data import PromptPairs
from attribution.passes import collect_writes
from graphs import Graph


@dataclass(frozen=True, repr=False)
class MeanAblation(Ablation):
    """The mean write of each node over the real clean tokens of ``reference`` prompts."""

    reference: PromptPairs
    name: ClassVar[str] = "mean"
    description: ClassVar[str] = "the node's mean write over the train prompts"
    needs_reference: ClassVar[bool] = True

    @classmethod
    def build(cls, reference, *, metric="logit_diff", seed=0, quiet=True):
        return cls(reference)

    @property
    def reference_data(self) -> PromptPairs:
        return self.reference

    def means(self, model, graph, batch_size, dtype, device):
        return mean_writes(model, graph, self.reference.to(device), batch_size, dtype)

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        ref = means if nodes is None else means[nodes.start : nodes.stop]
        return ref.expand_as(clean_writes).clone(), None

    def __repr__(self) -> str:
        return f"MeanAblation({len(self.reference)} prompts)"


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


__all__ = ["MeanAblation", "mean_writes"]
