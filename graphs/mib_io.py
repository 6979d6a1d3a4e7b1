"""A graph as MIB's circuit files (export only): the files MIB's circuit-localization track
reads (Mueller et al. 2025; its EAP-IG ``Graph.from_json`` / ``Graph.from_pt``).

- JSON (format ``"mib"``): ``{"cfg": {n_layers, n_heads, parallel_attn_mlp, d_model},
  "nodes": {name: {"in_graph": bool}}, "edges": {name: {"score": float, "in_graph": bool}}}``;
- ``.pt`` (format ``"mib-pt"``): ``{"cfg", "src_nodes", "dst_nodes", "edges_scores",
  "edges_in_graph", "nodes_in_graph"}``, tensors laid out as EAP-IG's graph lays them out
  (:class:`MIBTensors`).

Names are EAP-IG's: nodes ``input``, ``a{l}.h{h}``, ``m{l}``, ``logits``; edges
``input->a0.h1<q>``, ``a0.h1->m2``, ``m3->logits``. Ports map one to one (q, k, v per head; an
MLP's input; the logits), except on grouped-query models: MIB's graph has k and v ports per
*query* head, ours per key/value head (``a1.kv0<k>``), so each such edge is written once per
query head of its group (``a0.h0->a1.kv0<k>`` → ``a0.h0->a1.h0<k>``, ``a0.h0->a1.h1<k>``)
with the same score and flag. :func:`graph_edge_of` maps every written name back to its edge.

MIB's files end in ``.json`` / ``.pt``, so these formats are chosen by name:
``save_graph(graph, "edges.json", format="mib")``. A MIB submission folder (importances, or
the circuits at MIB's sizes) is ``circuits.app.mib_export.export_mib``.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from graphs.atomic_files import atomic_write
from graphs.graph import Graph

__all__ = [
    "MIBTensors",
    "graph_edge_of",
    "mib_graph",
    "mib_port_names",
    "mib_tensors",
    "save_mib",
    "save_mib_pt",
]

_KV = re.compile(r"^a(\d+)\.kv(\d+)<([kv])>$")
_HEAD_PORT = re.compile(r"^a(\d+)\.h(\d+)<([qkv])>$")


def _mib_heads(graph: Graph) -> int:
    return graph.spec.n_heads


def _mib_port_index(graph: Graph, name: str) -> int:
    """EAP-IG's backward index of a MIB port name (``a1.h2<k>``, ``m1``, ``logits``)."""
    heads = _mib_heads(graph)
    per_layer = 3 * heads + 1
    if name == "logits":
        return graph.spec.n_layers * per_layer
    head = _HEAD_PORT.match(name)
    if head:
        layer, h, which = int(head.group(1)), int(head.group(2)), head.group(3)
        return layer * per_layer + "qkv".index(which) * heads + h
    return int(name[1:]) * per_layer + 3 * heads  # an MLP input, m{layer}


def mib_port_names(graph: Graph) -> list[list[str]]:
    """For each of our ports (backward index): the MIB port names it is written as (one, or
    one per query head of a grouped-query k/v port)."""
    out: list[list[str]] = [[] for _ in range(graph.n_backward)]
    for port in graph.ports.values():
        kv = _KV.match(port.name)
        out[port.index] = [f"{h}<{kv.group(3)}>" for h in port.nodes] if kv else [port.name]
    return out


def _dst_names(graph: Graph) -> list[str]:
    """MIB's backward (destination) names in EAP-IG's order."""
    names = []
    for layer in range(graph.spec.n_layers):
        for which in "qkv":
            names += [f"a{layer}.h{h}<{which}>" for h in range(_mib_heads(graph))]
        names.append(f"m{layer}")
    return [*names, "logits"]


@dataclass
class MIBTensors:
    """A graph in EAP-IG's layout: ``scores``/``in_graph``/``real`` are
    ``[n_forward, L·(3H + 1) + 1]``, ``nodes_in_graph`` is ``[n_forward]``."""

    cfg: dict[str, Any]
    src_nodes: list[str]
    dst_nodes: list[str]
    scores: torch.Tensor
    in_graph: torch.Tensor
    real: torch.Tensor
    nodes_in_graph: torch.Tensor


def _node_flags(graph: Graph, in_graph: torch.Tensor) -> torch.Tensor:
    """MIB's node rule after a selection (``apply_topn``): a node is in the circuit when an
    in-circuit edge leaves it and one enters it (the input counts as entered)."""
    leaves = in_graph.any(dim=1)
    entered = torch.zeros_like(leaves)
    entered[0] = True
    per_layer = 3 * _mib_heads(graph) + 1
    reads = in_graph.any(dim=0)
    for node in graph.nodes.values():
        if node.forward_index < 0 or node.name == "input":
            continue
        if node.kind == "attention":
            cols = [_mib_port_index(graph, f"{node.name}<{w}>") for w in "qkv"]
        else:
            cols = [node.layer * per_layer + 3 * _mib_heads(graph)]
        entered[node.forward_index] = bool(reads[cols].any())
    return leaves & entered


def mib_tensors(graph: Graph, edges: torch.Tensor | None = None) -> MIBTensors:
    """``graph``'s scores, with ``edges`` (bool ``[n_forward, n_backward]`` of ours, default the
    graph's circuit) in the circuit, laid out as EAP-IG's graph lays them out."""
    edges = graph.in_graph if edges is None else edges
    names = _dst_names(graph)
    n_dst = len(names)
    scores = torch.zeros(graph.n_forward, n_dst, dtype=torch.float32)
    in_graph = torch.zeros(graph.n_forward, n_dst, dtype=torch.bool)
    real = torch.zeros(graph.n_forward, n_dst, dtype=torch.bool)
    for port, mib_names in enumerate(mib_port_names(graph)):
        for name in mib_names:
            col = _mib_port_index(graph, name)
            real_port = graph.real_edges[:, port]
            scores[:, col] = torch.where(real_port, graph.scores[:, port].float(), 0.0)
            in_graph[:, col] = edges[:, port] & real_port
            real[:, col] = real_port
    src = [n.name for n in sorted(graph.nodes.values(), key=lambda n: n.forward_index)]
    src = [n for n in src if graph.nodes[n].forward_index >= 0]
    spec = graph.spec
    cfg = {"n_layers": spec.n_layers, "n_heads": spec.n_heads,
           "parallel_attn_mlp": bool(spec.parallel_attn_mlp), "d_model": spec.d_model}  # fmt: skip
    return MIBTensors(cfg, src, names, scores, in_graph, real, _node_flags(graph, in_graph))


def mib_graph(graph: Graph, edges: torch.Tensor | None = None) -> dict[str, Any]:
    """MIB's JSON graph of ``graph`` with ``edges`` (default the graph's circuit) in the
    circuit: nodes as ``{"in_graph": bool}`` (``logits`` always in), every real edge as
    ``{"score", "in_graph"}``."""
    t = mib_tensors(graph, edges)
    nodes = {name: {"in_graph": bool(t.nodes_in_graph[i])} for i, name in enumerate(t.src_nodes)}
    nodes["logits"] = {"in_graph": True}
    scores, flags = t.scores.tolist(), t.in_graph.tolist()
    out_edges = {
        f"{t.src_nodes[up]}->{t.dst_nodes[col]}": {
            "score": scores[up][col], "in_graph": flags[up][col]}
        for up, col in t.real.nonzero().tolist()
    }  # fmt: skip
    return {"cfg": t.cfg, "nodes": nodes, "edges": out_edges}


def graph_edge_of(graph: Graph, mib_name: str) -> str:
    """The graph edge a MIB edge name stands for (``a0.h0->a1.h1<k>`` → ``a0.h0->a1.kv0<k>``
    on a grouped-query model); KeyError when there is none."""
    up, _, port = mib_name.partition("->")
    m = _HEAD_PORT.match(port)
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


def save_mib_pt(
    graph: Graph, path: str | os.PathLike[str], *, edges: torch.Tensor | None = None
) -> None:
    """Write :func:`mib_tensors` of ``graph`` (``edges`` in the circuit, default its own
    circuit) to ``path`` in MIB's ``.pt`` form, atomically."""
    t = mib_tensors(graph, edges)
    buffer = io.BytesIO()
    torch.save({"cfg": t.cfg, "src_nodes": t.src_nodes, "dst_nodes": t.dst_nodes,
                "edges_scores": t.scores, "edges_in_graph": t.in_graph,
                "nodes_in_graph": t.nodes_in_graph}, buffer)  # fmt: skip
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
