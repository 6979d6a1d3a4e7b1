"""Zero ablation: each edge's write is removed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attribution.ablations.base import Ablation


@dataclass(frozen=True, repr=False)
class ZeroAblation(Ablation):
    """Zero: the edge's write is removed."""

    name: ClassVar[str] = "zero"
    description: ClassVar[str] = "no write"

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        return torch.zeros_like(clean_writes[0, 0]).expand_as(clean_writes).clone(), None


__all__ = ["ZeroAblation"]
