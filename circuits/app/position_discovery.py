"""The position-aware half of a discovery run (``circuits discover --positions tokens|schema``).

The run attributes once, with a position axis on its data, so the graph holds both the
per-span scores ``[S, F, K]`` and their sum over spans, which are exactly the position-agnostic
scores. The main circuit of the run stays the position-agnostic one (graph files, figures,
explorer, ``circuit`` and ``faithfulness`` sections); this module finds the minimal
*position-aware* circuit from the same scores with the same search and target, measures it on
the same held-out prompts, and compares the two (the ``positions`` section of
``metrics.json``):

- sizes at the target: position-aware edges ``(span, upstream, port)`` against
  position-agnostic edges (each of which is ``S`` position-aware edges, one per span), and the
  distinct position-agnostic edges the position-aware circuit uses at any span (its
  *projection*);
- overlap: Jaccard index of the projection and the position-agnostic circuit;
- ``top_overlap`` (PEAP's comparison, Haklay et al. 2025): of the top 1 % of position-agnostic
  edges, the share that are also among the first as many distinct edges of the position-aware
  ranking.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from attribution.methods import REGISTRY
from circuits.search import (
    minimal_position_circuit,
    position_circuit,
    position_faithfulness_curve,
    ranked_position_edges,
    top_position_edges,
)
from circuits.search.faithfulness import CircuitEvaluator, evaluate
from circuits.search.minimal import MinimalCircuit
from graphs import Circuit, Graph
from graphs.positions import PositionError

__all__ = ["POSITION_MODES", "PositionRun", "check_positions", "find_position_circuit"]

#: ``--positions`` values.
POSITION_MODES: tuple[str, ...] = ("tokens", "schema")
#: The run folder's copies of the graph with the position-aware circuit (GraphML: one node
#: per (node, span)); ``graph.*`` keep the position-agnostic circuit.
POSITION_GRAPHML, POSITION_JSON = "position_graph.graphml", "position_graph.json"
#: Position-aware edges listed in ``metrics.json`` (``positions.top_edges``).
TOP_POSITION_EDGES = 20


def check_positions(settings: Any, method: Any) -> None:
    """RunError (before the model loads) unless ``settings.positions`` can be run: a known
    mode, a method that keeps per-position scores, and prompts that take the position axis
    (tokenised with the model's tokenizer alone: prompts of one length for ``tokens``, a span
    schema that covers every prompt for ``schema``)."""
    from attribution.data import DataError
    from circuits.app.errors import RunError
    from circuits.app.prompts import load_tokenizer, prompt_pairs

    if settings.positions not in POSITION_MODES:
        raise RunError(
            f"unknown positions {settings.positions!r}; choose one of {', '.join(POSITION_MODES)}"
        )
    if not method.position_aware:
        aware = ", ".join(n for n, cls in REGISTRY.items() if cls.position_aware)
        raise RunError(
            f"--positions: method {settings.method!r} does not keep per-position scores; use one "
            f"of {aware}, or leave out --positions"
        )
    try:
        train, test, _ = prompt_pairs(settings, load_tokenizer(settings.model))
    except (PositionError, DataError) as err:
        raise RunError(f"--positions {settings.positions}: {err}") from None
    if settings.positions == "tokens" and train.n_pos != test.n_pos:  # one axis for both
        raise RunError(
            f"--positions tokens: the train prompts have {train.n_pos} tokens and the test "
            f"prompts {test.n_pos}, but the circuit has one position axis for both; use prompts "
            "of one length in both splits, or --positions schema"
        )


@dataclasses.dataclass
class PositionRun:
    """What :func:`find_position_circuit` found: the minimal position-aware circuit (its mask
    ``[S, F, K]`` in ``minimal.mask``) and the ``positions`` section of the run record."""

    minimal: MinimalCircuit
    circuit: Circuit
    record: dict[str, Any]


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> float | None:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else None


def top_overlap(graph: Graph, *, fraction: float = 0.01, absolute: bool = True) -> dict:
    """Of the top ``fraction`` of position-agnostic edges (``k`` of them, at least 1), the
    share also among the first ``k`` distinct edges of the position-aware ranking."""
    k = max(1, math.ceil(fraction * graph.n_edges))
    agnostic = set(graph.ranked_edge_indices(absolute=absolute)[:k].tolist())
    per_edge = graph.n_forward * graph.n_backward
    distinct: list[int] = []
    seen: set[int] = set()
    for i in ranked_position_edges(graph, absolute=absolute).tolist():
        edge = i % per_edge
        if edge not in seen:
            seen.add(edge)
            distinct.append(edge)
            if len(distinct) == k:
                break
    return {"fraction": fraction, "k": k, "shared": len(agnostic & set(distinct)) / k}


def find_position_circuit(
    bridge: Any,
    graph: Graph,
    train: Any,
    held_out: CircuitEvaluator,
    agnostic: MinimalCircuit,
    agnostic_f: float,
    settings: Any,
    setup: Any,
    *,
    quiet: bool = False,
) -> PositionRun:
    """The minimal position-aware circuit on ``train`` (same target as ``agnostic``), its f on
    the held-out evaluator's prompts (with a bootstrap interval and random position-aware
    circuits of its size), the position-aware faithfulness curve, and the comparison with the
    position-agnostic circuit ``agnostic`` (held-out f ``agnostic_f``)."""
    searcher = CircuitEvaluator(bridge, graph, train, setup=dataclasses.replace(setup, quiet=True))
    minimal = minimal_position_circuit(
        searcher, graph, target=agnostic.target, absolute=settings.absolute, quiet=quiet
    )
    circuit = position_circuit(graph, minimal.mask)
    faith = evaluate(
        bridge, graph, held_out.data, circuit=circuit.edges, bootstrap=settings.bootstrap,
        random_baseline=True, seed=settings.seed, evaluator=held_out,
    )  # fmt: skip
    curve = position_faithfulness_curve(
        held_out, graph, fractions=tuple(settings.fractions), absolute=settings.absolute,
        random_baseline=True, seed=settings.seed,
    )  # fmt: skip
    spans = list(graph.positions)
    projected = circuit.edges.any(dim=0) & graph.real_edges
    agnostic_mask = agnostic.mask.to(torch.bool) & graph.real_edges
    in_circuit = circuit.edges
    top = top_position_edges(graph, TOP_POSITION_EDGES, absolute=settings.absolute)
    for row in top:
        up, port = graph.layout.edge_index(row["edge"])
        row["in_circuit"] = bool(in_circuit[spans.index(row["span"]), up, port])
    n_kept = int(in_circuit.sum())
    record = {
        "mode": settings.positions,
        "spans": spans,
        "n_spans": len(spans),
        "n_position_edges": len(spans) * graph.n_edges,
        "circuit": {
            "search_split": "train",
            "n_edges": n_kept,
            "n_edges_projected": int(projected.sum()),
            "n_nodes": int(circuit.nodes.sum()),
            "edge_fraction": n_kept / (len(spans) * graph.n_edges),
            "edges_per_span": dict(zip(spans, in_circuit.sum(dim=(1, 2)).tolist(), strict=True)),
            "reached_target": minimal.reached,
            "f_search": minimal.f,
            "n_evaluations": len(minimal.evaluations),
        },
        "faithfulness": {
            "f": faith.f,
            "ci": list(faith.ci) if faith.ci else None,
            "ci_level": faith.ci_level,
            "m_circuit": faith.m_circuit,
            "random_f": faith.random_f,
            "random_f_std": faith.random_f_std,
            "random_draws": len(faith.random_fs),
            "split": "test",
        },
        "comparison": {
            "target": list(agnostic.target),
            "agnostic_n_edges": agnostic.n_edges,
            # an edge without positions is kept at every span
            "agnostic_n_position_edges": agnostic.n_edges * len(spans),
            "agnostic_f_search": agnostic.f,
            "agnostic_f": agnostic_f,
            "aware_n_edges": n_kept,
            "aware_n_edges_projected": int(projected.sum()),
            "aware_f": faith.f,
            "shared_edges": int((projected & agnostic_mask).sum()),
            "jaccard": _jaccard(projected, agnostic_mask),
            "top_overlap": top_overlap(graph, absolute=settings.absolute),
        },
        "curve": {
            "fractions": curve.fractions,
            "n_edges": curve.n_edges,
            "f": curve.f,
            "random_f": curve.random_f,
            "random_f_std": curve.random_f_std,
            **curve.areas(),
        },
        "top_edges": top,
        # the minimal circuit is a prefix of the same ranking, so these are its edges
        "circuit_edges": top_position_edges(graph, n_kept, absolute=settings.absolute),
    }
    return PositionRun(minimal, circuit, record)
