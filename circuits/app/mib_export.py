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

import json
import re
from pathlib import Path
from typing import Any

import torch

from circuits.search.select import top_k
from graphs import Graph
from graphs.errors import CircuitDiscoveryError

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


_KV = re.compile(r"^a(\d+)\.kv(\d+)<([kv])>$")
_MIB_PORT = re.compile(r"^a(\d+)\.h(\d+)<([qkv])>$")


def _mib_ports(graph: Graph) -> list[tuple[tuple[str, ...], list[str]]]:
    """For each port (backward index): the nodes that read it and the MIB port names it is
    written as."""
    out: list[tuple[tuple[str, ...], list[str]]] = [((), [])] * graph.n_backward
    for port in graph.ports.values():
        kv = _KV.match(port.name)
        names = [f"{head}<{kv.group(3)}>" for head in port.nodes] if kv else [port.name]
        out[port.index] = (port.nodes, names)
    return out


def mib_graph(graph: Graph, edges: torch.Tensor | None = None) -> dict[str, Any]:
    """MIB's JSON graph of ``graph`` with ``edges`` (bool ``[n_forward, n_backward]``, default
    the graph's own circuit) in the circuit; nodes are in it when an in-circuit edge touches
    them."""
    edges = graph.in_graph if edges is None else edges
    ports = _mib_ports(graph)
    upstream = {n.forward_index: n.name for n in graph.nodes.values() if n.forward_index >= 0}
    scores = graph.scores.tolist()
    flags = edges.tolist()
    out_edges: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    for up, port in torch.nonzero(graph.real_edges).tolist():
        score, flag = float(scores[up][port]), bool(flags[up][port])
        readers, names = ports[port]
        for name in names:
            out_edges[f"{upstream[up]}->{name}"] = {"score": score, "in_graph": flag}
        if flag:
            touched.add(upstream[up])
            touched.update(readers)
    spec = graph.spec
    cfg = {
        "n_layers": spec.n_layers, "n_heads": spec.n_heads,
        "n_key_value_heads": spec.n_kv_heads or spec.n_heads, "d_model": spec.d_model,
        "parallel_attn_mlp": spec.parallel_attn_mlp,
    }  # fmt: skip
    return {"cfg": cfg, "nodes": {n: n in touched for n in graph.nodes}, "edges": out_edges}


def graph_edge_of(graph: Graph, mib_name: str) -> str:
    """The graph edge a MIB edge name stands for (``a0.h0->a1.h1<k>`` → ``a0.h0->a1.kv0<k>``
    on a grouped-query model); KeyError when there is none."""
    up, _, port = mib_name.partition("->")
    m = _MIB_PORT.match(port)
    if m and m.group(3) in "kv" and graph.spec.n_kv_heads not in (None, graph.spec.n_heads):
        layer, head, which = int(m.group(1)), int(m.group(2)), m.group(3)
        group = head // (graph.spec.n_heads // graph.spec.n_kv_heads)
        port = f"a{layer}.kv{group}<{which}>"
    name = f"{up}->{port}"
    graph.edge(name)  # KeyError for a name that is no edge
    return name


def export_mib(graph: Graph, folder: str | Path, task: str, model: str) -> list[Path]:
    """Write ``importances.json`` and the ten circuits of :data:`MIB_PERCENTS` into
    ``folder/{task}_{model}/``; returns the files written."""
    out = Path(folder) / f"{task}_{Path(model).name}"
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "importances.json"]
    _write(paths[0], mib_graph(graph, graph.real_edges))
    total = int(graph.real_edges.sum())
    for pct in MIB_PERCENTS:
        k = max(1, round(pct / 100 * total))
        path = out / f"edges_{pct:g}pct.json"
        _write(path, mib_graph(graph, top_k(graph, k, prune_dead=False).edges))
        paths.append(path)
    return paths


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


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
