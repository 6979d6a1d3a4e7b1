"""The computational graph: every edge of a model's residual-stream decomposition, with scores.

Scores and in-circuit flags are dense tensors indexed ``[upstream, port]`` (see
:mod:`graphs.layout` for the index layout) with ``real_edges`` marking the pairs that are
edges; everything else (``graph.edges``, lookups by name, top-k) is a view onto them.

Sign convention: an edge's score estimates ``m(clean run with that edge patched to its
corrupted value) - m(clean run)``, so a large negative score on a metric where higher is better
marks an edge the behaviour depends on. Pruning by default ranks by ``|score|``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from graphs.circuit import Circuit
from graphs.errors import (
    GraphArgumentError,
    GraphMismatchError,
    InconsistentGraphError,
    UnknownEdgeError,
)
from graphs.layout import Layout, Node, Port
from graphs.spec import PYTHON_FIX, ModelSpec


class Edge:
    """One edge ``upstream -> port``; ``score`` and ``in_graph`` read and write the graph's tensors."""

    __slots__ = ("graph", "upstream", "port")

    def __init__(self, graph: Graph, upstream: Node, port: Port):
        self.graph = graph
        self.upstream = upstream
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edge) and other.graph is self.graph and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.graph), self.index))

    @property
    def name(self) -> str:
        return f"{self.upstream.name}->{self.port.name}"

    @property
    def index(self) -> tuple[int, int]:
        return self.upstream.forward_index, self.port.index

    @property
    def score(self) -> float:
        return float(self.graph.scores[self.index])

    @score.setter
    def score(self, value: float) -> None:
        """Write the (span-summed) score; a position-aware graph then loses its position axis,
        since one number cannot say how the new score splits over spans."""
        graph = self.graph
        graph.scores[self.index] = value
        if graph.position_scores is not None:
            up, port = self.index
            summed = graph.position_scores[:, up, port].double().sum().float()
            if not _same(graph.scores[self.index], summed):
                graph.drop_positions()

    @property
    def in_graph(self) -> bool:
        return bool(self.graph.in_graph[self.index])

    @in_graph.setter
    def in_graph(self, value: bool) -> None:
        """Add the edge to the circuit or remove it; in a position-aware circuit, at every span."""
        self.graph.in_graph[self.index] = bool(value)
        if self.graph.position_in_graph is not None:
            self.graph.position_in_graph[(slice(None), *self.index)] = bool(value)

    def __repr__(self) -> str:
        return f"Edge({self.name!r}, score={self.score:.4g}, in_graph={self.in_graph})"


class EdgeView(Mapping[str, Edge]):
    """Read-only mapping ``name -> Edge`` over the real edges, in index order; built lazily so a
    million-edge graph costs nothing until iterated."""

    def __init__(self, graph: Graph, mask: torch.Tensor | None = None):
        self._graph = graph
        self._mask = graph.real_edges if mask is None else mask

    def __getitem__(self, name: str) -> Edge:
        up, port = self._graph.layout.edge_index(name)
        if not bool(self._mask[up, port]):
            raise UnknownEdgeError(name)
        return self._graph._edge(up, port)

    def __iter__(self) -> Iterator[str]:
        layout = self._graph.layout
        for up, port in self._mask.nonzero().tolist():
            yield layout.edge_name(up, port)

    def __len__(self) -> int:
        return int(self._mask.sum())

    def values(self) -> Iterator[Edge]:  # type: ignore[override]
        for up, port in self._mask.nonzero().tolist():
            yield self._graph._edge(up, port)


class _CallableEdgeView(EdgeView):
    """What ``edges_in_graph`` returns since it became a property: callable, returning itself,
    so that code written for the old method (``graph.edges_in_graph()``) keeps working."""

    def __call__(self) -> EdgeView:
        warnings.warn(
            "graph.edges_in_graph is a property now, like graph.edges: drop the parentheses",
            DeprecationWarning,
            stacklevel=2,
        )
        return self


class Graph:
    """Edges of a model with scores and circuit membership.

    Attributes:
        spec: the model facts the structure depends on.
        layout: names and indices (``graphs.layout.Layout``).
        scores: float32 ``[n_forward, n_backward]``; 0 where there is no edge.
        in_graph: bool ``[n_forward, n_backward]``; edge membership in the circuit.
        nodes_in_graph: bool ``[n_nodes]`` in ``graph.nodes`` order; node membership, used by
            node-level circuits (an edge-level circuit derives it from its edges).
        real_edges: bool ``[n_forward, n_backward]``; which pairs are edges.
        positions: the names of the position axis's spans (``graphs.positions``), or None for
            a position-agnostic graph.
        position_scores: float32 ``[n_spans, n_forward, n_backward]`` per-span scores (None
            when ``positions`` is); ``scores`` is their sum over spans (in float64, rounded
            to float32), which :meth:`set_scores` keeps true by dropping the position axis
            when given other scores.
        position_in_graph: bool ``[n_spans, n_forward, n_backward]``, the position-aware
            circuit (which edges it keeps at which span), or None when the circuit is
            position-agnostic; ``in_graph`` is then its union over spans.
        metadata: JSON values describing how the scores were made (``circuits discover``
            records task, metric, method, ablation, split, seed and model); saved and loaded
            by every file format, and not compared by ``==``.
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.layout = Layout(spec)
        self.real_edges = self.layout.real_edges
        self.scores = torch.zeros(
            self.layout.n_forward, self.layout.n_backward, dtype=torch.float32
        )
        self.in_graph = torch.zeros_like(self.real_edges)
        self.nodes_in_graph = torch.zeros(len(self.layout.nodes), dtype=torch.bool)
        self.metadata: dict[str, Any] = {}
        self.positions: tuple[str, ...] | None = None
        self.position_scores: torch.Tensor | None = None
        self.position_in_graph: torch.Tensor | None = None

    @classmethod
    def from_model(cls, model: Any) -> Graph:
        """The full graph of a TransformerBridge (scores 0, nothing in the circuit)."""
        return cls(ModelSpec.from_model(model))

    # ---------------------------------------------------------------- sizes
    @property
    def n_forward(self) -> int:
        return self.layout.n_forward

    @property
    def n_backward(self) -> int:
        return self.layout.n_backward

    @property
    def n_edges(self) -> int:
        return self.layout.n_edges

    @property
    def n_nodes(self) -> int:
        return len(self.layout.nodes)

    def __repr__(self) -> str:
        name = self.spec.model_name or self.spec.architecture or "model"
        return (
            f"Graph({name}: {self.n_nodes} nodes, {self.n_edges} edges, "
            f"{self.count_included_edges()} in circuit)"
        )

    # ---------------------------------------------------------------- views
    @property
    def nodes(self) -> dict[str, Node]:
        return dict(self.layout.node_by_name)

    @property
    def ports(self) -> dict[str, Port]:
        return dict(self.layout.port_by_name)

    @property
    def edges(self) -> EdgeView:
        return EdgeView(self)

    @property
    def edges_in_graph(self) -> EdgeView:
        """The circuit's edges, a view like :attr:`edges` (calling it, the old method form,
        still works with a DeprecationWarning)."""
        return _CallableEdgeView(self, self.real_edges & self.in_graph)

    def edge(self, name: str) -> Edge:
        """The edge named ``"u->port"`` (e.g. ``"input->a0.h1<q>"``, ``"a3.h2->m5"``)."""
        return self._edge(*self.layout.edge_index(name))

    def _edge(self, up: int, port: int) -> Edge:
        return Edge(self, self.layout.upstream[up], self.layout.ports[port])

    def node(self, name: str) -> Node:
        return self.layout.node(name)

    def port(self, name: str) -> Port:
        return self.layout.port(name)

    def node_in_graph(self, name: str) -> bool:
        return bool(self.nodes_in_graph[self.layout.node(name).index])

    def top_edges(self, k: int, *, absolute: bool = True) -> list[Edge]:
        """The ``k`` highest-scoring edges (by ``|score|`` unless ``absolute=False``), best first.
        Ties are broken by index order, so the result is deterministic."""
        if k < 0:
            raise GraphArgumentError(f"k must be >= 0, got {k}")
        order = self.ranked_edge_indices(absolute=absolute)[:k]
        return [self._edge(int(i) // self.n_backward, int(i) % self.n_backward) for i in order]

    def ranked_edge_indices(self, *, absolute: bool = True) -> torch.Tensor:
        """Flat indices (``up * n_backward + port``) of all real edges, best score first."""
        flat = self.scores.flatten().to(torch.float64)
        if absolute:
            flat = flat.abs()
        real = self.real_edges.flatten().nonzero().squeeze(1)
        # stable sort on the negated scores keeps index order among ties
        order = torch.sort(-flat[real], stable=True).indices
        return real[order]

    # ---------------------------------------------------------------- membership
    def count_included_edges(self) -> int:
        return int((self.in_graph & self.real_edges).sum())

    def count_included_nodes(self) -> int:
        return int(self.nodes_in_graph.sum())

    def set_scores(self, scores: torch.Tensor) -> None:
        """Replace all scores; ``scores`` is ``[n_forward, n_backward]``; non-edges are zeroed.

        A position-aware graph keeps its position axis only when the new scores are still the
        sum of its position scores (bit for bit, NaN equal to NaN); other scores drop
        ``positions``, ``position_scores`` and ``position_in_graph`` (``in_graph`` keeps the
        circuit's union over spans), so the two never disagree.
        """
        if tuple(scores.shape) != (self.n_forward, self.n_backward):
            raise GraphMismatchError(
                f"scores have shape {tuple(scores.shape)}, this graph needs "
                f"{(self.n_forward, self.n_backward)} ([upstream, port])"
            )
        self.scores = torch.where(self.real_edges, scores.detach().to("cpu", torch.float32), 0.0)
        if self.position_scores is not None and not _same(
            self.scores, self._span_sum(self.position_scores)
        ):
            self.drop_positions()

    def set_position_scores(self, positions: Any, scores: torch.Tensor) -> None:
        """Give the graph a position axis: span names ``positions`` and per-span ``scores``
        ``[n_spans, n_forward, n_backward]`` (stored as float32); ``scores`` becomes their sum
        over spans (float64, rounded to float32). A position-aware circuit survives only when
        the span names are unchanged."""
        positions = tuple(str(p) for p in positions)
        shape = (len(positions), self.n_forward, self.n_backward)
        if tuple(scores.shape) != shape:
            raise GraphMismatchError(
                f"position scores have shape {tuple(scores.shape)}, this graph with "
                f"{len(positions)} spans needs {shape} ([span, upstream, port])"
            )
        if positions != self.positions:
            self.position_in_graph = None
        self.positions = positions
        self.position_scores = torch.where(
            self.real_edges, scores.detach().to("cpu", torch.float32), 0.0
        )
        self.scores = self._span_sum(self.position_scores)

    def _span_sum(self, position_scores: torch.Tensor) -> torch.Tensor:
        return torch.where(self.real_edges, position_scores.double().sum(0).float(), 0.0)

    def drop_positions(self) -> None:
        """Make the graph position-agnostic: forget ``positions``, ``position_scores`` and the
        per-span circuit (``scores`` and ``in_graph`` stay, the sums and union over spans)."""
        self.positions = None
        self.position_scores = None
        self.position_in_graph = None

    def check_positions(self) -> None:
        """Raise InconsistentGraphError unless the position axis agrees with the rest of the
        graph: ``scores`` the span sum of ``position_scores``, ``in_graph`` the union of
        ``position_in_graph`` (the setters keep this true; a direct write into a tensor can
        break it). File savers call this before writing."""
        if self.positions is None:
            if self.position_scores is not None or self.position_in_graph is not None:
                raise InconsistentGraphError(
                    "the graph has position scores or a per-span circuit but no span names "
                    "(graph.positions); set both with graph.set_position_scores(names, scores)"
                )
            return
        shape = (len(self.positions), self.n_forward, self.n_backward)
        if self.position_scores is None or tuple(self.position_scores.shape) != shape:
            got = None if self.position_scores is None else tuple(self.position_scores.shape)
            raise InconsistentGraphError(
                f"graph.position_scores is {got}, its {len(self.positions)} spans need {shape}; "
                "set both with graph.set_position_scores(names, scores)"
            )
        if not _same(self.scores, self._span_sum(self.position_scores)):
            bad = (~_equal_or_nan(self.scores, self._span_sum(self.position_scores))).nonzero()
            name = self.layout.edge_name(*bad[0].tolist())
            raise InconsistentGraphError(
                f"graph.scores is not the sum over spans of graph.position_scores (first at "
                f"{name!r}): a score was written into the tensor directly; use "
                "graph.set_scores (drops the position axis) or graph.set_position_scores"
            )
        if self.position_in_graph is not None:
            pig = self.position_in_graph
            if tuple(pig.shape) != shape or pig.dtype != torch.bool:
                raise InconsistentGraphError(
                    f"graph.position_in_graph is {pig.dtype} {tuple(pig.shape)}, expected bool "
                    f"{shape}; set position-aware circuits with graph.set_circuit(circuit)"
                )
            if not torch.equal((pig & self.real_edges).any(0), self.in_graph & self.real_edges):
                raise InconsistentGraphError(
                    "graph.in_graph is not the union over spans of graph.position_in_graph: a "
                    "flag was written into a tensor directly; use graph.set_circuit(circuit)"
                )

    @property
    def n_positions(self) -> int | None:
        """Spans of the position axis, None for a position-agnostic graph."""
        return None if self.positions is None else len(self.positions)

    def set_in_graph(
        self, in_graph: torch.Tensor, nodes_in_graph: torch.Tensor | None = None
    ) -> None:
        """Set edge membership (bool ``[n_forward, n_backward]``); nodes follow from edges unless
        given: a node is in the circuit when one of its edges is."""
        if tuple(in_graph.shape) != (self.n_forward, self.n_backward):
            raise GraphMismatchError(
                f"in_graph has shape {tuple(in_graph.shape)}, expected {(self.n_forward, self.n_backward)}"
            )
        if nodes_in_graph is not None and tuple(nodes_in_graph.shape) != (self.n_nodes,):
            raise GraphMismatchError(
                f"nodes_in_graph has shape {tuple(nodes_in_graph.shape)}, expected "
                f"{(self.n_nodes,)} (graph.nodes order)"
            )
        self.in_graph = in_graph.to("cpu", torch.bool) & self.real_edges
        self.position_in_graph = None
        if nodes_in_graph is None:
            nodes_in_graph = self._nodes_touched(self.in_graph)
        self.nodes_in_graph = nodes_in_graph.to("cpu", torch.bool).clone()

    @property
    def circuit(self) -> Circuit:
        """The graph's circuit (copies of its masks): edges ``[n_spans, n_forward,
        n_backward]`` when a position-aware circuit is set, else ``[n_forward, n_backward]``."""
        edges = self.in_graph if self.position_in_graph is None else self.position_in_graph
        return Circuit(edges.clone(), self.nodes_in_graph.clone())

    def circuit_of(self, edges: torch.Tensor, nodes: torch.Tensor | None = None) -> Circuit:
        """The circuit of bool ``[n_forward, n_backward]`` ``edges`` (real edges only); its
        nodes are ``nodes`` or, by default, those at either end of an edge (as
        :meth:`set_in_graph` derives them)."""
        edges = edges.to("cpu", torch.bool) & self.real_edges
        nodes = self._nodes_touched(edges) if nodes is None else nodes.to("cpu", torch.bool)
        return Circuit(edges.clone(), nodes.clone())

    def set_circuit(self, circuit: Circuit) -> Graph:
        """Make ``circuit`` this graph's circuit; returns the graph, so calls chain.

        A position-aware circuit (``edges`` bool ``[n_spans, n_forward, n_backward]``, from
        :mod:`circuits.search.select`) needs a graph with that many spans; it is kept as
        ``position_in_graph`` and ``in_graph`` becomes its union over spans. A plain
        ``[n_forward, n_backward]`` circuit clears ``position_in_graph``.
        """
        edges = circuit.edges
        if edges.dim() != 3:
            self.set_in_graph(edges, circuit.nodes)
            return self
        if self.positions is None:
            raise GraphMismatchError(
                f"the circuit is position-aware (edges {tuple(edges.shape)}, [span, upstream, "
                f"port]) but this graph has no position axis ({(self.n_forward, self.n_backward)}"
                "); attribute it with position-aware data first "
                "(attribution.positions.with_positions)"
            )
        shape = (len(self.positions), self.n_forward, self.n_backward)
        if tuple(edges.shape) != shape:
            raise GraphMismatchError(
                f"the position-aware circuit's edges have shape {tuple(edges.shape)}, this graph "
                f"with {len(self.positions)} spans needs {shape} ([span, upstream, port])"
            )
        per_span = edges.to("cpu", torch.bool) & self.real_edges
        self.set_in_graph(per_span.any(0), circuit.nodes)
        self.position_in_graph = per_span.clone()
        return self

    def _nodes_touched(self, edges: torch.Tensor) -> torch.Tensor:
        """Bool ``[n_nodes]``: nodes at either end of an edge in ``edges``."""
        touched = torch.zeros(self.n_nodes, dtype=torch.bool)
        touched[: self.n_forward] = edges.any(dim=1)
        port_used = edges.any(dim=0)
        for port in self.layout.ports:
            if port_used[port.index]:
                for name in port.nodes:
                    touched[self.layout.node_by_name[name].index] = True
        return touched

    def reset(self) -> None:
        """Clear scores and membership (position scores too; the circuit becomes empty and
        position-agnostic)."""
        self.scores.zero_()
        self.in_graph.zero_()
        self.nodes_in_graph.zero_()
        if self.position_scores is not None:
            self.position_scores.zero_()
        self.position_in_graph = None

    def copy(self) -> Graph:
        new = Graph(self.spec)
        new.scores = self.scores.clone()
        new.in_graph = self.in_graph.clone()
        new.nodes_in_graph = self.nodes_in_graph.clone()
        new.metadata = copy.deepcopy(self.metadata)
        new.positions = self.positions
        if self.position_scores is not None:
            new.position_scores = self.position_scores.clone()
        if self.position_in_graph is not None:
            new.position_in_graph = self.position_in_graph.clone()
        return new

    def check_compatible(self, model_or_spec: Any, *, fix: str = PYTHON_FIX) -> None:
        """Raise GraphMismatchError unless the model (or spec) has this graph's shape; ``fix``
        is the advice that ends the message."""
        other = (
            model_or_spec
            if isinstance(model_or_spec, ModelSpec)
            else ModelSpec.from_model(model_or_spec)
        )
        self.spec.check_matches(other, fix=fix)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.spec == other.spec
            and torch.equal(self.scores, other.scores)
            and torch.equal(self.in_graph & self.real_edges, other.in_graph & other.real_edges)
            and torch.equal(self.nodes_in_graph, other.nodes_in_graph)
            and self.positions == other.positions
            and _optional_equal(self.position_scores, other.position_scores)
            and _optional_equal(
                _masked(self.position_in_graph, self.real_edges),
                _masked(other.position_in_graph, other.real_edges),
            )
        )

    __hash__ = None  # type: ignore[assignment]


def _equal_or_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b) | (a.isnan() & b.isnan())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN equal to NaN (a sum of spans holding NaN is NaN)."""
    return bool(_equal_or_nan(a, b).all())


def _optional_equal(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return a is None if b is None else a is not None and torch.equal(a, b)


def _masked(t: torch.Tensor | None, real: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t & real
