"""The shapes of graph a circuit figure draws: where a node sits, how an edge bends, how the
axes read.

:func:`circuits.app.figures.circuit.circuit_drawing` is one code path over a circuit's edges
``[column, upstream, port]``; a shape says what a column is:

- ``"layers"`` (:class:`LayerGrid`): a position-agnostic graph, one column, the model's layer
  grid: ``input`` at y = -1, layer ``l``'s heads at y = 2l (head ``h`` at x = h), its MLP half a
  row above and right of them (x = H, y = 2l + 1), ``logits`` at y = 2L; input and logits
  centred over the heads.
- ``"spans"`` (:class:`SpanColumns`): a position-aware graph (:mod:`graphs.positions`), one
  column per span, centred on x = s, in prompt order; the rows are the layer grid's, a span's
  heads spread over a third of its column and the MLPs in a lane of their own.

A new shape of graph is one :class:`CircuitShape` subclass and one line in :data:`SHAPES`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from circuits.app.figures.routes import CLEARANCE, control_point, route_offsets
from circuits.app.figures.style import model_label, svg_id
from graphs import Circuit, Graph, GraphMismatchError
from graphs.layout import INPUT, LOGITS
from graphs.positions import PositionError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from circuits.app.figures.circuit import CircuitDrawing

__all__ = [
    "SHAPES",
    "CircuitShape",
    "LayerGrid",
    "SpanColumns",
    "edge_bends",
    "layer_ticks",
    "node_xy",
    "port_xy",
]

# Sideways bend of an edge (fraction of its length, positive to the left of travel), so that
# the q, k and v edges between the same two nodes do not overlap; MLP inputs bend right, so the
# edges along the MLP column (the rightmost) swing out into the margin.
_PORT_BEND = {"q": 0.0, "k": 0.14, "v": -0.14, "mlp": -0.08, "logits": 0.0}
# Extra sideways offset per node that an edge's straight line would cross (routes).
ROUTE_STEP = 0.35


def node_xy(node: Any, n_heads: int, n_layers: int) -> tuple[float, float]:
    """Where the circuit figure (and the browser explorer) puts ``node`` on the layer grid
    (module docstring)."""
    centre = (n_heads - 1) / 2
    if node.kind == "input":
        return centre, -1.0
    if node.kind == "logits":
        return centre, 2.0 * n_layers
    if node.kind == "mlp":
        return float(n_heads), 2.0 * node.layer + 1
    return float(node.head), 2.0 * node.layer


def port_xy(kind: str, readers: list[tuple[float, float]], dx: float = 0.14) -> tuple[float, float]:
    """Where a key/value port shared by the query heads at ``readers`` is drawn: below their
    centre, keys ``dx`` left and values ``dx`` right."""
    x = sum(r[0] for r in readers) / len(readers) + (-dx if kind == "k" else dx)
    return x, readers[0][1] - 0.38


def edge_bends(
    starts: np.ndarray, ends: np.ndarray, port_kinds: list[str], obstacles: np.ndarray
) -> np.ndarray:
    """The layer grid's (and the explorer's) Bézier offsets of edges ``starts[i] -> ends[i]``
    entering ports of ``port_kinds[i]``: the port kind's bend plus a detour around the
    ``obstacles`` (the nodes' places) that the straight line would cross
    (:func:`circuits.app.figures.routes.route_offsets`)."""
    bends = [_PORT_BEND[kind] for kind in port_kinds]
    return route_offsets(starts, ends, bends, obstacles, step=ROUTE_STEP)


def layer_ticks(n_layers: int) -> tuple[list[float], list[str]]:
    """The rows' y ticks and labels: input, each layer's heads and MLP, logits."""
    ticks, labels = [-1.0], ["input"]
    for layer in range(n_layers):
        ticks += [2.0 * layer, 2.0 * layer + 1]
        labels += [f"L{layer} heads", f"L{layer} MLP"]
    return [*ticks, 2.0 * n_layers], [*labels, "logits"]


def _safe(name: str) -> str:
    return svg_id("", name)[1:]


class CircuitShape:
    """How a circuit drawing places and styles one shape of graph; the subclasses fill in the
    constants and methods that differ."""

    name = ""
    always_drawn: tuple[str, ...] = ()  # nodes drawn even when no edge touches them
    port_bends: dict[str, float] = {}  # a port kind's bend, a fraction of the edge's length
    route_step = 0.0  # detour per node an edge's straight line would cross
    truncation_unit = ""  # what the title counts when only the top edges are drawn
    empty_mark = ""  # added to the title of an empty circuit
    edge_alpha = 0.8
    node_mew = 0.8
    end_node_scale = 1.0  # input and logits markers, relative to the others
    label_offset = 9.0  # points between a node and its name
    label_fontsize = 7.0
    legend_marker_size = 8.0
    legend_fontsize = 8.0

    def circuit_edges(
        self, graph: Graph, circuit: Circuit | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bool circuit mask and scores, both ``[n_columns, F, K]``."""
        raise NotImplementedError

    def spans(self, graph: Graph) -> tuple[str, ...]:
        return ()

    def span(self, column: int) -> int | None:
        """What a drawn element records as its span: None on a one-column shape."""
        return None

    def place(self, node: Any, column: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        raise NotImplementedError

    def port_place(
        self, kind: str, readers: list[tuple[float, float]], n_heads: int
    ) -> tuple[float, float]:
        return port_xy(kind, readers)

    def gid(self, prefix: str, name: str, column: int) -> str:
        return f"{prefix}-{_safe(name)}"

    def reader_gid(self, port_gid: str, i: int, reader: str) -> str:
        return f"{port_gid}-reader-{_safe(reader)}"

    def clearance(self, n_heads: int) -> float:
        return CLEARANCE

    def side(self, start: tuple[float, float], end: tuple[float, float], column: int) -> float:
        """Where a detour goes when the port does not bend: +1 left, -1 right."""
        return 1.0

    def grid(self, graph: Graph) -> list[tuple[float, float]]:
        """The places drawn faintly for orientation."""
        return []

    def figsize(self, n_spans: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        raise NotImplementedError

    def default_title(self, graph: Graph, mask: torch.Tensor, columns_used: int) -> str:
        raise NotImplementedError

    def marker_size(self, n_heads: int) -> float:
        raise NotImplementedError

    def label(self, name: str, kind: str) -> str:
        return name

    def note_x(self, drawing: CircuitDrawing) -> float:
        raise NotImplementedError

    def axes(self, ax: Axes, drawing: CircuitDrawing) -> None:
        """The x axis and the y ticks."""
        raise NotImplementedError


class LayerGrid(CircuitShape):
    """A position-agnostic graph on the model's layer grid (module docstring)."""

    name = "layers"
    always_drawn = (INPUT, LOGITS)
    port_bends = _PORT_BEND
    route_step = ROUTE_STEP
    truncation_unit = "edges "
    empty_mark = " (empty circuit)"
    end_node_scale = 1.1

    def circuit_edges(
        self, graph: Graph, circuit: Circuit | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        edges = graph.in_graph if circuit is None else circuit.edges.to("cpu", torch.bool)
        if tuple(edges.shape) != tuple(graph.real_edges.shape):
            raise GraphMismatchError(
                f"the circuit's edges have shape {tuple(edges.shape)}, this graph needs "
                f"{tuple(graph.real_edges.shape)} ([upstream, port])"
            )
        return (edges & graph.real_edges)[None], graph.scores[None]

    def place(self, node: Any, column: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        return node_xy(node, n_heads, n_layers)

    def grid(self, graph: Graph) -> list[tuple[float, float]]:
        L, H = graph.spec.n_layers, graph.spec.n_heads
        return [node_xy(n, H, L) for n in graph.layout.nodes if n.kind in ("attention", "mlp")]

    def figsize(self, n_spans: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        rows = 2 * n_layers + 2
        height = min(max(1.2 + 0.42 * rows, 4.0), 30.0)
        width = min(max(1.5 + 0.75 * n_heads, 4.0), 22.0) + 3.2  # + MLP and legend columns
        return round(width, 2), round(height, 2)

    def default_title(self, graph: Graph, mask: torch.Tensor, columns_used: int) -> str:
        # components of the whole circuit (not only of the drawn edges)
        layout, mask = graph.layout, mask[0]  # the one column
        touched = {layout.upstream[u].name for u in mask.any(dim=1).nonzero().flatten().tolist()}
        for p in mask.any(dim=0).nonzero().flatten().tolist():
            touched.update(layout.ports[p].nodes)
        n_nodes = len(touched - {INPUT, LOGITS})
        n_circuit = int(mask.sum())
        return f"Circuit of {model_label(graph)}: {n_circuit} edges, {n_nodes} heads/MLPs"

    def marker_size(self, n_heads: int) -> float:
        return 10.0 if n_heads <= 16 else 7.0

    def note_x(self, drawing: CircuitDrawing) -> float:
        return (drawing.n_heads - 1) / 2

    def axes(self, ax: Axes, drawing: CircuitDrawing) -> None:
        L, H = drawing.n_layers, drawing.n_heads
        ax.set_yticks(*layer_ticks(L), fontsize=7 if L > 8 else 8)
        step = max(1, math.ceil(H / 16))
        xticks = [*range(0, H, step), H]
        ax.set_xticks(xticks, [f"h{h}" for h in xticks[:-1]] + ["MLP"], fontsize=7)
        ax.set_xlim(*self._x_range(drawing))

    @staticmethod
    def _x_range(drawing: CircuitDrawing) -> tuple[float, float]:
        """The grid, widened to hold every edge's curve (a detour may swing out past the MLP
        column)."""
        lo, hi = -0.8, drawing.n_heads + 0.6
        for edge in drawing.edges:
            cx, _ = control_point(edge.start, edge.end, edge.bend)
            mid = (edge.start[0] + 2 * cx + edge.end[0]) / 4  # the curve's farthest point
            lo, hi = min(lo, mid - 0.3), max(hi, mid + 0.3)
        return lo, hi


# Within a span's column (columns are 1 apart): a layer's heads spread over [_HEADS_LO,
# _HEADS_HI] of the centre, input and logits over their middle, and the MLPs stand in a lane
# of their own at _MLP_X, so that the edges along the MLP lane do not run through the heads.
_HEADS_LO, _HEADS_HI, _MLP_X = -0.40, 0.20, 0.40


class SpanColumns(CircuitShape):
    """A position-aware graph, one column per span (module docstring). An edge ``(s, u -> v)``
    is ``u``'s write at the tokens of span ``s`` entering ``v``'s port at those same tokens
    (:mod:`graphs.positions`), so it is drawn inside column ``s``."""

    name = "spans"
    # Port bends and the detour per node crossed, smaller than the layer grid's: an edge stays
    # inside its span's column. MLP inputs go straight (a bend would lay them along the edges
    # into the nearest heads); edges along the MLP lane detour to the right, away from the heads.
    port_bends = {"q": 0.0, "k": 0.04, "v": -0.04, "mlp": 0.0, "logits": 0.0}
    route_step = 0.1
    edge_alpha = 0.85
    node_mew = 0.7
    label_offset = 7.0
    label_fontsize = 6.0
    legend_marker_size = 7.0
    legend_fontsize = 7.0

    def circuit_edges(
        self, graph: Graph, circuit: Circuit | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The circuit's (span, edge) pairs; a position-agnostic circuit keeps its edges at
        every span."""
        if graph.positions is None or graph.position_scores is None:
            raise PositionError(
                "this graph has no position axis, so there is no position-aware circuit to "
                "draw; attribute it with position-aware data "
                "(attribution.positions.with_positions) or draw it with "
                "circuits.app.figures.draw_circuit"
            )
        edges = graph.circuit.edges if circuit is None else circuit.edges.to("cpu", torch.bool)
        S, F, K = graph.position_scores.shape
        if edges.dim() == 2 and tuple(edges.shape) == (F, K):
            edges = edges.expand(S, F, K)
        if tuple(edges.shape) != (S, F, K):
            raise GraphMismatchError(
                f"the circuit's edges have shape {tuple(edges.shape)}, this graph needs "
                f"{(S, F, K)} ([span, upstream, port]) or {(F, K)}"
            )
        return edges & graph.real_edges, graph.position_scores

    def spans(self, graph: Graph) -> tuple[str, ...]:
        return tuple(graph.positions)

    def span(self, column: int) -> int | None:
        return column

    def place(self, node: Any, column: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        if node.kind == "mlp":
            x = column + _MLP_X
        elif node.kind != "attention" or n_heads == 1:
            x = column + (_HEADS_LO + _HEADS_HI) / 2
        else:
            x = column + _HEADS_LO + (_HEADS_HI - _HEADS_LO) * node.head / (n_heads - 1)
        if node.kind == "input":
            return x, -1.0
        if node.kind == "logits":
            return x, 2.0 * n_layers
        return x, 2.0 * node.layer + (1 if node.kind == "mlp" else 0)

    def port_place(
        self, kind: str, readers: list[tuple[float, float]], n_heads: int
    ) -> tuple[float, float]:
        return port_xy(kind, readers, dx=(_HEADS_HI - _HEADS_LO) / max(2 * n_heads, 4))

    def gid(self, prefix: str, name: str, column: int) -> str:
        return f"{prefix}-s{column}-{_safe(name)}"

    def reader_gid(self, port_gid: str, i: int, reader: str) -> str:
        return f"{port_gid}-reader-{i}"

    def clearance(self, n_heads: int) -> float:
        gap = (_HEADS_HI - _HEADS_LO) / max(n_heads - 1, 1)  # between neighbouring heads
        return min(CLEARANCE, 0.3 * gap)

    def side(self, start: tuple[float, float], end: tuple[float, float], column: int) -> float:
        return -1.0 if start[0] == end[0] == column + _MLP_X else 1.0

    def figsize(self, n_spans: int, n_layers: int, n_heads: int) -> tuple[float, float]:
        height = min(max(1.2 + 0.42 * (2 * n_layers + 2), 4.0), 30.0)
        # wide enough per span that neighbouring heads' labels do not touch
        width = min(max(1.4 + n_spans * max(1.3, 0.3 * n_heads), 5.0), 40.0) + 3.0  # + legend
        return round(width, 2), round(height, 2)

    def default_title(self, graph: Graph, mask: torch.Tensor, columns_used: int) -> str:
        return (
            f"Position-aware circuit of {model_label(graph)}: {int(mask.sum())} (span, edge) "
            f"pairs at {columns_used} of {len(graph.positions)} spans"
        )

    def marker_size(self, n_heads: int) -> float:
        return 8.0 if n_heads <= 8 else 6.0

    def label(self, name: str, kind: str) -> str:
        """A head's name without its layer (``h3``; the row names the layer), so that a span's
        heads, a third of a column apart at most, keep their labels apart."""
        return name.partition(".")[2] if kind == "attention" else name

    def note_x(self, drawing: CircuitDrawing) -> float:
        return (len(drawing.spans) - 1) / 2

    def axes(self, ax: Axes, drawing: CircuitDrawing) -> None:
        S, L = len(drawing.spans), drawing.n_layers
        ax.set_xticks(range(S), list(drawing.spans), fontsize=8, rotation=30 if S > 8 else 0)
        ax.set_xlabel("position (span)", fontsize=9)
        ax.set_yticks(*layer_ticks(L), fontsize=7 if L > 8 else 8)
        ax.set_xlim(-0.6, S - 0.4)


#: Shape name -> how a circuit drawing draws that shape of graph.
SHAPES: dict[str, CircuitShape] = {"layers": LayerGrid(), "spans": SpanColumns()}
