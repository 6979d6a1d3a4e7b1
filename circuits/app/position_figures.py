"""The figure of a position-aware circuit (issue #17, PEAP): spans across, layers up.

One column per span of the graph's position axis (labelled with the span names, in prompt
order), the model's layers from ``input`` at the bottom to ``logits`` on top, as in
:func:`circuits.app.figures.circuit_figure`; one dot per (node, span) that a drawn edge
touches. An edge ``(s, u -> v)`` is ``u``'s write at the tokens of span ``s`` entering ``v``'s
port at those same tokens (:mod:`graphs.positions`), so every edge is drawn inside column
``s``, from ``u``'s dot to the reader's dot, styled by port as in the position-agnostic figure
(q solid, k dashed, v dotted, ...), blue for a positive score and red for a negative one, wider
for a larger ``|score|``.

A head that reads keys and values at span ``s`` moves what it read to queries at later spans;
that happens inside the head, not along an edge. It is shown as a faint grey arc from the
head's dot at ``s`` to its dot at each later span ``t`` where the circuit uses the head (its
query input or its output), drawn beneath the edges, never styled or counted as an edge.

Every drawn element carries a ``gid`` (the SVG ``<g>`` id): ``edge-s{s}-<edge>``,
``node-s{s}-<node>``, ``port-s{s}-<port>`` (shared key/value ports of grouped-query models),
``attention-s{s}-s{t}-<head>``, ``empty-note`` (names as :func:`circuits.app.figures.svg_id`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, PathPatch
from matplotlib.path import Path as MplPath

from circuits.app.edge_routes import CLEARANCE, control_point, route_offsets
from circuits.app.figures import (
    EMPTY_NOTE,
    NODE_STYLES,
    PORT_STYLES,
    edge_look,
    edges_to_draw,
    legend_handles,
    model_label,
    svg_id,
)
from circuits.plotting import FigureError, figure_style, new_figure, write_figure
from graphs import Circuit, Graph, GraphMismatchError
from graphs.positions import PositionError

__all__ = [
    "FigureError",
    "PositionCircuitDrawing",
    "draw_position_circuit",
    "position_circuit_drawing",
    "position_circuit_figure",
]

_FORMATS = (".png", ".svg", ".pdf")
# Within a span's column (columns are 1 apart): a layer's heads spread over [_HEADS_LO,
# _HEADS_HI] of the centre, input and logits over their middle, and the MLPs stand in a lane
# of their own at _MLP_X, so that the edges along the MLP lane do not run through the heads.
_HEADS_LO, _HEADS_HI, _MLP_X = -0.40, 0.20, 0.40
# Port bends (fraction of length, left of travel) and the detour per node crossed
# (circuits.app.edge_routes), smaller than the circuit figure's: an edge stays inside its
# span's column. MLP inputs go straight (a bend would lay them along the edges into the
# nearest heads); edges along the MLP lane detour to the right, away from the heads.
_BEND = {"q": 0.0, "k": 0.04, "v": -0.04, "mlp": 0.0, "logits": 0.0}
_STEP = 0.1


@dataclass
class Dot:
    """A (node, span) the circuit uses, or a shared key/value port at a span."""

    name: str
    kind: str  # node kind, or "k" / "v" for a shared port
    span: int
    x: float
    y: float
    gid: str
    readers: tuple[tuple[float, float], ...] = ()  # a shared port's query heads' places


@dataclass
class Stroke:
    """A drawn edge ``(span, upstream -> port)``."""

    span: int
    name: str
    port_kind: str
    score: float
    start: tuple[float, float]
    end: tuple[float, float]
    linewidth: float
    color: str
    gid: str
    bend: float = 0.0  # the Bézier control point's sideways offset (edge_routes)


@dataclass
class AttentionLink:
    """A head's read from its key span to a later query span: inside the head, not an edge."""

    head: str
    key_span: int
    query_span: int
    start: tuple[float, float]
    end: tuple[float, float]
    gid: str


@dataclass
class PositionCircuitDrawing:
    """What :func:`position_circuit_figure` draws, in data coordinates: span ``s`` is the column
    centred on x = s; rows are the layers' as in the position-agnostic figure (``input`` at
    y = -1, layer ``l``'s heads at 2l, its MLP at 2l + 1, ``logits`` at 2L). ``n_circuit_edges``
    counts the circuit's (span, edge) pairs, ``edges`` the drawn ones (at most ``max_edges``)."""

    title: str
    spans: tuple[str, ...]
    n_layers: int
    n_heads: int
    figsize: tuple[float, float]
    dots: dict[tuple[str, int], Dot]
    ports: dict[tuple[str, int], Dot]
    edges: list[Stroke]
    links: list[AttentionLink]
    n_circuit_edges: int
    truncated: bool
    max_abs_score: float
    note: str | None = None


def _per_span_circuit(graph: Graph, circuit: Circuit | None) -> torch.Tensor:
    """Bool ``[n_spans, F, K]``: the circuit's (span, edge) pairs; a position-agnostic circuit
    keeps its edges at every span."""
    if graph.positions is None or graph.position_scores is None:
        raise PositionError(
            "this graph has no position axis, so there is no position-aware circuit to draw; "
            "attribute it with position-aware data (attribution.positions.with_positions) or "
            "draw it with circuits.app.figures.draw_circuit"
        )
    edges = graph.circuit.edges if circuit is None else circuit.edges.to("cpu", torch.bool)
    S, F, K = graph.position_scores.shape
    if edges.dim() == 2 and tuple(edges.shape) == (F, K):
        edges = edges.expand(S, F, K)
    if tuple(edges.shape) != (S, F, K):
        raise GraphMismatchError(
            f"the circuit's edges have shape {tuple(edges.shape)}, this graph needs {(S, F, K)} "
            f"([span, upstream, port]) or {(F, K)}"
        )
    return edges & graph.real_edges


def _x(node_kind: str, head: int, n_heads: int, span: int) -> float:
    if node_kind == "mlp":
        return span + _MLP_X
    if node_kind != "attention" or n_heads == 1:
        return span + (_HEADS_LO + _HEADS_HI) / 2
    return span + _HEADS_LO + (_HEADS_HI - _HEADS_LO) * head / (n_heads - 1)


def _y(node_kind: str, layer: int, n_layers: int) -> float:
    if node_kind == "input":
        return -1.0
    if node_kind == "logits":
        return 2.0 * n_layers
    return 2.0 * layer + (1 if node_kind == "mlp" else 0)


def position_circuit_drawing(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    title: str | None = None,
    max_edges: int | None = 200,
) -> PositionCircuitDrawing:
    """Places, styles and gids of what :func:`position_circuit_figure` draws.

    Drawn edges: the circuit's (span, edge) pairs (``circuit``, else the graph's own circuit,
    which must then be position-aware or is taken at every span), or, when there are more than
    ``max_edges``, the ``max_edges`` of largest ``|position score|`` (ties in index order).
    Width is ``0.5 + 3.5 |score| / max |score|`` over the drawn edges."""
    if max_edges is not None and max_edges < 0:
        raise FigureError(f"max_edges must be >= 0 (or None for all), got {max_edges}")
    mask = _per_span_circuit(graph, circuit)
    layout, spans = graph.layout, tuple(graph.positions)
    L, H = graph.spec.n_layers, graph.spec.n_heads
    index, scores, n_circuit, truncated, max_abs = edges_to_draw(
        mask, graph.position_scores, max_edges
    )

    dots: dict[tuple[str, int], Dot] = {}
    ports: dict[tuple[str, int], Dot] = {}

    def dot(name: str, s: int) -> Dot:
        if (name, s) not in dots:
            node = layout.node_by_name[name]
            x, y = _x(node.kind, node.head, H, s), _y(node.kind, node.layer, L)
            dots[name, s] = Dot(name, node.kind, s, x, y, f"node-s{s}-{svg_id('n', name)[2:]}")
        return dots[name, s]

    edges: list[Stroke] = []
    for (s, up, p), score in zip(index.tolist(), scores.tolist(), strict=True):
        upstream, port = layout.upstream[up], layout.ports[p]
        start = dot(upstream.name, s)
        readers = [dot(name, s) for name in port.nodes]
        if len(readers) == 1:
            end = (readers[0].x, readers[0].y)
        else:  # a key/value port shared by a group of query heads: the line ends at the port
            if (port.name, s) not in ports:
                x = sum(r.x for r in readers) / len(readers)
                x += (-1 if port.port == "k" else 1) * (_HEADS_HI - _HEADS_LO) / max(2 * H, 4)
                gid = f"port-s{s}-{svg_id('p', port.name)[2:]}"
                ports[port.name, s] = Dot(
                    port.name, port.port, s, x, readers[0].y - 0.38, gid,
                    tuple((r.x, r.y) for r in readers),
                )  # fmt: skip
            end = (ports[port.name, s].x, ports[port.name, s].y)
        width, color = edge_look(score, max_abs)
        name = f"{upstream.name}->{port.name}"
        edges.append(
            Stroke(
                s, name, port.port, score, (start.x, start.y), end, width, color,
                f"edge-s{s}-{svg_id('e', name)[2:]}",
            )
        )  # fmt: skip

    _route(edges, layout, spans, L, H)
    links = _attention_links(graph, edges, dots)
    n_spans_used = len({s for _, s in dots})
    if title is None:
        title = (
            f"Position-aware circuit of {model_label(graph)}: {n_circuit} (span, edge) pairs "
            f"at {n_spans_used} of {len(spans)} spans"
        )
    if truncated:
        title += f"\n(drawing the top {len(edges)} of {n_circuit} by |score|)"
    note = None
    if not edges:
        note = EMPTY_NOTE if n_circuit == 0 else f"max_edges=0: none of {n_circuit} edges drawn"
    return PositionCircuitDrawing(
        title=title,
        spans=spans,
        n_layers=L,
        n_heads=H,
        figsize=_figsize(len(spans), L, H),
        dots=dots,
        ports=ports,
        edges=edges,
        links=links,
        n_circuit_edges=n_circuit,
        truncated=truncated,
        max_abs_score=max_abs,
        note=note,
    )


def _attention_links(
    graph: Graph, edges: list[Stroke], dots: dict[tuple[str, int], Dot]
) -> list[AttentionLink]:
    """Arcs from a head's key/value input at span s to its use at each later span t."""
    layout = graph.layout
    key_spans: dict[str, set[int]] = {}
    used: dict[str, set[int]] = {}
    for edge in edges:
        upstream, port = edge.name.split("->")
        readers = layout.port_by_name[port].nodes
        if edge.port_kind in ("k", "v"):
            for head in readers:
                key_spans.setdefault(head, set()).add(edge.span)
        elif edge.port_kind == "q":
            used.setdefault(readers[0], set()).add(edge.span)
        if layout.node_by_name[upstream].kind == "attention":
            used.setdefault(upstream, set()).add(edge.span)
    links = []
    for head in sorted(key_spans, key=lambda n: layout.node_by_name[n].index):
        for s in sorted(key_spans[head]):
            for t in sorted(t for t in used.get(head, ()) if t > s):
                a, b = dots[head, s], dots[head, t]
                links.append(
                    AttentionLink(
                        head, s, t, (a.x, a.y), (b.x, b.y),
                        f"attention-s{s}-s{t}-{svg_id('n', head)[2:]}",
                    )
                )  # fmt: skip
    return links


def _route(edges: list[Stroke], layout: Any, spans: tuple[str, ...], L: int, H: int) -> None:
    """Set each stroke's ``bend``: its port's bend plus a detour around the places of its
    span's column that its straight line would cross (:mod:`circuits.app.edge_routes`)."""
    if not edges:
        return
    places = {
        s: [(_x(n.kind, n.head, H, s), _y(n.kind, n.layer, L)) for n in layout.nodes]
        for s in {e.span for e in edges}
    }
    gap = (_HEADS_HI - _HEADS_LO) / max(H - 1, 1)  # between neighbouring heads
    for s, column in places.items():
        strokes = [e for e in edges if e.span == s]
        offsets = route_offsets(
            np.array([e.start for e in strokes]), np.array([e.end for e in strokes]),
            [_BEND[e.port_kind] for e in strokes], np.array(column), step=_STEP,
            clearance=min(CLEARANCE, 0.3 * gap),
            sides=[-1.0 if e.start[0] == e.end[0] == s + _MLP_X else 1.0 for e in strokes],
        )  # fmt: skip
        for stroke, offset in zip(strokes, offsets.tolist(), strict=True):
            stroke.bend = offset


def _figsize(n_spans: int, n_layers: int, n_heads: int) -> tuple[float, float]:
    height = min(max(1.2 + 0.42 * (2 * n_layers + 2), 4.0), 30.0)
    # wide enough per span that neighbouring heads' labels do not touch
    width = min(max(1.4 + n_spans * max(1.3, 0.3 * n_heads), 5.0), 40.0) + 3.0  # + legend
    return round(width, 2), round(height, 2)


def _stroke_path(edge: Stroke) -> MplPath:
    c = control_point(edge.start, edge.end, edge.bend)
    return MplPath([edge.start, c, edge.end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])


def _label(dot: Dot) -> str:
    """A dot's name as printed: a head's without its layer (``h3``; the row names the layer),
    so that a span's heads, a third of a column apart at most, keep their labels apart."""
    return dot.name.partition(".")[2] if dot.kind == "attention" else dot.name


def _render(drawing: PositionCircuitDrawing) -> Figure:
    S, L, H = len(drawing.spans), drawing.n_layers, drawing.n_heads
    fig = new_figure(drawing.figsize)
    ax = fig.add_subplot()
    ax.set_title(drawing.title, fontsize=11)
    marker_size = 8.0 if H <= 8 else 6.0

    for s in range(S - 1):  # column separators
        ax.axvline(s + 0.5, color="#e6e6e6", lw=0.8, zorder=0, gid=f"span-sep-{s}")
    for link in drawing.links:
        ax.add_patch(
            FancyArrowPatch(
                link.start, link.end, connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                mutation_scale=7, color="#b0b0b0", lw=0.8, linestyle=(0, (1, 2)), zorder=1.5,
                gid=link.gid,
            )
        )  # fmt: skip
    order = sorted(drawing.edges, key=lambda e: abs(e.score) if math.isfinite(e.score) else -1.0)
    for edge in order:
        ax.add_patch(
            PathPatch(
                _stroke_path(edge), fill=False, edgecolor=edge.color, linewidth=edge.linewidth,
                linestyle=PORT_STYLES[edge.port_kind], alpha=0.85, capstyle="butt", zorder=2,
                gid=edge.gid,
            )
        )  # fmt: skip
    for port in drawing.ports.values():
        for i, (x, y) in enumerate(port.readers):
            ax.plot([port.x, x], [port.y, y], color="#999999", lw=0.6, zorder=2.5,
                    gid=f"{port.gid}-reader-{i}")  # fmt: skip
        ax.plot([port.x], [port.y], marker="d", ms=marker_size * 0.6, mfc="#ffffff",
                mec="#333333", mew=0.8, ls="none", zorder=3, gid=port.gid)  # fmt: skip
    for d in drawing.dots.values():
        marker, face, _ = NODE_STYLES[d.kind]
        ax.plot([d.x], [d.y], marker=marker, ms=marker_size, mfc=face, mec="#222222", mew=0.7,
                ls="none", zorder=4, gid=d.gid)  # fmt: skip
        ax.annotate(
            _label(d), (d.x, d.y), xytext=(0, -7 if d.kind != "logits" else 7),
            textcoords="offset points", ha="center",
            va="top" if d.kind != "logits" else "bottom", fontsize=6, color="#222222",
            zorder=6, gid=f"label-{d.gid}",
        )  # fmt: skip
    if drawing.note:
        ax.text((S - 1) / 2, L - 0.5, drawing.note, ha="center", va="center", fontsize=12,
                color="#444444", zorder=5, gid="empty-note",
                bbox={"boxstyle": "round,pad=0.5", "fc": "#fff8e1", "ec": "#c9a227"})  # fmt: skip

    ax.set_xticks(range(S), list(drawing.spans), fontsize=8, rotation=30 if S > 8 else 0)
    ax.set_xlabel("position (span)", fontsize=9)
    yticks, ylabels = [-1.0], ["input"]
    for layer in range(L):
        yticks += [2.0 * layer, 2.0 * layer + 1]
        ylabels += [f"L{layer} heads", f"L{layer} MLP"]
    ax.set_yticks([*yticks, 2.0 * L], [*ylabels, "logits"], fontsize=7 if L > 8 else 8)
    ax.set_xlim(-0.6, S - 0.4)
    ax.set_ylim(-1.7, 2.0 * L + 0.7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)

    link = "head reads key span → query span\n(inside the head, not an edge)"
    handles = legend_handles(
        colors=(e.color for e in drawing.edges), max_abs=drawing.max_abs_score,
        ports=bool(drawing.ports), marker_size=7,
        extra=[Line2D([], [], color="#b0b0b0", lw=0.8, ls=(0, (1, 2)), label=link)]
        if drawing.links else (),
    )  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    return fig


def position_circuit_figure(
    graph: Graph,
    circuit: Circuit | None = None,
    *,
    title: str | None = None,
    max_edges: int = 200,
) -> Figure:
    """The position-aware circuit as a figure (not saved): spans on the horizontal axis, layers
    on the vertical (module docstring). ``circuit``: an ``[n_spans, F, K]`` (or
    position-agnostic ``[F, K]``, taken at every span) circuit; by default the graph's own.
    At most ``max_edges`` (span, edge) pairs are drawn, those of largest ``|score|``."""
    with figure_style():
        return _render(position_circuit_drawing(graph, circuit, title=title, max_edges=max_edges))


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
