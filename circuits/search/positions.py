"""Circuits over position-aware edges ``(span, upstream, port)``: selection, minimal search and
faithfulness curves, on a graph whose ``position_scores`` came from a position-aware
attribution (:func:`attribution.positions.with_positions`).

A position-aware circuit is a :class:`graphs.Circuit` whose ``edges`` mask is
``[n_spans, n_forward, n_backward]``; its nodes are those at either end of an edge kept at
any span. Faithfulness ablates each edge outside the circuit at the tokens of the spans it
is not kept at, in the same one-pass evaluator as position-agnostic circuits.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from attribution.data import PromptPairs
from circuits.search.faithfulness import (
    DEFAULT_FRACTIONS,
    RANDOM_DRAWS,
    CircuitEvaluator,
    FaithfulnessCurve,
    curve_of,
    curve_settings,
    faithfulness_from_metrics,
    random_masks,
)
from circuits.search.minimal import Evaluation, MinimalCircuit, parse_target
from circuits.search.select import SelectionError
from graphs import Circuit, Graph
from graphs.positions import PositionError


def _position_scores(graph: Graph) -> torch.Tensor:
    if graph.position_scores is None:
        raise PositionError(
            "this graph has no position axis; attribute it with data from "
            "attribution.positions.with_positions(data, 'tokens' or a SpanSchema)"
        )
    return graph.position_scores


def ranked_position_edges(graph: Graph, *, absolute: bool = True) -> torch.Tensor:
    """Flat indices into ``[n_spans, n_forward, n_backward]`` of every real position-aware
    edge, best score first (ties in index order)."""
    scores = _position_scores(graph)
    real = graph.real_edges.expand_as(scores).flatten().nonzero().squeeze(1)
    flat = scores.flatten().to(torch.float64)[real]
    order = torch.sort(-(flat.abs() if absolute else flat), stable=True).indices
    return real[order]


def position_circuit(graph: Graph, edges: torch.Tensor) -> Circuit:
    """The circuit of a bool ``[n_spans, n_forward, n_backward]`` mask (real edges only)."""
    edges = edges.to("cpu", torch.bool) & graph.real_edges
    return Circuit(edges.clone(), graph._nodes_touched(edges.any(dim=0)))


def _mask(graph: Graph, flat: torch.Tensor) -> torch.Tensor:
    scores = _position_scores(graph)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[flat] = True
    return mask.view(scores.shape)


def top_n_positions(graph: Graph, n: int, *, absolute: bool = True) -> Circuit:
    """The ``n`` best position-aware edges (by ``|score|`` unless ``absolute=False``)."""
    if n < 0:
        raise SelectionError(f"n must be >= 0, got {n}")
    return position_circuit(
        graph, _mask(graph, ranked_position_edges(graph, absolute=absolute)[:n])
    )


def threshold_positions(graph: Graph, threshold: float, *, absolute: bool = True) -> Circuit:
    """Position-aware edges whose score (``|score|`` by default) is at least ``threshold``."""
    scores = _position_scores(graph)
    value = scores.abs() if absolute else scores
    return position_circuit(graph, (value >= threshold) & graph.real_edges)


def top_position_edges(graph: Graph, k: int, *, absolute: bool = True) -> list[dict]:
    """The ``k`` best position-aware edges as ``{"span", "edge", "score"}`` rows, best first."""
    scores = _position_scores(graph)
    F, K = graph.n_forward, graph.n_backward
    rows = []
    for i in ranked_position_edges(graph, absolute=absolute)[:k].tolist():
        s, rest = divmod(i, F * K)
        up, port = divmod(rest, K)
        rows.append(
            {
                "span": graph.positions[s],
                "edge": graph.layout.edge_name(up, port),
                "score": float(scores[s, up, port]),
            }
        )
    return rows


def minimal_position_circuit(
    evaluator: CircuitEvaluator,
    graph: Graph,
    *,
    target: float | tuple[float, float] = 0.9,
    absolute: bool = True,
    quiet: bool = True,
) -> MinimalCircuit:
    """Smallest prefix of the position-aware ranking whose faithfulness lies in ``target``
    (exponential then binary search, as :func:`circuits.search.minimal.minimal_circuit`).
    ``evaluator`` must be built on data with the graph's position axis."""
    lo, hi = parse_target(target)
    _check_evaluator(evaluator, graph)
    m_full, m_empty = float(evaluator.m_full.mean()), float(evaluator.m_empty.mean())
    faithfulness_from_metrics(m_full, m_full, m_empty)  # raises when f is undefined
    order = ranked_position_edges(graph, absolute=absolute)
    total = len(order)
    evaluations: list[Evaluation] = []
    progress = tqdm(desc="minimal position circuit", unit="eval", disable=quiet)

    def f_of(k: int, phase: str) -> float:
        m = float(evaluator.metrics([_mask(graph, order[:k])])[0].mean())
        f = faithfulness_from_metrics(m_full, m, m_empty)
        evaluations.append(Evaluation(phase, k, f, lo <= f <= hi))
        progress.update(1)
        return f

    failing, k, passing = 0, 1, {}
    while True:
        k = min(k, total)
        f = f_of(k, "exponential")
        if lo <= f <= hi:
            passing[k] = f
            break
        failing = k
        if k == total:
            progress.close()
            full = graph.real_edges.expand(len(graph.positions), -1, -1).clone()
            return MinimalCircuit(full, total, f, (lo, hi), False, evaluations, m_full, m_empty)
        k *= 2
    low, high = failing, k
    while high - low > 1:
        mid = (low + high) // 2
        f = f_of(mid, "binary")
        if lo <= f <= hi:
            high, passing[mid] = mid, f
        else:
            low = mid
    progress.close()
    mask = _mask(graph, order[:high])
    return MinimalCircuit(mask, high, passing[high], (lo, hi), True, evaluations, m_full, m_empty)


def position_faithfulness_curve(
    evaluator: CircuitEvaluator,
    graph: Graph,
    *,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    absolute: bool = True,
    random_baseline: bool = False,
    random_draws: int = RANDOM_DRAWS,
    seed: int = 0,
) -> FaithfulnessCurve:
    """f of the top ``fraction`` of position-aware edges per fraction; its areas (CPR, CMD,
    CPR_log, CMD_log) over the fraction of position-aware edges kept. ``random_baseline``: per
    size, the mean and standard deviation of f over ``random_draws`` random position-aware circuits (draw ``j`` of
    size ``i`` uses seed ``seed + i + j * len(fractions)``, as
    :func:`circuits.search.faithfulness.faithfulness_curve`)."""
    _check_evaluator(evaluator, graph)
    fractions, draws = curve_settings(fractions, random_baseline, random_draws)
    order = ranked_position_edges(graph, absolute=absolute)
    sizes = [max(1, round(x * len(order))) for x in fractions]
    masks = [_mask(graph, order[:k]) for k in sizes]
    masks += random_masks(graph, sizes, draws, seed, n_spans=len(graph.positions))
    m_circ = evaluator.metrics(masks)
    return curve_of(fractions, sizes, evaluator.m_full, evaluator.m_empty, m_circ, draws)


def _check_evaluator(evaluator: CircuitEvaluator, graph: Graph) -> None:
    _position_scores(graph)
    data: PromptPairs = evaluator.data
    if data.span_names != graph.positions:
        raise PositionError(
            f"the evaluator's data has spans {data.span_names}, the graph {graph.positions}; "
            "build the evaluator on the data the graph was attributed with"
        )


__all__ = [
    "minimal_position_circuit",
    "position_circuit",
    "position_faithfulness_curve",
    "ranked_position_edges",
    "threshold_positions",
    "top_n_positions",
    "top_position_edges",
]
