"""The networkx (and GraphML) layout of a position-aware graph: one node per (node, span).

A position-aware edge ``(s, u -> v)`` joins the copy of ``u`` at span ``s`` to the copy of
``v``'s port at span ``s`` (see :mod:`graphs.positions`), so drawing tools (Gephi, yEd,
networkx) see the graph as PEAP draws it, one column of nodes per span:

- graph attributes: those of :mod:`graphs.networkx_io`, plus ``positions`` (the span names
  as JSON text) and ``position_circuit`` (true when the circuit is position-aware, i.e.
  ``graph.position_in_graph`` is set).
- node ``"{node}@{span}"`` (``"a0.h1@S1"``, ``"input@0"``) for every component node and span:
  ``kind``, ``layer``, ``head``, ``port=""``, ``node`` (the component's name), ``span`` (the
  span's name), ``span_index`` and ``in_graph``, the component's flag
  (``graph.nodes_in_graph``, the same on every copy).
- attention port copies ``"a1.h2<q>@S1"`` (``kind="port"``, with ``node``, ``span`` and
  ``span_index``), and port edges (``span``, ``span_index`` too) from each to the heads that
  read it at the same span; as in
  the position-agnostic layout their ``in_graph`` and ``score`` are derived from the circuit's
  edges into that port at that span (any; sum) and not read back.
- edge copies ``"{u}@{span}" -> "{port}@{span}"``: ``kind="edge"``, ``name`` (the edge's
  position-agnostic name ``"u->port"``), ``span``, ``span_index``, ``port``, ``layer``,
  ``head``, ``score`` (``position_scores[s, u, port]``) and ``in_graph`` (the per-span circuit
  ``position_in_graph[s, u, port]``, or the edge's ``in_graph`` at every span when the
  circuit is position-agnostic).

Readers rebuild ``position_scores`` from the edge copies (``scores`` is their sum) and the
circuit from their flags. With ``only_in_graph`` the DiGraph keeps the edge copies in the
circuit, the port and node copies at their ends, and every span's copy of a component
flagged in ``nodes_in_graph`` that no kept edge copy touches (node-level circuits).
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx
import torch

from graphs.edge_table import EdgeCollector, check_edge_record, parse_flag, span_names
from graphs.errors import GraphFormatError
from graphs.graph import Graph

_ATTENTION_PORTS = ("q", "k", "v")


def copy_name(name: str, span: str) -> str:
    """The id of the copy of node (or port) ``name`` at span ``span``: ``"name@span"``."""
    return f"{name}@{span}"


def to_networkx_positions(
    graph: Graph, attrs: dict[str, Any], *, only_in_graph: bool
) -> nx.DiGraph:
    """The one-node-per-(node, span) DiGraph of a position-aware graph (module docstring);
    ``attrs`` are the position-agnostic layout's graph attributes."""
    graph.check_positions()
    layout, positions = graph.layout, graph.positions
    S = len(positions)
    real = graph.real_edges.expand(S, -1, -1)
    flags_per_span = (
        graph.in_graph.expand(S, -1, -1)
        if graph.position_in_graph is None
        else graph.position_in_graph
    )
    included = flags_per_span & real
    mask = included if only_in_graph else real
    index = mask.nonzero()
    spans, ups, ports = (index[:, i].tolist() for i in range(3))
    scores = graph.position_scores[mask].tolist()  # row-major, same order as nonzero()
    flags = included[mask].tolist()
    node_flags = graph.nodes_in_graph.tolist()
    port_in_graph = included.any(dim=1).tolist()  # [S, K]
    # where(), not a product: a NaN score outside the circuit must not reach the sum
    port_scores = torch.where(included, graph.position_scores, 0.0).double().sum(dim=1).tolist()

    if only_in_graph:
        kept_ports = set(zip(spans, ports, strict=True))
        kept_nodes = {(layout.upstream[u].name, s) for s, u in zip(spans, ups, strict=True)}
        kept_nodes.update((name, s) for s, p in kept_ports for name in layout.ports[p].nodes)
        touched = {name for name, _ in kept_nodes}
        for node in layout.nodes:
            if node_flags[node.index] and node.name not in touched:
                kept_nodes.update((node.name, s) for s in range(S))
    else:
        kept_ports = {(s, p) for s in range(S) for p in range(len(layout.ports))}
        kept_nodes = {(n.name, s) for n in layout.nodes for s in range(S)}

    G = nx.DiGraph(
        **attrs,
        positions=json.dumps(list(positions)),
        position_circuit=graph.position_in_graph is not None,
    )
    for s, span in enumerate(positions):
        for node in layout.nodes:
            if (node.name, s) in kept_nodes:
                G.add_node(
                    copy_name(node.name, span),
                    kind=node.kind,
                    layer=node.layer,
                    head=node.head,
                    port="",
                    node=node.name,
                    span=span,
                    span_index=s,
                    in_graph=bool(node_flags[node.index]),
                )
        for port in layout.ports:
            if port.port not in _ATTENTION_PORTS or (s, port.index) not in kept_ports:
                continue
            name = copy_name(port.name, span)
            in_graph = bool(port_in_graph[s][port.index])
            G.add_node(
                name,
                kind="port",
                port=port.port,
                layer=port.layer,
                head=port.head,
                node=port.name,
                span=span,
                span_index=s,
                in_graph=in_graph,
            )
            port_edge = {
                "kind": "port",
                "span": span,
                "span_index": s,
                "score": port_scores[s][port.index],
                "in_graph": in_graph,
            }
            G.add_edges_from(
                (name, copy_name(reader, span), dict(port_edge)) for reader in port.nodes
            )
    for s, u, p, score, flag in zip(spans, ups, ports, scores, flags, strict=True):
        upstream, port, span = layout.upstream[u], layout.ports[p], positions[s]
        G.add_edge(
            copy_name(upstream.name, span),
            copy_name(port.name, span),
            kind="edge",
            name=f"{upstream.name}->{port.name}",
            span=span,
            span_index=s,
            port=port.port,
            layer=port.layer,
            head=port.head,
            score=score,
            in_graph=flag,
        )
    return G


def read_positions(text: Any) -> tuple[str, ...]:
    """The span names stored in the ``positions`` graph attribute (JSON text)."""
    try:
        names = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        names = None
    return span_names(names, f"graph attribute 'positions' is {text!r} (JSON text)")


def from_networkx_positions(G: nx.DiGraph, graph: Graph, *, only: bool) -> Graph:
    """Fill ``graph`` (spec and metadata read) from a DiGraph of :func:`to_networkx_positions`."""
    attrs: dict[str, Any] = G.graph
    positions = read_positions(attrs["positions"])
    S = len(positions)
    circuit = parse_flag(attrs.get("position_circuit", False), "the graph", "position_circuit")
    layout = graph.layout
    where: dict[Any, tuple[str, int]] = {}
    node_flags: dict[str, bool] = {}
    n_ports = 0
    for nid, data in G.nodes(data=True):
        name, s = _copy_of(nid, data, positions)
        where[nid] = (name, s)
        if name not in layout.node_by_name:
            port = layout.port_by_name.get(name)
            if port is None or port.port not in _ATTENTION_PORTS:
                raise GraphFormatError(
                    f"node {nid!r} is the copy of {name!r}, which is neither a node nor an "
                    "attention port of this model"
                )
            n_ports += 1
            continue  # port flags are derived from edges
        if "in_graph" not in data:
            raise GraphFormatError(f"node {nid!r} lacks the 'in_graph' attribute")
        flag = parse_flag(data["in_graph"], f"node {nid!r}")
        if node_flags.setdefault(name, flag) != flag:
            raise GraphFormatError(
                f"the copies of node {name!r} disagree on in_graph; a node's flag is the same "
                "at every span"
            )
    if not only:
        expected = {
            copy_name(n, span)
            for n in (
                *layout.node_by_name,
                *(p.name for p in layout.ports if p.port in _ATTENTION_PORTS),
            )
            for span in positions
        }
        absent = sorted(expected - set(where))
        if absent:
            raise GraphFormatError(
                f"lacks {len(absent)} of the {len(expected)} (node, span) copies (first: "
                f"{', '.join(map(repr, absent[:3]))}); a full position-aware graph has every "
                "node and attention port at every span"
            )
    for name, flag in node_flags.items():
        graph.nodes_in_graph[layout.node_by_name[name].index] = flag

    records: dict[tuple[str, str], tuple[list[Any], list[Any], str]] = {}
    for u, v, data in G.edges(data=True):
        label = f"edge '{u}->{v}'"
        (un, us), (vn, vs) = where[u], where[v]
        if us != vs:
            raise GraphFormatError(
                f"{label} joins spans {positions[us]!r} and {positions[vs]!r}; a position-aware "
                "edge joins two copies at one span (attention across positions is inside the head)"
            )
        kind = data.get("kind")
        if kind == "port":
            port = layout.port_by_name.get(un)
            if port is None or port.port not in _ATTENTION_PORTS or vn not in port.nodes:
                raise GraphFormatError(
                    f"port edge {label} is not an attention port feeding a head that reads it"
                )
            continue
        check_edge_record(label, data, f"{un}->{vn}")
        if "span_index" in data and data["span_index"] != us:
            raise GraphFormatError(
                f"{label} has span_index={data['span_index']!r} but joins copies at span {us}"
            )
        for key in ("score", "in_graph"):
            if key not in data:
                raise GraphFormatError(f"{label} lacks the '{key}' attribute")
        scores, flags, _ = records.setdefault((un, vn), ([None] * S, [None] * S, label))
        scores[us] = data["score"]
        flags[us] = parse_flag(data["in_graph"], label)

    collector = EdgeCollector(
        graph, positions, position_circuit=circuit, scores_from_positions=True
    )
    for (un, vn), (scores, flags, label) in records.items():
        label = f"edge '{un}->{vn}'"
        absent = [positions[s] for s, x in enumerate(scores) if x is None]
        if absent and not only:
            raise GraphFormatError(
                f"{label} lacks its copy at span {absent[0]!r}; a full position-aware graph "
                "has every edge at every span (graphs of only the circuit say only_in_graph=true)"
            )
        scores = [0.0 if x is None else x for x in scores]
        present = {f for f in flags if f is not None}
        if not circuit and len(present) > 1:
            raise GraphFormatError(
                f"the copies of {label} disagree on in_graph, but the graph says "
                "position_circuit=false (one flag for every span)"
            )
        flags = [bool(f) for f in flags]
        collector.add(
            label, un, vn, 0.0, any(flags),
            position_scores=scores, position_flags=flags if circuit else None,
        )  # fmt: skip
    collector.finish(
        complete=not only,
        missing_hint=" (graphs of only the circuit say only_in_graph=true)",
    )
    return graph


def _copy_of(nid: Any, data: dict[str, Any], positions: tuple[str, ...]) -> tuple[str, int]:
    """``(node or port name, span index)`` of the copy ``nid``, checked against its id."""
    name, s = data.get("node"), data.get("span_index")
    if (
        not isinstance(name, str)
        or not isinstance(s, int)
        or isinstance(s, bool)
        or not 0 <= s < len(positions)
    ):
        raise GraphFormatError(
            f"node {nid!r} lacks a 'node' name and a 'span_index' in 0..{len(positions) - 1}; "
            "a position-aware graph has one node per (node, span), named 'node@span'"
        )
    if nid != copy_name(name, positions[s]) or data.get("span", positions[s]) != positions[s]:
        raise GraphFormatError(
            f"node {nid!r} says node={name!r}, span_index={s} (span {positions[s]!r}), so it "
            f"should be named {copy_name(name, positions[s])!r}"
        )
    return name, s
