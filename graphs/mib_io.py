"""One graph's circuit as MIB's JSON graph (export only): the file MIB's circuit-localization
track reads (Mueller et al. 2025), ``{"cfg": {...}, "nodes": {name: bool}, "edges": {name:
{"score": float, "in_graph": bool}}}``, with the EAP-IG names MIB uses: nodes ``input``,
``a{l}.h{h}``, ``m{l}``, ``logits``; edges ``input->a0.h1<q>``, ``a0.h1->m2``,
``m3->logits``. Ports map one to one (q, k, v per head; an MLP's input; the logits), except on
grouped-query models: MIB's graph has k and v ports per *query* head, ours per key/value head
(``a1.kv0<k>``), so each such edge is written once per query head of its group
(``a0.h0->a1.kv0<k>`` → ``a0.h0->a1.h0<k>``, ``a0.h0->a1.h1<k>``) with the same score and
flag. :func:`graph_edge_of` maps every written name back to its edge.

MIB's files end in ``.json`` like this package's own JSON graphs, so the format is chosen by
name: ``save_graph(graph, "edges.json", format="mib")``. A MIB submission (the ten circuit
sizes of a run) is ``circuits.app.mib_export.export_mib``, which writes each with
:func:`save_mib`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import torch

from graphs.atomic_files import atomic_write
from graphs.graph import Graph

__all__ = ["graph_edge_of", "mib_graph", "save_mib"]

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


def save_mib(
    graph: Graph, path: str | os.PathLike[str], *, edges: torch.Tensor | None = None
) -> None:
    """Write :func:`mib_graph` of ``graph`` (``edges`` in the circuit, default its own
    circuit) to ``path`` as JSON, atomically."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(mib_graph(graph, edges)).encode("utf-8"))
