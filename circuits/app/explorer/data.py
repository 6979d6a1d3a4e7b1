"""What the explorer page shows, as one JSON-able dict built from a graph and its run record.

Nodes sit where the static circuit figure puts them (:func:`circuits.app.figures.node_xy`,
:func:`~circuits.app.figures.port_xy` for the shared key/value ports of grouped-query models),
so the two pictures agree. Edges are listed in the run's ranking (by ``|score|`` unless the run
ranked by signed score; ties in index order, :meth:`graphs.Graph.ranked_edge_indices`) as
parallel columns, so a page holds GPT-2 small's 32,491 edges in well under a megabyte. Scores
follow the project's sign convention: ``m(clean run with the edge patched to its ablated
write) − m(clean run)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from circuits.app.explorer.supernodes import Supernodes
from circuits.app.figures import NEGATIVE, POSITIVE, ZERO, edge_bends, node_xy, port_xy
from graphs import Graph

__all__ = ["explorer_data"]


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _bends(
    nodes: list[dict[str, Any]], ports: list[dict[str, Any]], up: list[int], port_idx: list[int]
) -> list[float]:
    """Each edge's Bézier offset as the circuit figure draws it
    (:func:`circuits.app.figures.edge_bends`), rounded; the page turns it into Cytoscape
    control points (static/edge_route.js)."""
    xy = np.array([[n["x"], n["y"]] for n in nodes], dtype=float).reshape(-1, 2)
    target = [ports[p]["target"] for p in port_idx]
    places = xy[[i for i, n in enumerate(nodes) if n["kind"] != "port"]]
    bends = edge_bends(xy[up], xy[target], [ports[p]["kind"] for p in port_idx], places)
    return [round(b, 3) or 0 for b in bends.tolist()]


def _nodes_and_ports(graph: Graph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The page's ``nodes`` (placed as the circuit figure places them; a shared k/v port of
    grouped-query attention becomes a node of its own, kind ``"port"``) and ``ports`` (each
    with the index of the node an edge into it ends at)."""
    spec, layout = graph.spec, graph.layout
    L, H = spec.n_layers, spec.n_heads
    nodes: list[dict[str, Any]] = []
    for node in layout.nodes:
        x, y = node_xy(node, H, L)
        nodes.append(
            {"name": node.name, "kind": node.kind, "layer": node.layer, "head": node.head,
             "x": x, "y": y}
        )  # fmt: skip
    ports: list[dict[str, Any]] = []
    for port in layout.ports:
        readers = [layout.node_by_name[n].index for n in port.nodes]
        if len(readers) == 1:
            target = readers[0]
        else:  # a shared k/v port of grouped-query attention: a node of its own
            x, y = port_xy(port.port, [(nodes[r]["x"], nodes[r]["y"]) for r in readers])
            target = len(nodes)
            nodes.append(
                {"name": port.name, "kind": "port", "layer": port.layer, "head": port.head,
                 "x": x, "y": y, "readers": readers}
            )  # fmt: skip
        ports.append({"name": port.name, "kind": port.port, "target": target})
    return nodes, ports


def _run_results(record: dict[str, Any]) -> dict[str, Any]:
    """The page's ``curve`` and ``faithfulness``, from the run record."""
    curve = record.get("curve") or {}
    faith = record.get("faithfulness") or {}
    circuit = record.get("circuit") or {}
    return {
        "curve": {
            "n_edges": list(curve.get("n_edges") or []),
            "f": list(curve.get("f") or []),
            "random_f": list(curve.get("random_f") or []),
            "split": faith.get("split", "test"),
        },
        "faithfulness": {
            "f": faith.get("f"),
            "ci": faith.get("ci"),
            "n_edges": circuit.get("n_edges"),
            "n_examples": faith.get("n_examples"),
        },
    }


def explorer_data(
    graph: Graph,
    record: dict[str, Any] | None = None,
    *,
    supernodes: Supernodes | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """The page's data: ``nodes`` (name, kind, layer, head, x, y; shared k/v ports as kind
    ``"port"`` with their ``readers``), ``ports`` (name, kind, index of the node an edge into it
    ends at), ``edges`` as rank-ordered columns ``up`` (node index), ``port`` (port index),
    ``score``, ``in`` (1 when in the run's circuit) and ``bend`` (the curve's sideways offset,
    as the circuit figure routes it), the run's ``curve`` and
    ``faithfulness``, and any ``supernodes``."""
    record = record or {}
    settings = record.get("settings") or {}
    absolute = bool(settings.get("absolute", True))
    spec = graph.spec
    L, H = spec.n_layers, spec.n_heads
    nodes, ports = _nodes_and_ports(graph)
    order = graph.ranked_edge_indices(absolute=absolute)
    nb = graph.n_backward
    up = (order // nb).tolist()
    port_idx = (order % nb).tolist()
    bends = _bends(nodes, ports, up, port_idx)
    scores = graph.scores.flatten()[order].to(torch.float64).tolist()
    in_graph = graph.in_graph.flatten()[order].to(torch.int8).tolist()

    model = record.get("model") or {}
    task = record.get("task") or {}
    if title is None:
        name = model.get("name") or spec.model_name or "model"
        title = f"{task['name']} on {name}" if task.get("name") else f"circuit of {name}"
    return {
        "title": title,
        "model": model.get("name") or spec.model_name,
        "n_layers": L,
        "n_heads": H,
        "absolute": absolute,
        "colors": {"positive": POSITIVE, "negative": NEGATIVE, "zero": ZERO},
        "nodes": nodes,
        "ports": ports,
        "edges": {
            "up": up,
            "port": port_idx,
            "score": [_sig(s) if s == s else None for s in scores],  # NaN: null
            "in": in_graph,
            "bend": bends,
        },
        "n_circuit": int(sum(in_graph)),
        **_run_results(record),
        "supernodes": supernodes.to_dict() if supernodes is not None else None,
        "live": None,
    }
