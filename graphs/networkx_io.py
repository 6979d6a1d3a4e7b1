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

A position-aware graph (``graph.positions`` set) gets, by default, the layout of
:mod:`graphs.networkx_positions` instead: the same nodes and edges once per span, named
``"{node}@{span}"``, with the per-span scores and circuit; ``to_networkx(graph,
positions=False)`` gives the layout above (summed scores, the circuit's union over spans),
which reads back as a position-agnostic graph.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import torch

from graphs.edge_table import EdgeCollector, check_edge_record, parse_flag
from graphs.errors import GraphFormatError, GraphMismatchError
from graphs.graph import Graph
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


def to_networkx(
    graph: Graph, *, only_in_graph: bool = False, positions: bool | None = None
) -> nx.DiGraph:
    """The graph as a DiGraph (layout in the module docstring).

    ``only_in_graph=True`` keeps the in-graph edges, the ports they enter, the nodes that read
    those ports or write those edges, and the nodes flagged in ``graph.nodes_in_graph``.
    ``positions``: one node per (node, span) (:mod:`graphs.networkx_positions`); by default
    exactly when the graph has a position axis.
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
    if positions:
        if graph.positions is None:
            raise GraphMismatchError(
                "positions=True needs a position-aware graph, and this one has no position "
                "axis; attribute it with position-aware data (attribution.positions)"
            )
        from graphs.networkx_positions import to_networkx_positions

        return to_networkx_positions(graph, attrs, only_in_graph=only_in_graph)
    layout = graph.layout
    included = graph.real_edges & graph.in_graph
    mask = included if only_in_graph else graph.real_edges
    index = mask.nonzero()
    ups, ports = index[:, 0].tolist(), index[:, 1].tolist()
    scores = graph.scores[mask].tolist()  # same row-major order as nonzero()
    flags = graph.in_graph[mask].tolist()
    node_flags = graph.nodes_in_graph.tolist()
    port_in_graph = included.any(dim=0).tolist()
    # where(), not a product: a NaN score outside the circuit must not reach the sum
    port_scores = torch.where(included, graph.scores, 0.0).double().sum(dim=0).tolist()

    if only_in_graph:
        kept_ports = set(ports)
        kept_nodes = {n.name for n in layout.nodes if node_flags[n.index]}
        kept_nodes.update(layout.upstream[u].name for u in set(ups))
        kept_nodes.update(name for p in kept_ports for name in layout.ports[p].nodes)
    else:
        kept_ports = set(range(len(layout.ports)))
        kept_nodes = set(layout.node_by_name)

    G = nx.DiGraph(**attrs)
    for node in layout.nodes:
        if node.name in kept_nodes:
            G.add_node(
                node.name,
                kind=node.kind,
                layer=node.layer,
                head=node.head,
                port="",
                in_graph=bool(node_flags[node.index]),
            )
    for port in layout.ports:
        if port.port in _ATTENTION_PORTS and port.index in kept_ports:
            G.add_node(
                port.name,
                kind="port",
                port=port.port,
                layer=port.layer,
                head=port.head,
                in_graph=bool(port_in_graph[port.index]),
            )
            port_edge = {
                "kind": "port",
                "score": port_scores[port.index],
                "in_graph": bool(port_in_graph[port.index]),
            }
            G.add_edges_from((port.name, reader, dict(port_edge)) for reader in port.nodes)
    G.add_edges_from(
        (
            layout.upstream[u].name,
            layout.ports[p].name,
            {
                "kind": "edge",
                "name": f"{layout.upstream[u].name}->{layout.ports[p].name}",
                "port": layout.ports[p].port,
                "layer": layout.ports[p].layer,
                "head": layout.ports[p].head,
                "score": score,
                "in_graph": flag,
            },
        )
        for u, p, score, flag in zip(ups, ports, scores, flags, strict=True)
    )
    return G


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
    layout = graph.layout
    only = parse_flag(attrs.get("only_in_graph", False), "the graph", "only_in_graph")
    if "positions" in attrs:
        from graphs.networkx_positions import from_networkx_positions

        return from_networkx_positions(G, graph, only=only)

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
    collector.finish(
        complete=not only,
        missing_hint=" (graphs of only the circuit say only_in_graph=true)",
    )
    return graph


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
