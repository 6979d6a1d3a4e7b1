"""The smallest circuit whose faithfulness reaches a target, found with real ablation runs.

Search: circuits are prefixes of the edges ranked by score. Sizes grow exponentially
(1, 2, 4, …) until one meets the target, then a binary search between the last failing and
the first passing size finds the smallest passing prefix. Faithfulness is not guaranteed to be
monotone in size, so the binary search finds *a* boundary, and the result is always a circuit
that was evaluated and met the target. An optional refinement then tries to drop each edge of
the circuit, weakest first, keeping every removal after which the target still holds, and
repeats passes until none succeeds: afterwards removing any single edge breaks the target.
Every evaluation is recorded for reports. :func:`minimal_position_circuit` runs the same search
over the ranking of position-aware edges ``(span, upstream, port)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from attribution.ablations import Ablation
from attribution.data import PromptPairs
from attribution.metrics import Metric
from attribution.run_setup import RunSetup
from circuits.search.faithfulness import (
    CircuitEvaluator,
    FaithfulnessError,
    check_position_evaluator,
    edge_mask,
    evaluator_for,
    faithfulness_from_metrics,
    warn_if_unattributed,
)
from circuits.search.select import (
    SelectionError,
    position_mask,
    ranked_position_edges,
    ranked_prefix,
)
from graphs import Graph


@dataclass
class Evaluation:
    phase: str  # "exponential" | "binary" | "refine"
    n_edges: int
    f: float
    meets_target: bool


@dataclass
class MinimalCircuit:
    """Result of :func:`minimal_circuit`: the kept edges (``mask``; put them into a graph
    with ``graph.set_in_graph(result.mask)``), their faithfulness ``f``, and every evaluation
    made."""

    mask: torch.Tensor
    n_edges: int
    f: float
    target: tuple[float, float]
    reached: bool
    evaluations: list[Evaluation] = field(default_factory=list)
    m_full: float = 0.0
    m_empty: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("mask")
        return data


def parse_target(target: float | tuple[float, float]) -> tuple[float, float]:
    """A target f >= t becomes (t, inf); a band (lo, hi) stays; bad values raise
    :class:`FaithfulnessError` (a ValueError)."""
    if isinstance(target, numbers.Real):  # also numpy scalars (np.float32 is no float)
        lo, hi = float(target), float("inf")
    else:
        try:
            lo, hi = (float(x) for x in target)
        except (TypeError, ValueError):
            raise FaithfulnessError(
                f"target must be a number or a (low, high) pair, got {target!r}"
            ) from None
    if not (lo > 0 and lo < float("inf")) or not hi > lo:
        raise FaithfulnessError(
            f"target must lie in (0, ∞) with low < high, got {target!r}; e.g. 0.9 or (0.9, 1.1)"
        )
    return lo, hi


def minimal_circuit(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: str | Metric = "logit_diff",
    *,
    target: float | tuple[float, float] = 0.9,
    absolute: bool = True,
    refine: bool = False,
    max_refine_passes: int = 10,
    ablation: str | Ablation = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    evaluator: CircuitEvaluator | None = None,
    quiet: bool = True,
    setup: RunSetup | None = None,
) -> MinimalCircuit:
    """Smallest prefix of the score ranking (by ``|score|`` unless ``absolute=False``) whose
    faithfulness lies in ``target`` (``f >= target``, or ``lo <= f <= hi`` for a pair), then
    optionally ``refine`` it. Scores must already be in ``graph`` (see ``attribution``).

    When no prefix reaches the target (the full graph included, e.g. a band above 1), the
    result has ``reached=False`` and is the full graph with its ``f``. ``graph`` is not
    modified. Warns (``UserWarning``) when every score is 0 (the graph was never attributed).
    Prefixes are :func:`circuits.search.select.top_k` circuits without dead-edge
    pruning, so every evaluated size is exactly the number of edges kept."""
    lo, hi = parse_target(target)
    if not torch.isfinite(graph.scores[graph.real_edges]).all():
        raise SelectionError("graph scores contain NaN or infinity; re-run attribution")
    warn_if_unattributed(graph, "minimal_circuit")
    evaluator = evaluator_for(
        model, graph, data, evaluator, setup, metric=metric, ablation=ablation,
        mean_data=mean_data, batch_size=batch_size,
    )  # fmt: skip
    search = _Search.start(evaluator, (lo, hi), "minimal circuit", quiet)
    order = graph.ranked_edge_indices(absolute=absolute)
    high, f, reached = search.prefixes(
        lambda k: ranked_prefix(graph, order, k, prune_dead=False).edges, len(order)
    )
    if not reached:
        return search.result(graph.real_edges.clone(), f, reached=False)
    kept = order[:high].clone()
    if refine:
        kept, f = _refine(search, graph, kept, f, max_refine_passes)
    return search.result(edge_mask(graph, kept), f, reached=True)


def minimal_position_circuit(
    evaluator: CircuitEvaluator,
    graph: Graph,
    *,
    target: float | tuple[float, float] = 0.9,
    absolute: bool = True,
    quiet: bool = True,
) -> MinimalCircuit:
    """Smallest prefix of the position-aware ranking
    (:func:`circuits.search.select.ranked_position_edges`) whose faithfulness lies in
    ``target``: the search of :func:`minimal_circuit` (without refinement), its mask
    ``[n_spans, n_forward, n_backward]``. ``evaluator`` must be built on data with the graph's
    position axis."""
    lo, hi = parse_target(target)
    check_position_evaluator(evaluator, graph)
    search = _Search.start(evaluator, (lo, hi), "minimal position circuit", quiet)
    order = ranked_position_edges(graph, absolute=absolute)
    high, f, reached = search.prefixes(lambda k: position_mask(graph, order[:k]), len(order))
    if not reached:
        full = graph.real_edges.expand(len(graph.positions), -1, -1).clone()
        return search.result(full, f, reached=False)
    return search.result(position_mask(graph, order[:high]), f, reached=True)


@dataclass
class _Search:
    """One minimal search's evaluator, target band, evaluations so far and progress bar."""

    evaluator: CircuitEvaluator
    target: tuple[float, float]
    m_full: float
    m_empty: float
    progress: tqdm
    evaluations: list[Evaluation] = field(default_factory=list)

    @classmethod
    def start(cls, evaluator: CircuitEvaluator, target, desc: str, quiet: bool) -> _Search:
        m_full, m_empty = float(evaluator.m_full.mean()), float(evaluator.m_empty.mean())
        faithfulness_from_metrics(m_full, m_full, m_empty)  # raises when f is undefined
        progress = tqdm(desc=desc, unit="eval", disable=quiet)
        return cls(evaluator, target, m_full, m_empty, progress)

    def meets(self, f: float) -> bool:
        return self.target[0] <= f <= self.target[1]

    def f_of(self, mask: torch.Tensor, phase: str) -> float:
        """f of the circuit ``mask``, recorded as an evaluation of ``phase``."""
        m = float(self.evaluator.metrics([mask])[0].mean())
        f = faithfulness_from_metrics(self.m_full, m, self.m_empty)
        self.evaluations.append(Evaluation(phase, int(mask.sum()), f, self.meets(f)))
        self.progress.update(1)
        return f

    def prefixes(
        self, mask_of: Callable[[int], torch.Tensor], total: int
    ) -> tuple[int, float, bool]:
        """``(size, f, reached)`` of the smallest passing prefix found (``mask_of(k)``: the
        first ``k`` ranked edges): sizes 1, 2, 4, … until one passes, then a binary search
        between the last failing and that size; ``(total, f, False)`` when none passes."""
        failing, k = 0, 1
        while True:
            k = min(k, total)
            f = self.f_of(mask_of(k), "exponential")
            if self.meets(f):
                break
            failing = k
            if k == total:
                return total, f, False
            k *= 2
        low, high, f_high = failing, k, f  # low fails (0 = empty circuit), high passes
        while high - low > 1:
            mid = (low + high) // 2
            f = self.f_of(mask_of(mid), "binary")
            if self.meets(f):
                high, f_high = mid, f
            else:
                low = mid
        return high, f_high, True

    def result(self, mask: torch.Tensor, f: float, *, reached: bool) -> MinimalCircuit:
        self.progress.close()
        return MinimalCircuit(
            mask, int(mask.sum()), f, self.target, reached, self.evaluations, self.m_full,
            self.m_empty,
        )  # fmt: skip


def _refine(
    search: _Search, graph: Graph, kept: torch.Tensor, f_best: float, max_passes: int
) -> tuple[torch.Tensor, float]:
    """Drop each edge of ``kept`` (flat indices, strongest first), weakest first, keeping every
    removal after which the target still holds; passes until none succeeds."""
    for _ in range(max_passes):
        removed_any = False
        for edge in reversed(kept.tolist()):  # weakest first
            trial = kept[kept != edge]
            if len(trial) == 0:
                continue
            f = search.f_of(edge_mask(graph, trial), "refine")
            if search.meets(f):
                kept, f_best, removed_any = trial, f, True
        if not removed_any:
            break
    return kept, f_best
