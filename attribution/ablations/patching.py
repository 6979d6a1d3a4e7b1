"""Activation patching: each edge's write is the corrupted prompt's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from attribution.ablations.base import Ablation, NoCounterfactualsError
from attribution.passes import collect_writes


@dataclass(frozen=True, repr=False)
class Patching(Ablation):
    """The corrupted prompt's write (activation patching)."""

    name: ClassVar[str] = "patching"
    description: ClassVar[str] = "the corrupted prompt's write"
    corrupted_run: ClassVar[bool] = True

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        if batch.corrupted is None:
            raise NoCounterfactualsError("ablation='patching'")
        return collect_writes(
            model, graph, batch.corrupted, batch.attention_mask, clean_writes.dtype, nodes,
            positions=batch.positions,
        )  # fmt: skip


__all__ = ["Patching"]
