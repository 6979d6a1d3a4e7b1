"""The circuit figure: a circuit's edges drawn where their nodes live in the model.

One code path draws every shape of graph (:mod:`circuits.app.figures.shapes`): the
position-agnostic graph on the model's layer grid (``shape="layers"``, :func:`draw_circuit`)
and the position-aware one with a column per span (``shape="spans"``,
:func:`draw_position_circuit`). Edges run upwards from the upstream node to the node reading the
port (on grouped-query models, to a small diamond for the shared key/value port, joined to the
query heads that read it), as quadratic Béziers bent aside around the nodes their straight
line would cross (:mod:`circuits.app.figures.routes`). Line style tells the port kind (q, k, v,
MLP input, logits), colour the sign of the score (blue positive, red negative, grey 0), width
its magnitude.

On the span columns an edge ``(s, u -> v)`` is drawn inside column ``s``. A head that reads
keys and values at span ``s`` moves what it read to queries at later spans; that happens inside
the head, not along an edge. It is shown as a faint grey arc from the head's dot at ``s`` to its
dot at each later span ``t`` where the circuit uses the head (its query input or its output),
drawn beneath the edges, never styled or counted as an edge.

Gids (the SVG ``<g>`` ids, names as :func:`circuits.app.figures.style.svg_id`): ``edge-<edge>``,
``node-<node>``, ``port-<port>`` on the layer grid; ``edge-s{s}-<edge>``, ``node-s{s}-<node>``,
``port-s{s}-<port>``, ``attention-s{s}-s{t}-<head>`` on the span columns; ``empty-note``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, PathPatch

from circuits.app.figures.routes import bezier_path, route_offsets
from circuits.app.figures.shapes import SHAPES, CircuitShape, edge_bends
from circuits.app.figures.style import (
    EMPTY_NOTE,
    NODE_STYLES,
    PORT_MARKER,
    PORT_STYLES,
    edge_look,
    legend_handles,
    svg_id,
)
from circuits.plotting import FigureError, figure_style, new_figure, save_and_close, write_figure
from graphs import Circuit, Graph

__all__ = [
    "AttentionLink",
    "CircuitDrawing",
    "DrawnEdge",
    "DrawnNode",
    "DrawnPort",
    "PositionCircuitDrawing",
    "circuit_drawing",
    "circuit_figure",
    "draw_circuit",
    "draw_position_circuit",
    "edges_to_draw",
    "position_circuit_drawing",
    "position_circuit_figure",
    "route_edges",
]

_FORMATS = (".png", ".svg", ".pdf")


@dataclass
class DrawnNode:
    """A node the circuit uses; on the span columns, a (node, span)."""

    name: str
    kind: str  # "input" | "attention" | "mlp" | "logits"
    x: float
    y: float
    gid: str
    span: int | None = None


@dataclass
class DrawnPort:
    """A key/value port shared by several query heads (grouped-query attention)."""

    name: str
    kind: str  # "k" | "v"
    x: float
    y: float
    readers: tuple[str, ...]
    gid: str
    span: int | None = None


@dataclass
class DrawnEdge:
    name: str
    upstream: str
    port: str
    port_kind: str  # "q" | "k" | "v" | "mlp" | "logits"
    target: str  # node (or shared port) the line ends at
    score: float
    start: tuple[float, float]
    end: tuple[float, float]
    linestyle: Any
    linewidth: float
    color: str
    gid: str
    bend: float = 0.0  # the Bézier control point's sideways offset (routes)
    span: int | None = None


@dataclass
class AttentionLink:
    """A head's read from its key span to a later query span: inside the head, not an edge."""

    head: str
    key_span: int
    query_span: int
    start: tuple[float, float]
    end: tuple[float, float]
    gid: str


def _key(name: str, span: int | None) -> Any:
    """A drawn node's or port's key in :class:`CircuitDrawing`: its name, with its span."""
    return name if span is None else (name, span)


@dataclass
class CircuitDrawing:
    """Everything :func:`circuit_figure` draws, in data coordinates (the places are the
    shape's, :mod:`circuits.app.figures.shapes`). ``nodes`` and ``ports`` are keyed by name,
    on the span columns by ``(name, span)``. ``n_circuit_edges`` counts the whole circuit's
    edges ((span, edge) pairs on the span columns), ``edges`` the drawn ones (fewer when
    ``max_edges`` cut it)."""

    title: str
    n_layers: int
    n_heads: int
    figsize: tuple[float, float]
    nodes: dict[Any, DrawnNode]
    ports: dict[Any, DrawnPort]
    edges: list[DrawnEdge]
    n_circuit_edges: int
    truncated: bool
    max_abs_score: float
    note: str | None = None
    grid: list[tuple[float, float]] = field(default_factory=list)
    # named groups of nodes (the explorer's supernodes): (name, [(x, y) of each member])
    supernodes: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    shape: str = "layers"
    spans: tuple[str, ...] = ()
    links: list[AttentionLink] = field(default_factory=list)

    @property
    def dots(self) -> dict[Any, DrawnNode]:
        """The drawn nodes (:attr:`nodes`), the (node, span) dots on the span columns."""
        return self.nodes


#: The position-aware drawing is a :class:`CircuitDrawing` of the ``"spans"`` shape.
PositionCircuitDrawing = CircuitDrawing


def edges_to_draw(
    mask: torch.Tensor, scores: torch.Tensor, max_edges: int | None
) -> tuple[torch.Tensor, torch.Tensor, int, bool, float]:
    """The edges of bool ``mask`` a circuit figure draws: their indices (``mask.nonzero()``
    rows), float64 scores (from ``scores``, same shape as ``mask``), the circuit's edge count,
    whether it was cut to the ``max_edges`` of largest ``|score|`` (ties and order by index),
    and the largest finite ``|score|`` drawn (0 when none)."""
    index = mask.nonzero()
    picked = scores[mask].to(torch.float64)  # row-major, same order as nonzero()
    n_circuit = len(index)
    truncated = max_edges is not None and n_circuit > max_edges
    if truncated:
        magnitude = torch.nan_to_num(picked.abs(), nan=-1.0)
        keep = torch.sort(-magnitude, stable=True).indices[:max_edges]
        keep = torch.sort(keep).values  # back to index order
        index, picked = index[keep], picked[keep]
    finite = picked[torch.isfinite(picked)].abs()
    return index, picked, n_circuit, truncated, float(finite.max()) if len(finite) else 0.0


# --------------------------------------------------------------------------- what is drawn
class _Parts:
    """The nodes, shared ports and edges of a drawing as they are added, edge by edge."""

    def __init__(self, graph: Graph, shape: CircuitShape) -> None:
        self.layout, self.shape = graph.layout, shape
        self.L, self.H = graph.spec.n_layers, graph.spec.n_heads
        self.nodes: dict[Any, DrawnNode] = {}
        self.ports: dict[Any, DrawnPort] = {}
        self.edges: list[DrawnEdge] = []
        self.columns: list[int] = []  # each edge's column

    def node(self, name: str, column: int) -> DrawnNode:
        span = self.shape.span(column)
        if _key(name, span) not in self.nodes:
            node = self.layout.node_by_name[name]
            x, y = self.shape.place(node, column, self.L, self.H)
            gid = self.shape.gid("node", name, column)
            self.nodes[_key(name, span)] = DrawnNode(name, node.kind, x, y, gid, span)
        return self.nodes[_key(name, span)]

    def end(self, port: Any, column: int) -> tuple[str, tuple[float, float]]:
        """The node (or shared port) an edge into ``port`` ends at, and its place."""
        readers = [self.node(name, column) for name in port.nodes]
        if len(readers) == 1:
            return readers[0].name, (readers[0].x, readers[0].y)
        # a key/value port shared by a group of query heads: the line ends at the port
        span = self.shape.span(column)
        if _key(port.name, span) not in self.ports:
            x, y = self.shape.port_place(port.port, [(r.x, r.y) for r in readers], self.H)
            self.ports[_key(port.name, span)] = DrawnPort(
                port.name, port.port, x, y, tuple(r.name for r in readers),
                self.shape.gid("port", port.name, column), span,
            )  # fmt: skip
        drawn = self.ports[_key(port.name, span)]
        return port.name, (drawn.x, drawn.y)

    def edge(self, column: int, up: int, port_index: int, score: float, max_abs: float) -> None:
        upstream, port = self.layout.upstream[up], self.layout.ports[port_index]
        start = self.node(upstream.name, column)
        target, end = self.end(port, column)
        width, color = edge_look(score, max_abs)
        name = f"{upstream.name}->{port.name}"
        self.edges.append(
            DrawnEdge(
                name=name, upstream=upstream.name, port=port.name, port_kind=port.port,
                target=target, score=score, start=(start.x, start.y), end=end,
                linestyle=PORT_STYLES[port.port], linewidth=width, color=color,
                gid=self.shape.gid("edge", name, column), span=self.shape.span(column),
            )
        )  # fmt: skip
        self.columns.append(column)

    def route(self) -> None:
        """Set each edge's ``bend``: its port's bend plus a detour around the places of its
        column that its straight line would cross (:mod:`circuits.app.figures.routes`)."""
        shape = self.shape
        for column in dict.fromkeys(self.columns):
            edges = [e for e, c in zip(self.edges, self.columns, strict=True) if c == column]
            places = [shape.place(n, column, self.L, self.H) for n in self.layout.nodes]
            offsets = route_offsets(
                np.array([e.start for e in edges]), np.array([e.end for e in edges]),
                [shape.port_bends[e.port_kind] for e in edges], np.array(places),
                step=shape.route_step, clearance=shape.clearance(self.H),
                sides=[shape.side(e.start, e.end, column) for e in edges],
            )  # fmt: skip
            for edge, offset in zip(edges, offsets.tolist(), strict=True):
                edge.bend = offset

    def links(self) -> list[AttentionLink]:
        """Arcs from a head's key/value input at column s to its use at each later column t."""
        key_columns: dict[str, set[int]] = {}
        used: dict[str, set[int]] = {}
        for edge, column in zip(self.edges, self.columns, strict=True):
            readers = self.layout.port_by_name[edge.port].nodes
            if edge.port_kind in ("k", "v"):
                for head in readers:
                    key_columns.setdefault(head, set()).add(column)
            elif edge.port_kind == "q":
                used.setdefault(readers[0], set()).add(column)
            if self.layout.node_by_name[edge.upstream].kind == "attention":
                used.setdefault(edge.upstream, set()).add(column)
        links = []
        for head in sorted(key_columns, key=lambda n: self.layout.node_by_name[n].index):
            for s in sorted(key_columns[head]):
                for t in sorted(t for t in used.get(head, ()) if t > s):
                    a, b = self.node(head, s), self.node(head, t)
                    gid = f"attention-s{s}-s{t}-{svg_id('n', head)[2:]}"
                    links.append(AttentionLink(head, s, t, (a.x, a.y), (b.x, b.y), gid))
        return links


def _title(
    shape: CircuitShape,
    graph: Graph,
    mask: torch.Tensor,
    parts: _Parts,
    title: str | None,
    truncated: bool,
) -> tuple[str, str | None]:
    """The drawing's title and its note (``None`` unless no edge is drawn)."""
    n_circuit, n_drawn = int(mask.sum()), len(parts.edges)
    if title is None:
        title = shape.default_title(graph, mask, len({n.span for n in parts.nodes.values()}))
    if truncated:
        title += f"\n(drawing the top {n_drawn} of {n_circuit} {shape.truncation_unit}by |score|)"
    note = None
    if not n_drawn:
        note = EMPTY_NOTE if n_circuit == 0 else f"max_edges=0: none of {n_circuit} edges drawn"
        if n_circuit == 0:
            title += shape.empty_mark
    return title, note


def circuit_drawing(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    shape: str = "layers",
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> CircuitDrawing:
    """Places, styles and gids of what :func:`circuit_figure` draws; see :class:`CircuitDrawing`.

    ``shape``: a name in :data:`circuits.app.figures.shapes.SHAPES`. Drawn edges: the edges of
    ``circuit`` (else of the graph's own: those with ``in_graph`` set on the layer grid; on the
    span columns the graph's circuit, which must then be position-aware or is taken at every
    span), or, when ``max_edges`` is given and the circuit is larger, its ``max_edges`` edges of
    largest ``|score|`` (ties in index order). Drawn nodes: the ends of drawn edges (every query
    head of a shared k/v port), plus, on the layer grid, ``input`` and ``logits``. Edge width is
    ``0.5 + 3.5 |score| / max |score|`` over the drawn edges; colour is blue for a positive
    score, red for a negative one, grey for 0. ``supernodes`` (layer grid only): ``(name, node
    names)`` groups, each drawn as a labelled box around its nodes' places (see
    :mod:`circuits.app.explorer.supernodes`).
    """
    if shape not in SHAPES:
        raise FigureError(f"unknown circuit figure shape {shape!r}; known: {', '.join(SHAPES)}")
    if max_edges is not None and max_edges < 0:
        raise FigureError(f"max_edges must be >= 0 (or None for all), got {max_edges}")
    kind = SHAPES[shape]
    if supernodes and kind.span(0) is not None:
        raise FigureError(f"supernodes are drawn on the layer grid, not on the {shape!r} shape")
    mask, scores = kind.circuit_edges(graph, circuit)
    index, picked, n_circuit, truncated, max_abs = edges_to_draw(mask, scores, max_edges)
    parts = _Parts(graph, kind)
    for name in kind.always_drawn:
        parts.node(name, 0)
    for (column, up, port), score in zip(index.tolist(), picked.tolist(), strict=True):
        parts.edge(column, up, port, score, max_abs)
    parts.route()
    title, note = _title(kind, graph, mask, parts, title, truncated)
    L, H, layout = graph.spec.n_layers, graph.spec.n_heads, graph.layout
    return CircuitDrawing(
        title=title, n_layers=L, n_heads=H, figsize=kind.figsize(mask.shape[0], L, H),
        nodes=parts.nodes, ports=parts.ports, edges=parts.edges, n_circuit_edges=n_circuit,
        truncated=truncated, max_abs_score=max_abs, note=note, grid=kind.grid(graph),
        supernodes=[
            (name, [kind.place(layout.node(n), 0, L, H) for n in members])
            for name, members in (supernodes or [])
        ],
        shape=shape, spans=kind.spans(graph), links=parts.links(),
    )  # fmt: skip


def route_edges(edges: list[DrawnEdge], obstacles: list[tuple[float, float]]) -> None:
    """Set each edge's ``bend`` as the layer grid bends it (:func:`edge_bends`)."""
    if not edges:
        return
    offsets = edge_bends(
        np.array([e.start for e in edges]), np.array([e.end for e in edges]),
        [e.port_kind for e in edges], np.array(obstacles),
    )  # fmt: skip
    for edge, offset in zip(edges, offsets.tolist(), strict=True):
        edge.bend = offset


# --------------------------------------------------------------------------- drawing it
def _draw_background(ax: Axes, drawing: CircuitDrawing) -> None:
    """Span separators, the faint layer grid and the attention arcs, beneath the edges."""
    for s in range(len(drawing.spans) - 1):  # column separators
        ax.axvline(s + 0.5, color="#e6e6e6", lw=0.8, zorder=0, gid=f"span-sep-{s}")
    # the full layer grid, faintly, so the circuit sits where it lives in the model
    if drawing.grid:
        gx, gy = zip(*drawing.grid, strict=True)
        ax.scatter(gx, gy, s=6, color="#dddddd", zorder=1, gid="layer-grid")
    for link in drawing.links:
        ax.add_patch(
            FancyArrowPatch(
                link.start, link.end, connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                mutation_scale=7, color="#b0b0b0", lw=0.8, linestyle=(0, (1, 2)), zorder=1.5,
                gid=link.gid,
            )
        )  # fmt: skip


def _draw_edges(ax: Axes, drawing: CircuitDrawing, alpha: float) -> None:
    # weakest first so the strong ones stay visible
    order = sorted(drawing.edges, key=lambda e: abs(e.score) if math.isfinite(e.score) else -1.0)
    for edge in order:
        ax.add_patch(
            PathPatch(
                bezier_path(edge.start, edge.end, edge.bend), fill=False, edgecolor=edge.color,
                linewidth=edge.linewidth, linestyle=edge.linestyle, alpha=alpha,
                capstyle="butt", zorder=2, gid=edge.gid,
            )
        )  # fmt: skip


def _draw_ports(ax: Axes, drawing: CircuitDrawing, shape: CircuitShape, size: float) -> None:
    for port in drawing.ports.values():
        for i, reader in enumerate(port.readers):
            node = drawing.nodes[_key(reader, port.span)]
            ax.plot([port.x, node.x], [port.y, node.y], color="#999999", lw=0.6, zorder=2.5,
                    gid=shape.reader_gid(port.gid, i, reader))  # fmt: skip
        marker, face, _ = PORT_MARKER
        ax.plot([port.x], [port.y], marker=marker, ms=size * 0.6, mfc=face, mec="#333333",
                mew=0.8, ls="none", zorder=3, gid=port.gid)  # fmt: skip


def _draw_nodes(ax: Axes, drawing: CircuitDrawing, shape: CircuitShape, size: float) -> None:
    for node in drawing.nodes.values():
        marker, face, _ = NODE_STYLES[node.kind]
        scale = shape.end_node_scale if node.kind in ("input", "logits") else 1.0
        ax.plot([node.x], [node.y], marker=marker, ms=size * scale, mfc=face, mec="#222222",
                mew=shape.node_mew, ls="none", zorder=4, gid=node.gid)  # fmt: skip
        # the name beside the marker, so a reader can match nodes to the edge table
        above = node.kind == "logits"
        ax.annotate(
            shape.label(node.name, node.kind), (node.x, node.y),
            xytext=(0, shape.label_offset if above else -shape.label_offset),
            textcoords="offset points", ha="center", va="bottom" if above else "top",
            fontsize=shape.label_fontsize, color="#222222", zorder=6, gid=f"label-{node.gid}",
        )  # fmt: skip


def _draw_supernodes(ax: Axes, drawing: CircuitDrawing) -> None:
    for name, points in drawing.supernodes:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, y0 = min(xs) - 0.42, min(ys) - 0.62  # room for the node labels below the markers
        gid = svg_id("supernode", name.replace(" ", "_"))
        ax.add_patch(
            FancyBboxPatch(
                (x0, y0), max(xs) + 0.42 - x0, max(ys) + 0.42 - y0,
                boxstyle="round,pad=0.02,rounding_size=0.15", fc="#7b2cbf", alpha=0.12,
                ec="#7b2cbf", lw=1.2, zorder=1.5, gid=gid,
            )
        )  # fmt: skip
        ax.text(
            x0 + 0.05, max(ys) + 0.45, name, fontsize=8, color="#5a189a", fontweight="bold",
            ha="left", va="bottom", zorder=6, gid=f"label-{gid}",
        )  # fmt: skip


def _render(drawing: CircuitDrawing) -> Figure:
    shape = SHAPES[drawing.shape]
    fig = new_figure(drawing.figsize)
    ax = fig.add_subplot()
    ax.set_title(drawing.title, fontsize=11)
    size = shape.marker_size(drawing.n_heads)
    _draw_background(ax, drawing)
    _draw_edges(ax, drawing, shape.edge_alpha)
    _draw_ports(ax, drawing, shape, size)
    _draw_nodes(ax, drawing, shape, size)
    _draw_supernodes(ax, drawing)
    if drawing.note:
        ax.text(shape.note_x(drawing), drawing.n_layers - 0.5, drawing.note, ha="center",
                va="center", fontsize=12, color="#444444", zorder=5, gid="empty-note",
                bbox={"boxstyle": "round,pad=0.5", "fc": "#fff8e1", "ec": "#c9a227"})  # fmt: skip
    shape.axes(ax, drawing)
    ax.set_ylim(-1.7, 2.0 * drawing.n_layers + 0.7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    link = "head reads key span → query span\n(inside the head, not an edge)"
    handles = legend_handles(
        colors=(e.color for e in drawing.edges), max_abs=drawing.max_abs_score,
        ports=bool(drawing.ports), marker_size=shape.legend_marker_size,
        extra=[Line2D([], [], color="#b0b0b0", lw=0.8, ls=(0, (1, 2)), label=link)]
        if drawing.links else (),
    )  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", fontsize=shape.legend_fontsize,
               frameon=False)  # fmt: skip
    return fig


def circuit_figure(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    shape: str = "layers",
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> Figure:
    """The circuit drawn by :func:`draw_circuit` (or, with ``shape="spans"``,
    :func:`draw_position_circuit`), as a figure (not saved); arguments as
    :func:`circuit_drawing`'s."""
    with figure_style():
        drawing = circuit_drawing(
            graph, circuit, shape=shape, title=title, max_edges=max_edges, supernodes=supernodes
        )
        return _render(drawing)


def draw_circuit(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> list[Path]:
    """Draw the circuit (edges with ``in_graph`` set) on the model's layer grid to ``path`` as
    PNG and SVG.

    Layout follows the model: ``input`` at the bottom, then per layer a row of heads (head
    ``h`` in column ``h``) with the layer's MLP in a row above it, ``logits`` on top (module
    docstring for the edges). Only nodes on drawn edges (plus input and logits) are drawn; the
    rest of the grid is faint dots. With ``max_edges``, a larger circuit is cut to its top
    ``max_edges`` edges by ``|score|`` and the title says so. An empty circuit gives a figure
    with an "empty circuit" note. ``supernodes`` (``(name, node names)``) are drawn as labelled
    boxes. Returns ``[png_path, svg_path]``.
    """
    return save_and_close(
        lambda: circuit_figure(graph, title=title, max_edges=max_edges, supernodes=supernodes),
        path,
    )


def position_circuit_drawing(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    title: str | None = None,
    max_edges: int | None = 200,
) -> CircuitDrawing:
    """:func:`circuit_drawing` on the span columns (``shape="spans"``), at most ``max_edges``
    (span, edge) pairs, those of largest ``|position score|``."""
    return circuit_drawing(graph, circuit, shape="spans", title=title, max_edges=max_edges)


def position_circuit_figure(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    title: str | None = None,
    max_edges: int = 200,
) -> Figure:
    """The position-aware circuit as a figure (not saved): spans on the horizontal axis, layers
    on the vertical. ``circuit``: an ``[n_spans, F, K]`` (or position-agnostic ``[F, K]``,
    taken at every span) circuit; by default the graph's own. At most ``max_edges`` (span,
    edge) pairs are drawn, those of largest ``|score|``."""
    return circuit_figure(graph, circuit, shape="spans", title=title, max_edges=max_edges)


def draw_position_circuit(
    graph: Graph,
    path: str | os.PathLike[str],
    circuit: Circuit | None = None,
    **kw: Any,
) -> Path:
    """Draw :func:`position_circuit_figure` (``kw``: ``title``, ``max_edges``) to ``path`` and
    return the path written: the format is the suffix's (``.png``, ``.svg`` or ``.pdf``;
    ``.png`` is added to a path without one), the write atomic, missing folders created."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    if path.suffix.lower() not in _FORMATS:
        raise FigureError(
            f"cannot draw a figure to {str(path)!r}: use a {', '.join(_FORMATS)} suffix"
        )
    fig = position_circuit_figure(graph, circuit, **kw)
    try:
        return write_figure(fig, path)
    finally:
        fig.clear()
