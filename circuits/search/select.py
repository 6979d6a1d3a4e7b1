"""Turn scored graphs into circuits: top-n, threshold, greedy growth and dead-edge pruning, and
the same rankings over position-aware edges ``(span, upstream, port)``.

Everything here is a pure graph operation on the dense tensors of a :class:`graphs.Graph`
(``scores``, ``real_edges``, ``in_graph``, ``nodes_in_graph``); no model is involved. Each
selection function returns a :class:`graphs.Circuit` (edge and node masks) and leaves the graph
as it was, as networkx algorithms do: ``graph.set_circuit(top_n(graph, 200))`` puts the circuit
into the graph, and ``top_n(graph, 200).n_edges`` counts it. :func:`top_k` is the one
top-k rule that ``top_n``, the faithfulness curve and the minimal-circuit search all use, with
an explicit choice about dead edges.

Sign convention
---------------
An edge's score estimates ``m(clean run with that edge patched to its corrupted value) -
m(clean run)`` (see :mod:`graphs.graph`). Both signs can matter, so by default
(``absolute=True``) edges are ranked by ``|score|``, largest first. With ``absolute=False``
they are ranked by the signed score, largest (most positive) first: use that when the metric is
oriented so that patching an important edge *raises* it, or negate the scores first
(``graph.set_scores(-graph.scores)``) to prefer the most negative ones. Ties are broken by
index order (``upstream * n_backward + port``), exactly as :meth:`Graph.ranked_edge_indices`
does, so every function here is deterministic.

Dead edges
----------
An edge ``u -> port`` of a circuit is *alive* when it lies on a path ``input -> ... -> logits``
made of circuit edges: ``u`` is reachable from ``input`` and one of the nodes that read ``port``
reaches ``logits``. A node is entered through any of its ports: a head through its ``q`` port
and the ``k`` / ``v`` ports it reads (on grouped-query models, the ports shared by its key/value
group), an MLP or the logits through their single port. Dead edges cannot carry the clean signal
from the input to the logits, so by default (``prune_dead=True``) every selection function
removes them with :func:`prune_dead_edges`; a circuit may then hold fewer than the ``n`` edges
asked for. Pass ``prune_dead=False`` to keep exactly what was selected.

Node membership
---------------
Without dead-edge pruning, ``nodes_in_graph`` is what :meth:`Graph.set_in_graph` derives from
the edges (both ends of every edge, i.e. the upstream node and every reader of the port), or for
``level="node"`` the selected nodes. After dead-edge pruning it is the set of *alive* nodes:
those reachable from ``input`` that also reach ``logits``. That is every upstream node of a
surviving edge and every reader of its port except, on grouped-query models, a query head whose
shared ``k``/``v`` port is in the circuit but whose own output leads nowhere.

Position-aware edges
--------------------
On a graph whose ``position_scores`` came from a position-aware attribution
(:func:`attribution.positions.with_positions`) an edge is ranked per span: a position-aware
circuit is a :class:`graphs.Circuit` whose ``edges`` mask is ``[n_spans, n_forward,
n_backward]`` and whose nodes are those at either end of an edge kept at any span
(:func:`position_circuit`, :func:`top_n_positions`, :func:`threshold_positions`). These are
never pruned for dead edges.
"""

from __future__ import annotations

import heapq
import math
import numbers
import operator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from graphs.circuit import Circuit
from graphs.errors import ArgumentTypeError, CircuitDiscoveryError
from graphs.graph import Graph
from graphs.layout import Layout
from graphs.positions import PositionError
from graphs.spec import ModelSpec

__all__ = [
    "Circuit",
    "SelectionError",
    "circuit_size",
    "greedy",
    "node_scores",
    "position_circuit",
    "position_mask",
    "prune_dead_edges",
    "ranked_position_edges",
    "threshold",
    "threshold_positions",
    "top_fraction",
    "top_k",
    "top_n",
    "top_n_positions",
    "top_position_edges",
]

_LEVELS = ("edge", "node")


# ------------------------------------------------------------------------------------- structure
@dataclass(frozen=True)
class _Structure:
    """Index data derived once per model shape.

    ``reader[j, i]``: node ``i`` (``graph.layout.nodes`` order) reads port ``j``.
    ``stages``: ``(first node, end node, first port, end port, reader block)`` in an order where
    every port's writers come from earlier stages (``input`` being stage -1): per layer its
    heads with their q/k/v ports, then its MLP, and finally the logits. Nodes and ports of a
    stage are contiguous index ranges; the reader block is ``reader[ports][:, nodes]`` as a
    numpy array (the sweeps run in numpy: many small single-threaded operations are faster and
    steadier than torch's thread-pool dispatch, especially on a busy machine).
    ``node_ports[i]``: the ports node ``i`` reads (empty for ``input``).
    ``rankable``: heads and MLPs, the nodes ``level="node"`` ranks.
    """

    reader: torch.Tensor
    stages: tuple[tuple[int, int, int, int, np.ndarray], ...]
    node_ports: tuple[tuple[int, ...], ...]
    rankable: torch.Tensor


@lru_cache(maxsize=8)
def _structure(spec: ModelSpec) -> _Structure:
    layout = Layout(spec)
    n_nodes = len(layout.nodes)
    reader = torch.zeros(layout.n_backward, n_nodes, dtype=torch.bool)
    node_ports: list[list[int]] = [[] for _ in range(n_nodes)]
    for port in layout.ports:
        for name in port.nodes:
            i = layout.node_by_name[name].index
            reader[port.index, i] = True
            node_ports[i].append(port.index)

    ranges = []
    for layer in range(spec.n_layers):
        first_head = layout.head_index(layer, 0)
        mlp, mlp_port = layout.mlp_index(layer), layout.mlp_port(layer)
        ranges.append((first_head, mlp, layer * layout.ports_per_layer, mlp_port))
        ranges.append((mlp, mlp + 1, mlp_port, mlp_port + 1))
    ranges.append((n_nodes - 1, n_nodes, layout.logits_port, layout.logits_port + 1))
    reader_np = reader.numpy()
    stages = tuple(
        (n0, n1, p0, p1, np.ascontiguousarray(reader_np[p0:p1, n0:n1])) for n0, n1, p0, p1 in ranges
    )
    rankable = torch.tensor([n.kind in ("attention", "mlp") for n in layout.nodes])
    return _Structure(
        reader=reader,
        stages=stages,
        node_ports=tuple(tuple(p) for p in node_ports),
        rankable=rankable,
    )


# ------------------------------------------------------------------------------------- validation
class SelectionError(CircuitDiscoveryError, ValueError):
    """A selection that cannot be made as asked: a bad count, fraction, level or threshold,
    or scores that cannot be ranked (NaN)."""


def _check_graph(graph: object) -> Graph:
    if not isinstance(graph, Graph):
        raise ArgumentTypeError(f"expected a graphs.Graph, got {type(graph).__name__}")
    return graph


def _check_scores(graph: Graph) -> None:
    real_scores = graph.scores[graph.real_edges]
    n_nan = int(torch.isnan(real_scores).sum())
    if n_nan:
        raise SelectionError(
            f"graph.scores has {n_nan} NaN score(s) among its {graph.n_edges} edges; "
            "edges cannot be ranked. Check the attribution run (or replace them, e.g. "
            "graph.set_scores(torch.nan_to_num(graph.scores)))"
        )


def _check_level(level: object) -> str:
    if level not in _LEVELS:
        raise SelectionError(f"level must be 'edge' or 'node', got {level!r}")
    return level  # type: ignore[return-value]


def _check_count(n: object, total: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ArgumentTypeError(
            f"n must be an int (a number of {what}), got {type(n).__name__} {n!r}; "
            "use top_fraction for a fraction"
        )
    n = operator.index(n)
    if n < 0:
        raise SelectionError(f"n must be >= 0, got {n}")
    if n > total:
        raise SelectionError(f"n = {n} exceeds the {total} {what} of this graph")
    return n


def _keys(graph: Graph, absolute: bool) -> torch.Tensor:
    """Ranking keys as float64 ``[n_forward, n_backward]`` (same values ranked_edge_indices uses)."""
    keys = graph.scores.to(torch.float64)
    return keys.abs() if absolute else keys


def _n_rankable(graph: Graph) -> int:
    return int(_structure(graph.spec).rankable.sum())


# ------------------------------------------------------------------------------------- public API
def node_scores(graph: Graph) -> torch.Tensor:
    """Signed node scores, float64 ``[n_nodes]`` in ``graph.layout.nodes`` order.

    A node's score is the sum of the signed scores of the edges leaving it. Attribution scores
    are linear in the upstream node's activation difference, so this sum is the same method's
    estimate of ``m(clean with the node's whole output patched) - m(clean)``; opposite edge
    effects cancel, as they would when the node is patched. ``logits`` (no outgoing edges) gets 0.
    """
    _check_graph(graph)
    _check_scores(graph)
    scores = torch.where(graph.real_edges, graph.scores.to(torch.float64), 0.0)
    out = torch.zeros(graph.n_nodes, dtype=torch.float64)
    out[: graph.n_forward] = scores.sum(dim=1)
    return out


def top_n(
    graph: Graph,
    n: int,
    *,
    absolute: bool = True,
    level: str = "edge",
    prune_dead: bool = True,
) -> Circuit:
    """Keep the ``n`` best edges (``level="edge"``) or nodes (``level="node"``).

    Edge level: the ``n`` real edges with the largest ``|score|`` (``absolute=True``) or the
    largest signed score (``absolute=False``; scores estimate ``m(patched) - m(clean)``), ties
    in index order; ``0 <= n <= graph.n_edges``.

    Node level: heads and MLPs are ranked by :func:`node_scores` (the signed sum of their
    outgoing edges' scores), by its absolute value unless ``absolute=False``; the ``n`` best
    (``0 <= n <= n_layers * (n_heads + 1)``) are kept and ``input`` and ``logits`` always are.
    The circuit holds every real edge whose upstream node is kept and whose port is read by a
    kept node. A grouped key/value port counts as read when *any* of its query heads is kept:
    a head that is not kept is ablated as a whole, so the shared k/v input only matters through
    the kept heads, and dropping it would cut a kept head off its keys and values.
    ``nodes_in_graph`` is the kept nodes (the alive ones among them after dead-edge pruning).

    With ``prune_dead`` (default) dead edges and nodes are then removed
    (:func:`prune_dead_edges`), so fewer than ``n`` edges/nodes may remain.
    """
    _check_graph(graph)
    level = _check_level(level)
    _check_scores(graph)
    if level == "edge":
        return top_k(graph, n, absolute=absolute, prune_dead=prune_dead)

    structure = _structure(graph.spec)
    n = _check_count(n, int(structure.rankable.sum()), "heads and MLPs")
    scores = node_scores(graph)
    keys = scores.abs() if absolute else scores
    candidates = structure.rankable.nonzero().squeeze(1)
    order = torch.sort(-keys[candidates], stable=True).indices
    kept = ~structure.rankable  # input and logits
    kept[candidates[order[:n]]] = True
    port_read = (structure.reader & kept[None, :]).any(dim=1)
    edges = graph.real_edges & kept[: graph.n_forward, None] & port_read[None, :]
    return _apply(graph, edges, kept, prune_dead)


def top_k(graph: Graph, k: int, *, absolute: bool = True, prune_dead: bool) -> Circuit:
    """The ``k`` real edges with the largest ``|score|`` (signed score with
    ``absolute=False``), ties in index order (:meth:`Graph.ranked_edge_indices`), then dead
    edges removed when ``prune_dead`` (which must be chosen: the curve and the minimal search
    evaluate exactly ``k`` edges, ``top_n`` prunes by default)."""
    _check_graph(graph)
    _check_scores(graph)
    k = _check_count(k, graph.n_edges, "edges")
    return ranked_prefix(graph, graph.ranked_edge_indices(absolute=absolute), k, prune_dead)


def ranked_prefix(graph: Graph, order: torch.Tensor, k: int, prune_dead: bool) -> Circuit:
    """The circuit of the first ``k`` flat edge indices of ``order`` (a ranking computed once,
    e.g. by a search that evaluates many prefixes)."""
    edges = torch.zeros(graph.n_forward * graph.n_backward, dtype=torch.bool)
    edges[order[:k]] = True
    return _apply(graph, edges.view(graph.n_forward, graph.n_backward), None, prune_dead)


def top_fraction(
    graph: Graph,
    fraction: float,
    *,
    absolute: bool = True,
    level: str = "edge",
    prune_dead: bool = True,
) -> Circuit:
    """:func:`top_n` with ``n = round(fraction * total)`` (halves round up, at least 1), where
    ``total`` is ``graph.n_edges`` (``level="edge"``) or the number of heads and MLPs
    (``level="node"``); ``0 < fraction <= 1``."""
    _check_graph(graph)
    level = _check_level(level)
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ArgumentTypeError(
            f"fraction must be a number in (0, 1], got {type(fraction).__name__}"
        )
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):  # also rejects NaN
        raise SelectionError(f"fraction must be in (0, 1], got {fraction}")
    total = graph.n_edges if level == "edge" else _n_rankable(graph)
    n = min(total, max(1, math.floor(fraction * total + 0.5)))
    return top_n(graph, n, absolute=absolute, level=level, prune_dead=prune_dead)


def threshold(
    graph: Graph, value: float, *, absolute: bool = True, prune_dead: bool = True
) -> Circuit:
    """Keep the real edges with ``|score| >= value`` (``absolute=True``) or ``score >= value``
    (``absolute=False``; scores estimate ``m(patched) - m(clean)``), then prune dead edges unless
    ``prune_dead=False``."""
    _check_graph(graph)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"value must be a number, got {type(value).__name__} {value!r}")
    if math.isnan(float(value)):
        raise SelectionError("value must be a number, got NaN")
    _check_scores(graph)
    edges = graph.real_edges & (_keys(graph, absolute) >= float(value))
    return _apply(graph, edges, None, prune_dead)


def greedy(graph: Graph, n: int, *, absolute: bool = True, prune_dead: bool = True) -> Circuit:
    """Grow a circuit of ``n`` edges backwards from the logits.

    Start from the node set ``{logits}``. A real edge ``u -> port`` is a candidate once some node
    that reads ``port`` is in the set (the logits for the logits port, the head for its q port,
    any head of the group for a shared k/v port, the MLP for its port). Repeatedly take the best
    candidate (largest ``|score|``, or signed score with ``absolute=False``; ties in index order)
    and add its upstream node ``u`` to the set, which makes the edges into ``u``'s ports
    candidates. Stop after ``n`` edges (``0 <= n <= graph.n_edges``; every edge eventually
    becomes a candidate, since every node has an edge to the logits).

    Every selected edge has a path to the logits, but not necessarily one from the input (an
    upstream node whose own inputs were never chosen). With ``prune_dead`` (default) those edges
    are then removed by :func:`prune_dead_edges` and the circuit holds fewer than ``n`` edges;
    the selection is not refilled. Pass ``prune_dead=False`` for exactly ``n`` edges.

    Scales with a heap holding one candidate per open port: each port's incoming edges are
    sorted once (a column-wise sort of the score tensor), after which each step costs
    ``O(log(ports))``.
    """
    _check_graph(graph)
    _check_scores(graph)
    n = _check_count(n, graph.n_edges, "edges")
    structure = _structure(graph.spec)
    n_backward = graph.n_backward
    real = graph.real_edges

    # Per port (column): real edges first, best key first, ties by upstream index (stable sorts).
    keys = _keys(graph, absolute)
    order = torch.sort(-keys, dim=0, stable=True).indices
    unreal = (~real).gather(0, order).to(torch.uint8)
    order = order.gather(0, torch.sort(unreal, dim=0, stable=True).indices)
    sorted_keys = keys.gather(0, order)
    counts = real.sum(dim=0).tolist()

    columns: dict[int, tuple[list[int], list[float]]] = {}
    heap: list[tuple[float, int, int, int]] = []

    def push(port: int, pos: int) -> None:
        ups, ks = columns[port]
        heapq.heappush(heap, (-ks[pos], ups[pos] * n_backward + port, port, pos))

    in_set = [False] * graph.n_nodes
    port_open = [False] * n_backward

    def add_node(node: int) -> None:
        in_set[node] = True
        for port in structure.node_ports[node]:
            if port_open[port] or counts[port] == 0:
                continue
            port_open[port] = True
            c = counts[port]
            columns[port] = (order[:c, port].tolist(), sorted_keys[:c, port].tolist())
            push(port, 0)

    add_node(graph.n_nodes - 1)  # logits
    chosen: list[int] = []
    while len(chosen) < n and heap:
        _, flat, port, pos = heapq.heappop(heap)
        chosen.append(flat)
        if pos + 1 < counts[port]:
            push(port, pos + 1)
        up = flat // n_backward  # forward index == node index for upstream nodes
        if not in_set[up]:
            add_node(up)

    edges = torch.zeros(graph.n_forward * n_backward, dtype=torch.bool)
    edges[torch.tensor(chosen, dtype=torch.long)] = True
    return _apply(graph, edges.view(graph.n_forward, n_backward), None, prune_dead)


def prune_dead_edges(graph: Graph, circuit: Circuit | None = None) -> Circuit:
    """The circuit (``graph``'s own by default) without the edges and nodes that lie on no
    ``input -> ... -> logits`` path.

    An edge ``u -> port`` survives iff ``u`` is reachable from ``input`` through circuit edges
    and some node reading ``port`` reaches ``logits`` through circuit edges. A node is reachable
    when a circuit edge from a reachable node enters any of its ports (for a head: its q port or
    the k/v ports it reads, shared by its group on grouped-query models); ``input`` is
    reachable. A node reaches ``logits`` when it has a circuit edge into a port one of whose
    readers reaches ``logits``; ``logits`` reaches itself.

    ``nodes_in_graph`` becomes the alive nodes (reachable and reaching ``logits``); see the
    module docstring. Implemented as one forward and one backward sweep over the layers on the
    dense edge mask (a few milliseconds for Llama-3-8B's 805,681 edges). ``graph`` is not
    modified.
    """
    _check_graph(graph)
    edges = graph.in_graph if circuit is None else circuit.edges
    alive_edges, alive_nodes = _alive(graph, edges.to(torch.bool) & graph.real_edges)
    return Circuit(alive_edges, alive_nodes)


def circuit_size(graph: Graph) -> dict[str, int]:
    """``{"edges": edges in the circuit, "nodes": nodes in the circuit}``."""
    _check_graph(graph)
    return {"edges": graph.count_included_edges(), "nodes": graph.count_included_nodes()}


# ------------------------------------------------------------------------------------- internals
def _apply(
    graph: Graph, edges: torch.Tensor, nodes: torch.Tensor | None, prune_dead: bool
) -> Circuit:
    edges = edges & graph.real_edges
    if prune_dead:
        edges, alive = _alive(graph, edges)
        nodes = alive if nodes is None else alive & nodes
    return graph.circuit_of(edges, nodes)


def _alive(graph: Graph, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alive edges, alive nodes)`` of the edge set ``edges`` (bool ``[n_forward, n_backward]``)."""
    structure = _structure(graph.spec)
    n_forward = graph.n_forward
    edges = (edges.to("cpu", torch.bool) & graph.real_edges).numpy()

    # Forward sweep: reach[i] = node i is reachable from input.
    reach = np.zeros(graph.n_nodes, dtype=bool)
    reach[0] = True
    for n0, n1, p0, p1, block in structure.stages:
        live_ports = edges[reach[:n_forward], p0:p1].any(axis=0)
        reach[n0:n1] = (block & live_ports[:, None]).any(axis=0)

    # Backward sweep: coreach[i] = node i reaches logits; useful[j] = a reader of port j does.
    coreach = np.zeros(graph.n_nodes, dtype=bool)
    coreach[-1] = True
    useful = np.zeros(graph.n_backward, dtype=bool)
    useful[graph.layout.logits_port] = True
    for n0, n1, p0, p1, block in reversed(structure.stages[:-1]):
        coreach[n0:n1] = edges[n0:n1][:, useful].any(axis=1)
        useful[p0:p1] = (block & coreach[n0:n1][None, :]).any(axis=1)
    coreach[0] = bool(edges[0, useful].any())

    alive_edges = edges & reach[:n_forward, None] & useful[None, :]
    return torch.from_numpy(alive_edges), torch.from_numpy(reach & coreach)


# -------------------------------------------------------------------------- position-aware edges
def position_scores(graph: Graph) -> torch.Tensor:
    """``graph.position_scores`` ``[n_spans, n_forward, n_backward]``; PositionError when the
    graph has no position axis."""
    if graph.position_scores is None:
        raise PositionError(
            "this graph has no position axis; attribute it with data from "
            "attribution.positions.with_positions(data, 'tokens' or a SpanSchema)"
        )
    return graph.position_scores


def ranked_position_edges(graph: Graph, *, absolute: bool = True) -> torch.Tensor:
    """Flat indices into ``[n_spans, n_forward, n_backward]`` of every real position-aware
    edge, best score first (ties in index order)."""
    scores = position_scores(graph)
    real = graph.real_edges.expand_as(scores).flatten().nonzero().squeeze(1)
    flat = scores.flatten().to(torch.float64)[real]
    order = torch.sort(-(flat.abs() if absolute else flat), stable=True).indices
    return real[order]


def position_circuit(graph: Graph, edges: torch.Tensor) -> Circuit:
    """The circuit of a bool ``[n_spans, n_forward, n_backward]`` mask (real edges only)."""
    edges = edges.to("cpu", torch.bool) & graph.real_edges
    return Circuit(edges.clone(), graph._nodes_touched(edges.any(dim=0)))


def position_mask(graph: Graph, flat: torch.Tensor) -> torch.Tensor:
    """Bool ``[n_spans, n_forward, n_backward]`` mask with the position-aware edges at the flat
    indices ``flat`` (as :func:`ranked_position_edges` gives them) set."""
    scores = position_scores(graph)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[flat] = True
    return mask.view(scores.shape)


def top_n_positions(graph: Graph, n: int, *, absolute: bool = True) -> Circuit:
    """The ``n`` best position-aware edges (by ``|score|`` unless ``absolute=False``)."""
    if n < 0:
        raise SelectionError(f"n must be >= 0, got {n}")
    return position_circuit(
        graph, position_mask(graph, ranked_position_edges(graph, absolute=absolute)[:n])
    )


def threshold_positions(graph: Graph, threshold: float, *, absolute: bool = True) -> Circuit:
    """Position-aware edges whose score (``|score|`` by default) is at least ``threshold``."""
    scores = position_scores(graph)
    value = scores.abs() if absolute else scores
    return position_circuit(graph, (value >= threshold) & graph.real_edges)


def top_position_edges(graph: Graph, k: int, *, absolute: bool = True) -> list[dict]:
    """The ``k`` best position-aware edges as ``{"span", "edge", "score"}`` rows, best first."""
    scores = position_scores(graph)
    F, K = graph.n_forward, graph.n_backward
    rows = []
    for i in ranked_position_edges(graph, absolute=absolute)[:k].tolist():
        s, rest = divmod(i, F * K)
        up, port = divmod(rest, K)
        rows.append(
            {
                "span": graph.positions[s],
                "edge": graph.layout.edge_name(up, port),
                "score": float(scores[s, up, port]),
            }
        )
    return rows
