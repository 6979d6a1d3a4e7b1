"""Conversion between :class:`Graph` and ``networkx.DiGraph``.

Layout of the DiGraph:

- graph attributes: ``format``, ``schema_version``, ``only_in_graph``, every ModelSpec field
  as its own scalar (``n_layers``, ``n_heads``, ...), so GraphML can store them, and
  ``metadata``, ``graph.metadata`` as JSON text.
- component nodes (``input``, ``a{l}.h{h}``, ``m{l}``, ``logits``): ``kind``, ``layer``,
  ``head``, ``port=""``, ``in_graph``.
- attention ports are nodes of their own (``a1.h2<q>``, ``a1.kv0<k>``; ``kind="port"``), since
  a DiGraph cannot hold parallel q/k/v edges from one upstream node to one head. Each has
  ``kind="port"`` edges to the heads that read it. MLP and logits ports are the component
  nodes themselves.
- port edges ``port node -> head`` (derived, not stored: readers ignore their flags and
  scores): ``kind="port"``; ``in_graph`` True when any circuit edge enters the port, so a
  tool that keeps only ``in_graph`` edges keeps the circuit's paths through attention heads;
  ``score`` the sum of the scores of the circuit edges entering the port (0.0 when none).
  The sum, not the largest ``|score|``: scores are first-order estimates of patching an edge,
  and first-order effects add, so the sum estimates patching all of the circuit's inputs to
  that port at once, sign included. The port node carries the same ``in_graph``.
- real edges ``upstream -> port node``: ``kind="edge"``, ``name``, ``port``, ``layer`` and
  ``head`` of the port, ``score`` (Python float), ``in_graph``.

A position-aware graph (``graph.positions`` set) gets, by default, the same layout once per
span, one node per (node, span), below; ``to_networkx(graph, positions=False)`` gives the
layout above (summed scores, the circuit's union over spans), which reads back as a
position-agnostic graph. The two are one layout: the position-agnostic graph is written as a
single span whose copies carry no span name, by the same code.

The position-aware layout: a position-aware edge ``(s, u -> v)`` joins the copy of ``u`` at
span ``s`` to the copy of ``v``'s port at span ``s`` (see :mod:`graphs.positions`), so
drawing tools (Gephi, yEd, networkx) see the graph as PEAP draws it, one column of nodes per
span:

- graph attributes: those above, plus ``positions`` (the span names as JSON text) and
  ``position_circuit`` (true when the circuit is position-aware, i.e.
  ``graph.position_in_graph`` is set).
- node ``"{node}@{span}"`` (``"a0.h1@S1"``, ``"input@0"``) for every component node and span:
  ``kind``, ``layer``, ``head``, ``port=""``, ``node`` (the component's name), ``span`` (the
  span's name), ``span_index`` and ``in_graph``, the component's flag
  (``graph.nodes_in_graph``, the same on every copy).
- attention port copies ``"a1.h2<q>@S1"`` (``kind="port"``, with ``node``, ``span`` and
  ``span_index``), and port edges (``span``, ``span_index`` too) from each to the heads that
  read it at the same span; as in the position-agnostic layout their ``in_graph`` and
  ``score`` are derived from the circuit's edges into that port at that span (any; sum) and
  not read back.
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
from graphs.errors import GraphFormatError, GraphMismatchError
from graphs.graph import Graph
from graphs.layout import Node, Port
from graphs.schema import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    check_format,
    metadata_from_stored,
    metadata_to_text,
    spec_from_mapping,
    spec_to_dict,
)

_ATTENTION_PORTS = ("q", "k", "v")
_MISSING_HINT = " (graphs of only the circuit say only_in_graph=true)"


def copy_name(name: str, span: str) -> str:
    """The id of the copy of node (or port) ``name`` at span ``span``: ``"name@span"``."""
    return f"{name}@{span}"


# ------------------------------------------------------------------------------ writing
def to_networkx(
    graph: Graph, *, only_in_graph: bool = False, positions: bool | None = None
) -> nx.DiGraph:
    """The graph as a DiGraph (layout in the module docstring).

    ``only_in_graph=True`` keeps the in-graph edges, the ports they enter, the nodes that read
    those ports or write those edges, and the nodes flagged in ``graph.nodes_in_graph``.
    ``positions``: one node per (node, span); by default exactly when the graph has a
    position axis.
    """
    if positions is None:
        positions = graph.positions is not None
    attrs = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "only_in_graph": bool(only_in_graph),
        **spec_to_dict(graph.spec),
        "metadata": metadata_to_text(graph.metadata),
    }
    if not positions:
        return _digraph(graph, attrs, graph.scores[None], graph.in_graph[None], None, only_in_graph)
    if graph.positions is None:
        raise GraphMismatchError(
            "positions=True needs a position-aware graph, and this one has no position "
            "axis; attribute it with position-aware data (attribution.positions)"
        )
    graph.check_positions()
    per_span = graph.position_in_graph
    # a position-agnostic circuit is kept at every span
    flags = graph.in_graph.expand(len(graph.positions), -1, -1) if per_span is None else per_span
    attrs.update(positions=json.dumps(list(graph.positions)), position_circuit=per_span is not None)
    return _digraph(graph, attrs, graph.position_scores, flags, graph.positions, only_in_graph)


def _digraph(
    graph: Graph,
    attrs: dict[str, Any],
    scores: torch.Tensor,
    flags: torch.Tensor,
    spans: tuple[str, ...] | None,
    only_in_graph: bool,
) -> nx.DiGraph:
    """The DiGraph of ``[S, n_forward, n_backward]`` ``scores`` and circuit ``flags``: one
    copy of every node per span, named after ``spans``, or (``spans`` None, ``S`` 1) the
    nodes themselves."""
    S = scores.shape[0]
    real = graph.real_edges.expand(S, -1, -1)
    included = flags & real
    mask = included if only_in_graph else real
    index = mask.nonzero()
    at, ups, ports = (index[:, i].tolist() for i in range(3))
    kept_nodes, kept_ports = _kept(graph, at, ups, ports, S, only_in_graph)
    port_in_graph = included.any(dim=1).tolist()  # [S, K]
    # where(), not a product: a NaN score outside the circuit must not reach the sum
    port_scores = torch.where(included, scores, 0.0).double().sum(dim=1).tolist()
    node_flags = graph.nodes_in_graph.tolist()
    G = nx.DiGraph(**attrs)
    for s in range(S):
        span = None if spans is None else spans[s]
        for node in graph.layout.nodes:
            if (node.name, s) in kept_nodes:
                nid, data = _node_copy(node, span, s, bool(node_flags[node.index]))
                G.add_node(nid, **data)
        for port in graph.layout.ports:
            if port.port in _ATTENTION_PORTS and (s, port.index) in kept_ports:
                flag, score = bool(port_in_graph[s][port.index]), port_scores[s][port.index]
                _add_port(G, port, span, s, flag, score)
    # row-major, the same order as nonzero()
    edges = zip(at, ups, ports, scores[mask].tolist(), included[mask].tolist(), strict=True)
    G.add_edges_from(
        _edge_copy(graph, s, u, p, score, flag, spans) for s, u, p, score, flag in edges
    )
    return G


def _kept(
    graph: Graph, at: list[int], ups: list[int], ports: list[int], S: int, only_in_graph: bool
) -> tuple[set[tuple[str, int]], set[tuple[int, int]]]:
    """The ``(node name, span)`` and ``(span, port index)`` copies the DiGraph holds."""
    layout = graph.layout
    if not only_in_graph:
        kept_ports = {(s, p) for s in range(S) for p in range(len(layout.ports))}
        return {(n.name, s) for n in layout.nodes for s in range(S)}, kept_ports
    kept_ports = set(zip(at, ports, strict=True))
    kept_nodes = {(layout.upstream[u].name, s) for s, u in zip(at, ups, strict=True)}
    kept_nodes.update((name, s) for s, p in kept_ports for name in layout.ports[p].nodes)
    touched = {name for name, _ in kept_nodes}
    node_flags = graph.nodes_in_graph.tolist()
    for node in layout.nodes:  # node-level circuits: a flagged node no kept edge touches
        if node_flags[node.index] and node.name not in touched:
            kept_nodes.update((node.name, s) for s in range(S))
    return kept_nodes, kept_ports


def _at(span: str | None, s: int) -> dict[str, Any]:
    """The span attributes of a copy at span ``s`` (none for a position-agnostic graph)."""
    return {} if span is None else {"span": span, "span_index": s}


def _copy_id(name: str, span: str | None, s: int) -> tuple[str, dict[str, Any]]:
    """A node's (or port's) id at span ``s`` and the attributes that say which copy it is."""
    if span is None:
        return name, {}
    return copy_name(name, span), {"node": name, **_at(span, s)}


def _node_copy(node: Node, span: str | None, s: int, flag: bool) -> tuple[str, dict[str, Any]]:
    nid, where = _copy_id(node.name, span, s)
    attrs = {"kind": node.kind, "layer": node.layer, "head": node.head, "port": ""}
    return nid, {**attrs, **where, "in_graph": flag}


def _add_port(
    G: nx.DiGraph, port: Port, span: str | None, s: int, flag: bool, score: float
) -> None:
    """An attention port's node (at span ``s``) and its port edges to the heads reading it."""
    pid, where = _copy_id(port.name, span, s)
    attrs = {"kind": "port", "port": port.port, "layer": port.layer, "head": port.head}
    G.add_node(pid, **attrs, **where, in_graph=flag)
    port_edge = {"kind": "port", **_at(span, s), "score": score, "in_graph": flag}
    G.add_edges_from((pid, _copy_id(reader, span, s)[0], dict(port_edge)) for reader in port.nodes)


def _edge_copy(
    graph: Graph, s: int, u: int, p: int, score: float, flag: bool, spans: tuple[str, ...] | None
) -> tuple[str, str, dict[str, Any]]:
    upstream, port = graph.layout.upstream[u], graph.layout.ports[p]
    span = None if spans is None else spans[s]
    data = {
        "kind": "edge",
        "name": f"{upstream.name}->{port.name}",
        **_at(span, s),
        "port": port.port,
        "layer": port.layer,
        "head": port.head,
        "score": score,
        "in_graph": flag,
    }
    return _copy_id(upstream.name, span, s)[0], _copy_id(port.name, span, s)[0], data


# ------------------------------------------------------------------------------ reading
def from_networkx(G: nx.DiGraph) -> Graph:
    """Rebuild a Graph from a DiGraph made by :func:`to_networkx` (or read from its GraphML).

    Edges of a full graph (``only_in_graph`` false) must all be present; in an
    ``only_in_graph`` graph, absent edges get score 0 and ``in_graph`` False. The flags and
    scores of port nodes and port edges are derived, so they are not read (a tool that edits
    a circuit edits the real edges).
    """
    if not G.is_directed():
        raise GraphFormatError("the graph is undirected; circuit-discovery graphs are directed")
    attrs: dict[str, Any] = G.graph
    check_format(attrs.get("format"), attrs.get("schema_version"))
    graph = Graph(spec_from_mapping(attrs, what="graph attribute"))
    graph.metadata = metadata_from_stored(attrs.get("metadata"))
    only = parse_flag(attrs.get("only_in_graph", False), "the graph", "only_in_graph")
    if "positions" in attrs:
        return _from_span_digraph(G, graph, only=only)
    _read_nodes(G, graph, only)
    collector = EdgeCollector(graph)
    for u, v, data in G.edges(data=True):
        label = f"edge '{u}->{v}'"
        kind = data.get("kind")
        if kind == "port":
            _check_port_edge(graph, u, v)
            continue  # its in_graph and score are derived from the edges entering the port
        check_edge_record(label, data, f"{u}->{v}")
        for key in ("score", "in_graph"):
            if key not in data:
                raise GraphFormatError(f"{label} lacks the '{key}' attribute")
        collector.add(label, u, v, data["score"], data["in_graph"])
    collector.finish(complete=not only, missing_hint=_MISSING_HINT)
    return graph


def _read_nodes(G: nx.DiGraph, graph: Graph, only: bool) -> None:
    """The node flags of a position-agnostic DiGraph, checking its node ids."""
    layout = graph.layout
    node_flags = graph.nodes_in_graph
    for name, data in G.nodes(data=True):
        node = layout.node_by_name.get(name)
        if node is None:
            port = layout.port_by_name.get(name)
            if port is None or port.port not in _ATTENTION_PORTS:
                raise GraphFormatError(
                    f"node {name!r} is neither a node nor an attention port of this model "
                    f"({_describe(graph)})"
                )
            continue  # port flags are derived from edges
        if "in_graph" not in data:
            raise GraphFormatError(f"node {name!r} lacks the 'in_graph' attribute")
        node_flags[node.index] = parse_flag(data["in_graph"], f"node {name!r}")
    if not only:
        absent = [n.name for n in layout.nodes if n.name not in G]
        if absent:
            raise GraphFormatError(
                f"lacks {len(absent)} of the model's {graph.n_nodes} nodes "
                f"(first: {', '.join(map(repr, absent[:3]))}); a full graph has every node"
            )


def _check_port_edge(graph: Graph, u: Any, v: Any) -> None:
    port = graph.layout.port_by_name.get(u)
    if port is None or port.port not in _ATTENTION_PORTS or v not in port.nodes:
        readers = f"; {u} is read by {', '.join(port.nodes)}" if port is not None else ""
        raise GraphFormatError(
            f"port edge '{u}->{v}' is not an attention port feeding a head that reads it{readers}"
        )


def _describe(graph: Graph) -> str:
    s = graph.spec
    return f"n_layers={s.n_layers}, n_heads={s.n_heads}, n_kv_heads={s.n_kv_heads}"


def read_positions(text: Any) -> tuple[str, ...]:
    """The span names stored in the ``positions`` graph attribute (JSON text)."""
    try:
        names = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        names = None
    return span_names(names, f"graph attribute 'positions' is {text!r} (JSON text)")


def _from_span_digraph(G: nx.DiGraph, graph: Graph, *, only: bool) -> Graph:
    """Fill ``graph`` (spec and metadata read) from a one-node-per-(node, span) DiGraph."""
    attrs: dict[str, Any] = G.graph
    positions = read_positions(attrs["positions"])
    circuit = parse_flag(attrs.get("position_circuit", False), "the graph", "position_circuit")
    where = _read_span_nodes(G, graph, positions, only)
    records = _span_records(G, graph, positions, where)
    collector = EdgeCollector(
        graph, positions, position_circuit=circuit, scores_from_positions=True
    )
    for (un, vn), (scores, flags) in records.items():
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
    collector.finish(complete=not only, missing_hint=_MISSING_HINT)
    return graph


def _read_span_nodes(
    G: nx.DiGraph, graph: Graph, positions: tuple[str, ...], only: bool
) -> dict[Any, tuple[str, int]]:
    """Node id -> ``(node or port name, span index)`` of every copy; sets the node flags,
    which every copy of a node must agree on."""
    layout = graph.layout
    where: dict[Any, tuple[str, int]] = {}
    node_flags: dict[str, bool] = {}
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
        _check_every_copy(graph, positions, where)
    for name, flag in node_flags.items():
        graph.nodes_in_graph[layout.node_by_name[name].index] = flag
    return where


def _check_every_copy(
    graph: Graph, positions: tuple[str, ...], where: dict[Any, tuple[str, int]]
) -> None:
    layout = graph.layout
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


def _span_records(
    G: nx.DiGraph, graph: Graph, positions: tuple[str, ...], where: dict[Any, tuple[str, int]]
) -> dict[tuple[str, str], tuple[list[Any], list[Any]]]:
    """``(upstream, port) -> (score per span, flag per span)`` from the edge copies (None at
    a span without a copy); checks each copy against its ends."""
    layout = graph.layout
    records: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
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
        S = len(positions)
        scores, flags = records.setdefault((un, vn), ([None] * S, [None] * S))
        scores[us] = data["score"]
        flags[us] = parse_flag(data["in_graph"], label)
    return records


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
