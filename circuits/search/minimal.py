"""The smallest circuit whose faithfulness reaches a target, found with real ablation runs.

Search: circuits are prefixes of the edges ranked by score. Sizes grow exponentially
(1, 2, 4, …) until one meets the target, then a binary search between the last failing and
the first passing size finds the smallest passing prefix. Faithfulness is not guaranteed to be
monotone in size, so the binary search finds *a* boundary, and the result is always a circuit
that was evaluated and met the target. An optional refinement then tries to drop each edge of
the circuit, weakest first, keeping every removal after which the target still holds, and
repeats passes until none succeeds: afterwards removing any single edge breaks the target.
Every evaluation is recorded for reports.
"""

from __future__ import annotations

import numbers
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
    edge_mask,
    evaluator_for,
    faithfulness_from_metrics,
    warn_if_unattributed,
)
from circuits.search.select import SelectionError, ranked_prefix
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
    m_full, m_empty = float(evaluator.m_full.mean()), float(evaluator.m_empty.mean())
    faithfulness_from_metrics(m_full, m_full, m_empty)  # raises when f is undefined
    order = graph.ranked_edge_indices(absolute=absolute)
    total = len(order)
    evaluations: list[Evaluation] = []

    def f_of(mask: torch.Tensor, phase: str) -> float:
        m = float(evaluator.metrics([mask])[0].mean())
        f = faithfulness_from_metrics(m_full, m, m_empty)
        evaluations.append(Evaluation(phase, int(mask.sum()), f, lo <= f <= hi))
        return f

    progress = tqdm(desc="minimal circuit", unit="eval", disable=quiet)
    passing: dict[int, float] = {}
    failing = 0
    k = 1
    while True:
        k = min(k, total)
        f = f_of(ranked_prefix(graph, order, k, prune_dead=False).edges, "exponential")
        progress.update(1)
        if lo <= f <= hi:
            passing[k] = f
            break
        failing = k
        if k == total:
            break
        k *= 2
    if not passing:
        progress.close()
        full_mask = graph.real_edges.clone()
        return MinimalCircuit(full_mask, total, f, (lo, hi), False, evaluations, m_full, m_empty)
    best = min(passing)
    low, high = failing, best  # low fails (0 = empty circuit), high passes
    while high - low > 1:
        mid = (low + high) // 2
        f = f_of(ranked_prefix(graph, order, mid, prune_dead=False).edges, "binary")
        progress.update(1)
        if lo <= f <= hi:
            high, passing[mid] = mid, f
        else:
            low = mid
    kept = order[:high].clone()
    f_best = passing[high]

    if refine:
        for _ in range(max_refine_passes):
            removed_any = False
            for edge in reversed(kept.tolist()):  # weakest first
                trial = kept[kept != edge]
                if len(trial) == 0:
                    continue
                f = f_of(edge_mask(graph, trial), "refine")
                progress.update(1)
                if lo <= f <= hi:
                    kept, f_best, removed_any = trial, f, True
            if not removed_any:
                break
    progress.close()
    mask = edge_mask(graph, kept)
    return MinimalCircuit(
        mask, int(mask.sum()), f_best, (lo, hi), True, evaluations, m_full, m_empty
    )
