"""Circuits in the layout MIB's circuit-localization track reads (Mueller et al. 2025).

``export_mib(graph, folder, task, model)`` writes ``folder/{task}_{model}/``:

- ``importances.json``: every edge's score (MIB's "importance scores" submission);
- ``edges_{pct}pct.json`` for each of :data:`MIB_PERCENTS` (0.1 … 100 % of the edges): the
  top-scoring ``round(pct/100 · n_edges)`` edges (by ``|score|``, at least one) marked
  ``in_graph``, the nodes they touch marked in the circuit (MIB's "multiple circuits" format).

Each file is MIB's JSON graph: ``{"cfg": {...}, "nodes": {name: bool}, "edges": {name:
{"score": float, "in_graph": bool}}}`` with the EAP-IG names MIB uses: nodes ``input``,
``a{l}.h{h}``, ``m{l}``, ``logits``; edges ``input->a0.h1<q>``, ``a0.h1->m2``,
``m3->logits``. Ports map one to one (q, k, v per head; an MLP's input; the logits), except on
grouped-query models: MIB's graph has k and v ports per *query* head, ours per key/value head
(``a1.kv0<k>``), so each such edge is written once per query head of its group
(``a0.h0->a1.kv0<k>`` → ``a0.h0->a1.h0<k>``, ``a0.h0->a1.h1<k>``) with the same score and
flag. :func:`graph_edge_of` maps every written name back to its edge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.search.select import top_k
from graphs import Graph
from graphs.errors import CircuitDiscoveryError
from graphs.mib_io import graph_edge_of, mib_graph, save_mib

__all__ = [
    "MIB_PERCENTS",
    "MIBExportError",
    "export_mib",
    "export_mib_run",
    "graph_edge_of",
    "mib_curve",
    "mib_graph",
]

#: Circuit sizes of the MIB circuit track, in percent of the edges.
MIB_PERCENTS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


class MIBExportError(CircuitDiscoveryError, ValueError):
    """A run folder or graph file that cannot be exported; the message says the fix."""


def export_mib(graph: Graph, folder: str | Path, task: str, model: str) -> list[Path]:
    """Write ``importances.json`` and the ten circuits of :data:`MIB_PERCENTS` into
    ``folder/{task}_{model}/``; returns the files written."""
    out = Path(folder) / f"{task}_{Path(model).name}"
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "importances.json"]
    save_mib(graph, paths[0], edges=graph.real_edges)
    total = int(graph.real_edges.sum())
    for pct in MIB_PERCENTS:
        k = max(1, round(pct / 100 * total))
        path = out / f"edges_{pct:g}pct.json"
        save_mib(graph, path, edges=top_k(graph, k, prune_dead=False).edges)
        paths.append(path)
    return paths


def export_mib_run(source: Path, out: Path | None, overwrite: bool) -> list[Path]:
    """``circuits export RUN_DIR --format mib``: the run's scores (``scores.safetensors``, or
    a graph file) as MIB circuits in ``out`` (default ``RUN_DIR/mib``), named after the run's
    task and model (its ``metrics.json``)."""
    from circuits.app.run import METRICS_FILE, RunRecord

    folder = source if source.is_dir() else source.parent
    graph_file = folder / "scores.safetensors" if source.is_dir() else source
    if not graph_file.is_file():
        raise MIBExportError(
            f"{source}: no scores.safetensors; give a run folder written by `circuits discover` "
            "or a graph file"
        )
    from circuits.app.integrity import load_checked_graph

    graph = load_checked_graph(graph_file)
    task, model = "task", graph.spec.model_name or "model"
    if (folder / METRICS_FILE).is_file():
        record = RunRecord.load(folder)
        task, model = record.task.get("name", task), record.model.get("name", model)
    out = out or folder / "mib"
    target = out / f"{task}_{Path(model).name}"
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise MIBExportError(f"{target} exists and is not empty; pass --overwrite to replace it")
    return export_mib(graph, out, task, model)


def mib_curve(model: Any, graph: Graph, data: Any, metric: str, **kwargs: Any) -> dict[str, Any]:
    """MIB's faithfulness at its ten sizes and its CPR/CMD (``cpr``, ``cmd``): trapezoid areas of
    f(k) and |1 − f(k)| over the edge fraction k on a linear axis; also ``cpr_log`` and
    ``cmd_log``, the same areas over log10 k (:mod:`circuits.search.areas`)."""
    from circuits.search.faithfulness import faithfulness_curve

    fractions = tuple(p / 100 for p in MIB_PERCENTS)
    curve = faithfulness_curve(model, graph, data, metric, fractions=fractions, **kwargs)
    return {"fractions": curve.fractions, "n_edges": curve.n_edges, "f": curve.f,
            **curve.areas()}  # fmt: skip
