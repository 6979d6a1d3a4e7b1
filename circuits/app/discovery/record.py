"""The run record (``metrics.json``) of what the job computed, section by section: the model,
task, settings, circuit, held-out faithfulness, curve, search, attribution diagnostics,
behaviour, and, for a ``--positions`` run, the ``positions`` section comparing the
position-aware circuit with the position-agnostic one:

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

import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from circuits.app.checks import run_warnings, verdict
from circuits.app.discovery.attribute import Prepared
from circuits.app.discovery.settings import DiscoverySettings
from circuits.app.discovery.statistics import (
    QUANTILES,
    distinct_prompts,
    example_pairs,
    jaccard,
    quantiles,
    standard_error,
    top_overlap,
)
from circuits.app.prompts import held_out_prompts
from circuits.app.run import RunRecord, strict_json
from circuits.search.faithfulness import Faithfulness, FaithfulnessCurve
from circuits.search.minimal import MinimalCircuit
from circuits.search.select import top_position_edges
from graphs import Circuit, Graph

__all__ = [
    "POSITION_GRAPHML",
    "POSITION_JSON",
    "TOP_POSITION_EDGES",
    "Found",
    "position_record",
    "run_record",
    "version",
]

TOP_EDGES = 25
#: Position-aware edges listed in ``metrics.json`` (``positions.top_edges``).
TOP_POSITION_EDGES = 20
#: The run folder's copies of the graph with the position-aware circuit (GraphML: one node
#: per (node, span)); ``graph.*`` keep the position-agnostic circuit.
POSITION_GRAPHML, POSITION_JSON = "position_graph.graphml", "position_graph.json"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("circuit-discovery")
    except PackageNotFoundError:  # run from a source tree without installing
        return "0+unknown"


@dataclass
class Found:
    """What the job's steps computed, the record's sources."""

    settings: DiscoverySettings
    source: str  # where the model came from: "zoo", "path" or "hub"
    bridge: Any
    tokenizer: Any
    run: Prepared
    result: Any  # attribution's result (its diagnostics)
    minimal: MinimalCircuit
    faith: Faithfulness
    curve: FaithfulnessCurve
    behaviour: dict[str, Any]
    timings: dict[str, float]
    #: the ``positions`` section of a ``--positions`` run (:func:`position_record`)
    positions: dict[str, Any] | None = None


def run_record(found: Found, command: str | None) -> RunRecord:
    """The run record of ``found``, with its verdict and warnings."""
    graph, minimal, faith, curve = found.run.graph, found.minimal, found.faith, found.curve
    n_edges_total = int(graph.real_edges.sum())
    top = graph.top_edges(TOP_EDGES)
    circuit_edges = [e for e in graph.top_edges(n_edges_total) if e.in_graph]
    record = RunRecord(
        package_version=version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        model=_model_section(found),
        task=_task_section(found),
        settings=_settings_section(found),
        graph={"n_nodes": graph.n_nodes, "n_edges": n_edges_total},
        circuit={
            "search_split": "train",
            "n_edges": graph.count_included_edges(),
            "n_nodes": graph.count_included_nodes(),
            "edge_fraction": graph.count_included_edges() / n_edges_total,
            "reached_target": minimal.reached,
            "f_search": minimal.f,
        },
        faithfulness=_faithfulness_section(faith),
        curve={
            **_curve_section(curve),
            "random_draws": curve.random_draws,
            "m_circuits": curve.m_circuits,
            **curve.areas(),  # cpr/cmd: MIB's linear axis; cpr_log/cmd_log: log axis
        },
        search={
            "target": list(minimal.target),
            "n_evaluations": len(minimal.evaluations),
            "evaluations": [asdict(e) for e in minimal.evaluations],
        },
        attribution={
            **{k: float(v) for k, v in found.result.diagnostics.items()},
            "ig_gap_definition": (
                found.run.method.gap_definition if found.run.method.reports_gap else None
            ),
        },
        timings=found.timings,
        top_edges=[{"edge": e.name, "score": e.score, "in_circuit": e.in_graph} for e in top],
        circuit_edges=[{"edge": e.name, "score": e.score} for e in circuit_edges],
        examples=example_pairs(found.run.test, found.tokenizer),
        behaviour=_behaviour_section(found.behaviour, faith),
        figures={
            "circuit": "circuit.png",
            "faithfulness_curve": "faithfulness_curve.png",
            "score_histogram": "score_histogram.png",
        },
        positions=found.positions if found.positions is not None else {},
    )
    if found.positions is not None:
        record.figures["position_circuit"] = "position_circuit.png"
        record.positions["files"] = [POSITION_GRAPHML, POSITION_JSON]
    record.verdict = verdict(record.to_dict())
    record.warnings = run_warnings(strict_json(record.to_dict()))
    return record


def _model_section(found: Found) -> dict[str, Any]:
    spec, bridge = found.run.graph.spec, found.bridge
    return {
        "name": found.settings.model,
        "source": found.source,
        "architecture": spec.architecture,
        "n_layers": spec.n_layers,
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "d_model": spec.d_model,
        "n_parameters": sum(p.numel() for p in bridge.parameters()),
        "dtype": str(next(bridge.parameters()).dtype).replace("torch.", ""),
        "device": str(next(bridge.parameters()).device),
        "devices": sorted({str(p.device) for p in bridge.parameters()}),
        "processing": dict(getattr(bridge, "circuit_discovery_processing", {})),
    }


def _task_section(found: Found) -> dict[str, Any]:
    train, test = found.run.train, found.run.test
    return {
        **found.run.task_info,  # name and description; a prompt file's layout and split
        "metric": found.settings.task_metric,
        "n_attribution": len(train),
        "n_evaluation": len(test),
        "attribution_split": "train",
        "evaluation_split": "test",
        "n_positions": train.n_pos,
        "seed": found.settings.seed,
        **distinct_prompts(train, "attribution"),
        **distinct_prompts(test, "evaluation"),
        **held_out_prompts(train, test),  # the report's held-out sentence
    }


def _settings_section(found: Found) -> dict[str, Any]:
    settings, method = found.settings, found.run.method
    return {
        "method": settings.method,
        "steps": settings.steps if method.integrates else None,
        "quadrature_rule": settings.quadrature_rule if method.integrates else None,
        "method_options": method.settings() if settings.method_options else None,
        "ablation": settings.ablation,
        "metric": found.settings.task_metric,
        "target": list(found.minimal.target),
        "absolute": settings.absolute,
        "batch_size": settings.batch_size,
        "memory_budget_gb": settings.memory_budget_gb,
        "device_map": settings.device_map,
        "positions": settings.positions,
        "fractions": list(settings.fractions),
        "bootstrap": settings.bootstrap,
        "seed": settings.seed,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _faithfulness_section(faith: Faithfulness) -> dict[str, Any]:
    return {
        "f": faith.f,
        "ci": list(faith.ci) if faith.ci else None,
        "ci_level": faith.ci_level,
        "m_full": faith.m_full,
        "m_circuit": faith.m_circuit,
        "m_empty": faith.m_empty,
        "random_f": faith.random_f,
        "random_f_std": faith.random_f_std,
        "random_fs": faith.random_fs,
        "random_draws": len(faith.random_fs),
        "m_diff_se": standard_error(faith.per_example_full, faith.per_example_empty),
        "n_examples": faith.n_examples,
        "split": "test",
    }


def _curve_section(curve: FaithfulnessCurve) -> dict[str, Any]:
    """The curve's sizes, f and random baseline (what both curves of a run record)."""
    return {
        "fractions": curve.fractions,
        "n_edges": curve.n_edges,
        "f": curve.f,
        "random_f": curve.random_f,
        "random_f_std": curve.random_f_std,
    }


def _behaviour_section(behaviour: dict[str, Any], faith: Faithfulness) -> dict[str, Any]:
    return {
        **behaviour,
        "split": "test",
        "quantiles": list(QUANTILES),
        "m_full_quantiles": quantiles(faith.per_example_full),
        "m_circuit_quantiles": quantiles(faith.per_example_circuit),
        "m_empty_quantiles": quantiles(faith.per_example_empty),
    }


def position_record(
    graph: Graph,
    settings: DiscoverySettings,
    aware: tuple[MinimalCircuit, Circuit, Faithfulness, FaithfulnessCurve],
    agnostic: MinimalCircuit,
    agnostic_f: float,
) -> dict[str, Any]:
    """The ``positions`` section: the position-aware circuit ``aware`` (its search, circuit,
    held-out f and curve) and its comparison with the position-agnostic ``agnostic``
    (held-out f ``agnostic_f``)."""
    minimal, circuit, faith, curve = aware
    spans = list(graph.positions)
    in_circuit = circuit.edges
    top = top_position_edges(graph, TOP_POSITION_EDGES, absolute=settings.absolute)
    for row in top:
        up, port = graph.layout.edge_index(row["edge"])
        row["in_circuit"] = bool(in_circuit[spans.index(row["span"]), up, port])
    n_kept = int(in_circuit.sum())
    return {
        "mode": settings.positions,
        "spans": spans,
        "n_spans": len(spans),
        "n_position_edges": len(spans) * graph.n_edges,
        "circuit": _position_circuit_section(graph, minimal, circuit),
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
        "comparison": _comparison_section(graph, settings, circuit, faith, agnostic, agnostic_f),
        "curve": {**_curve_section(curve), **curve.areas()},
        "top_edges": top,
        # the minimal circuit is a prefix of the same ranking, so these are its edges
        "circuit_edges": top_position_edges(graph, n_kept, absolute=settings.absolute),
    }


def _position_circuit_section(
    graph: Graph, minimal: MinimalCircuit, circuit: Circuit
) -> dict[str, Any]:
    spans = list(graph.positions)
    n_kept = int(circuit.edges.sum())
    return {
        "search_split": "train",
        "n_edges": n_kept,
        "n_edges_projected": int(_projection(graph, circuit).sum()),
        "n_nodes": int(circuit.nodes.sum()),
        "edge_fraction": n_kept / (len(spans) * graph.n_edges),
        "edges_per_span": dict(zip(spans, circuit.edges.sum(dim=(1, 2)).tolist(), strict=True)),
        "reached_target": minimal.reached,
        "f_search": minimal.f,
        "n_evaluations": len(minimal.evaluations),
    }


def _comparison_section(
    graph: Graph,
    settings: DiscoverySettings,
    circuit: Circuit,
    faith: Faithfulness,
    agnostic: MinimalCircuit,
    agnostic_f: float,
) -> dict[str, Any]:
    projected = _projection(graph, circuit)
    agnostic_mask = agnostic.mask.to(torch.bool) & graph.real_edges
    n_spans = len(graph.positions)
    return {
        "target": list(agnostic.target),
        "agnostic_n_edges": agnostic.n_edges,
        # an edge without positions is kept at every span
        "agnostic_n_position_edges": agnostic.n_edges * n_spans,
        "agnostic_f_search": agnostic.f,
        "agnostic_f": agnostic_f,
        "aware_n_edges": int(circuit.edges.sum()),
        "aware_n_edges_projected": int(projected.sum()),
        "aware_f": faith.f,
        "shared_edges": int((projected & agnostic_mask).sum()),
        "jaccard": jaccard(projected, agnostic_mask),
        "top_overlap": top_overlap(graph, absolute=settings.absolute),
    }


def _projection(graph: Graph, circuit: Circuit) -> torch.Tensor:
    """The position-agnostic edges a position-aware circuit keeps at any span."""
    return circuit.edges.any(dim=0) & graph.real_edges
