"""Ensembles of methods: ``method="ensemble:eap-ig-inputs,ifr"`` (or a list of names).

Each member scores the edges on its own (a full :func:`attribution.attribute` call); the
ensemble's score of an edge is the mean over members of its *normalised rank*: the members'
``|score|`` over the real edges ranked from 1 (smallest) to ``n`` (largest; ties share their
average rank) and divided by ``n``. Ranks make scores of different scales and meanings
(``m(patched) − m(clean)`` estimates, IFR's importances) comparable. With
``"ensemble-z:..."`` (``combine="zscore"``) each member's ``|score|`` is z-scored over the real
edges instead and the z-scores are averaged.

Sign convention: ranks of magnitudes, so an ensemble says how much an edge matters, not which
way; its scores are in ``(0, 1]`` (rank) or centred on 0 (z-score), and rankings by ``|score|``
(the selection default) or by signed score agree for the rank rule. Non-real pairs read 0.
"""

from __future__ import annotations

import numpy as np
import torch

from attribution.methods.base import AttributionMethod, MethodError, build_method

PREFIXES = {"ensemble": "rank", "ensemble-z": "zscore"}


class UnknownMethodError(MethodError):
    """A method or ensemble member name that is not registered."""


class Ensemble(AttributionMethod):
    """Several registered methods, combined by normalised rank (or z-score) averaging."""

    description = "mean normalised rank of |score| over member methods"

    def __init__(self, members: list[AttributionMethod], combine: str = "rank"):
        super().__init__()
        if combine not in ("rank", "zscore"):
            raise MethodError(f"combine must be 'rank' or 'zscore', got {combine!r}")
        if len(members) < 2:
            raise MethodError("an ensemble needs at least two member methods")
        self.members = members
        self.combine = combine
        prefix = "ensemble" if combine == "rank" else "ensemble-z"
        self.name = f"{prefix}:{','.join(m.name for m in members)}"
        self.integrates = any(m.integrates for m in members)
        self.needs_gradients = any(m.needs_gradients for m in members)

    def settings(self):
        return {"members": [m.name for m in self.members], "combine": self.combine}

    def reads_corrupted(self, ablation) -> bool:
        return any(m.reads_corrupted(ablation) for m in self.members)

    def check(self, graph, ablation) -> None:
        for member in self.members:
            member.check(graph, ablation)

    def combined(self, scores: list[torch.Tensor], real: torch.Tensor) -> torch.Tensor:
        """Members' ``[n_forward, n_backward]`` scores -> the ensemble's (float64)."""
        out = torch.zeros(real.shape, dtype=torch.float64)
        for s in scores:
            values = s.detach().cpu().double()[real].abs().numpy()
            if self.combine == "rank":
                norm = average_ranks(values) / len(values)
            else:
                std = values.std()
                norm = (values - values.mean()) / (std if std > 0 else 1.0)
            out[real] += torch.from_numpy(norm)
        return out / len(scores)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (ascending), ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse = np.unique(values, return_inverse=True)
    return np.bincount(inverse, ranks)[inverse] / np.bincount(inverse)[inverse]


def parse_ensemble(spec, registry: dict, steps: int, quadrature_rule: str) -> Ensemble | None:
    """The ensemble for ``"ensemble:a,b"`` / ``"ensemble-z:a,b"`` or a list of names, None for
    anything else; an unknown member raises UnknownMethodError naming the known methods."""
    if isinstance(spec, list | tuple):
        names, combine = list(spec), "rank"
    elif isinstance(spec, str) and spec.split(":", 1)[0] in PREFIXES and ":" in spec:
        prefix, rest = spec.split(":", 1)
        names, combine = [n.strip() for n in rest.split(",") if n.strip()], PREFIXES[prefix]
    else:
        return None
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UnknownMethodError(
            f"unknown ensemble member{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; members are registered methods: "
            f"{', '.join(registry)}"
        )
    members = [build_method(registry[n], steps, quadrature_rule) for n in names]
    return Ensemble(members, combine)
