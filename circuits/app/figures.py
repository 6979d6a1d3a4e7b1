"""Figures of a circuit-discovery run: the circuit, the faithfulness curve, the score histogram.

Each ``draw_*``/``plot_*`` function writes the figure twice, as ``<path>.png`` and
``<path>.svg`` (the suffix of ``path`` is replaced), creating missing parent folders, and returns
both paths. Files are written atomically (:func:`graphs.atomic_files.atomic_write`), so a reader
never sees half a file.

No graphviz (or any other system program) is needed: the circuit's layout is computed here from
the model's layer grid and drawn with matplotlib. Figure creation, style and saving (Agg canvas,
no pyplot, font-independent and reproducible SVG) are :mod:`circuits.plotting`'s;
``DPI`` and ``save_figure`` are re-exported here for older callers.

Every drawn element that a test or a script may want to find carries a ``gid`` (the ``id`` of
its ``<g>`` in the SVG), see :func:`svg_id`: ``edge-<edge>``, ``node-<node>``, ``port-<port>``
(shared key/value ports of grouped-query models), ``empty-note``, ``minimal-circuit``,
``hist-all``, ``hist-circuit``.

The ``*_figure`` functions return the figure without saving it, and :func:`circuit_drawing`,
:func:`faithfulness_plot_data` and :func:`score_histogram_data` compute what is drawn without
drawing, for inspection and tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.path import Path as MplPath

from circuits.app.edge_routes import control_point, route_offsets
from circuits.plotting import (
    DPI,
    FigureError,
    figure_style,
    new_figure,
    save_and_close,
    save_figure,
)
from graphs.graph import Graph
from graphs.layout import INPUT, LOGITS

__all__ = [
    "DPI",
    "PORT_STYLES",
    "CircuitDrawing",
    "DrawnEdge",
    "DrawnNode",
    "DrawnPort",
    "NODE_STYLES",
    "FaithfulnessPlotData",
    "ScoreHistogram",
    "circuit_drawing",
    "circuit_figure",
    "node_xy",
    "port_xy",
    "draw_circuit",
    "edge_bends",
    "edge_look",
    "edges_to_draw",
    "faithfulness_figure",
    "faithfulness_plot_data",
    "legend_handles",
    "model_label",
    "route_edges",
    "plot_faithfulness_curve",
    "plot_score_histogram",
    "save_figure",
    "score_histogram_data",
    "score_histogram_figure",
    "svg_id",
]

EMPTY_NOTE = "empty circuit: no edges to draw"

# Line style of an edge by the kind of port it enters (matplotlib dash specifications).
PORT_STYLES: dict[str, Any] = {
    "q": "-",
    "k": (0, (5.0, 2.0)),
    "v": (0, (1.0, 1.5)),
    "mlp": (0, (6.0, 2.0, 1.5, 2.0)),
    "logits": (0, (2.5, 1.0, 1.0, 1.0, 1.0, 1.0)),
}
PORT_LABELS = {
    "q": "into query (q)",
    "k": "into key (k)",
    "v": "into value (v)",
    "mlp": "into MLP",
    "logits": "into logits",
}
# Sideways bend of an edge (fraction of its length, positive to the left of travel), so that
# the q, k and v edges between the same two nodes do not overlap; MLP inputs bend right, so the
# edges along the MLP column (the rightmost) swing out into the margin.
_PORT_BEND = {"q": 0.0, "k": 0.14, "v": -0.14, "mlp": -0.08, "logits": 0.0}
# Extra sideways offset per node that an edge's straight line would cross (edge_routes).
ROUTE_STEP = 0.35

POSITIVE = "#2166ac"
NEGATIVE = "#b2182b"
ZERO = "#888888"
NODE_STYLES = {  # node kind -> (marker, face colour, legend label)
    "attention": ("o", "#f4a261", "attention head"),
    "mlp": ("s", "#2a9d8f", "MLP"),
    "input": ("D", "#555555", "input / logits"),
    "logits": ("D", "#555555", "input / logits"),
}
_PORT_MARKER = ("d", "#ffffff", "shared k/v port (grouped-query)")


# --------------------------------------------------------------------------- helpers
def svg_id(prefix: str, name: str) -> str:
    """An XML-safe id ``<prefix>-<name>`` for a node, port or edge name.

    ``->`` becomes ``__`` and ``<k>`` becomes ``_k``; names otherwise contain only letters,
    digits and dots, so the mapping is one-to-one: ``svg_id("edge", "a0.h1->a1.kv0<k>")`` is
    ``"edge-a0.h1__a1.kv0_k"``.
    """
    safe = name.replace("->", "__").replace("<", "_").replace(">", "")
    return f"{prefix}-{safe}"


def model_label(graph: Graph) -> str:
    """The model's name for a figure title: its name, else its architecture, else "model"."""
    spec = graph.spec
    name = spec.model_name if spec.model_name not in ("", "external") else ""
    return name or spec.architecture or "model"


def edge_look(score: float, max_abs: float) -> tuple[float, str]:
    """An edge's line width and colour: ``0.5 + 3.5 |score| / max_abs`` wide, blue for a
    positive score, red for a negative one, grey for 0 or a score that is not finite."""
    if not math.isfinite(score):
        return 0.5, ZERO
    width = 0.5 + 3.5 * abs(score) / max_abs if max_abs > 0 else 1.2
    return width, POSITIVE if score > 0 else NEGATIVE if score < 0 else ZERO


def legend_handles(
    *,
    colors: Iterable[str],
    max_abs: float,
    ports: bool,
    marker_size: float,
    extra: Iterable[Any] = (),
) -> list[Any]:
    """The circuit figures' legend: node kinds, the shared k/v port (``ports``), the port
    line styles, the score colours (grey only when an edge of ``colors`` is), ``extra``
    handles, and the width scale up to ``max_abs``."""
    handles: list[Any] = []
    for kind in ("attention", "mlp", "input"):
        marker, face, label = NODE_STYLES[kind]
        handles.append(
            Line2D(
                [], [], marker=marker, mfc=face, mec="#222222", ls="none", ms=marker_size,
                label=label,
            )
        )  # fmt: skip
    if ports:
        marker, face, label = _PORT_MARKER
        handles.append(
            Line2D([], [], marker=marker, mfc=face, mec="#333333", ls="none", ms=6, label=label)
        )
    for kind, style in PORT_STYLES.items():
        handles.append(Line2D([], [], color="#333333", lw=1.5, ls=style, label=PORT_LABELS[kind]))
    handles.append(Line2D([], [], color=POSITIVE, lw=2.5, label="score > 0"))
    handles.append(Line2D([], [], color=NEGATIVE, lw=2.5, label="score < 0"))
    if ZERO in set(colors):
        handles.append(Line2D([], [], color=ZERO, lw=1.0, label="score 0 / not finite"))
    handles += list(extra)
    width = f"width ∝ |score|\n(max {max_abs:.3g})" if max_abs > 0 else "width ∝ |score|"
    handles.append(Line2D([], [], color="none", label=width))
    return handles


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


# --------------------------------------------------------------------------- circuit
@dataclass
class DrawnNode:
    name: str
    kind: str  # "input" | "attention" | "mlp" | "logits"
    x: float
    y: float
    gid: str


@dataclass
class DrawnPort:
    """A key/value port shared by several query heads (grouped-query attention)."""

    name: str
    kind: str  # "k" | "v"
    x: float
    y: float
    readers: tuple[str, ...]
    gid: str


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
    bend: float = 0.0  # the Bézier control point's sideways offset (edge_routes)


@dataclass
class CircuitDrawing:
    """Everything :func:`circuit_figure` draws, in data coordinates.

    Rows: ``input`` at y = -1, layer ``l``'s heads at y = 2l (head ``h`` at x = h), its MLP
    half a row above and right of them (x = H, y = 2l + 1), ``logits`` at y = 2L; input and
    logits are centred over the heads. ``n_circuit_edges`` counts the whole circuit,
    ``edges`` the drawn ones (fewer when ``max_edges`` cut it)."""

    title: str
    n_layers: int
    n_heads: int
    figsize: tuple[float, float]
    nodes: dict[str, DrawnNode]
    ports: dict[str, DrawnPort]
    edges: list[DrawnEdge]
    n_circuit_edges: int
    truncated: bool
    max_abs_score: float
    note: str | None = None
    grid: list[tuple[float, float]] = field(default_factory=list)
    # named groups of nodes (the explorer's supernodes): (name, [(x, y) of each member])
    supernodes: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)


def node_xy(node, n_heads: int, n_layers: int) -> tuple[float, float]:
    """Where the circuit figure (and the browser explorer) puts ``node``: see
    :class:`CircuitDrawing` for the rows."""
    centre = (n_heads - 1) / 2
    if node.kind == "input":
        return centre, -1.0
    if node.kind == "logits":
        return centre, 2.0 * n_layers
    if node.kind == "mlp":
        return float(n_heads), 2.0 * node.layer + 1
    return float(node.head), 2.0 * node.layer


def port_xy(kind: str, readers: list[tuple[float, float]]) -> tuple[float, float]:
    """Where a key/value port shared by the query heads at ``readers`` is drawn: below their
    centre, keys left and values right."""
    x = sum(r[0] for r in readers) / len(readers) + (-0.14 if kind == "k" else 0.14)
    return x, readers[0][1] - 0.38


def _circuit_figsize(n_layers: int, n_heads: int) -> tuple[float, float]:
    rows = 2 * n_layers + 2
    height = min(max(1.2 + 0.42 * rows, 4.0), 30.0)
    width = min(max(1.5 + 0.75 * n_heads, 4.0), 22.0) + 3.2  # + MLP and legend columns
    return round(width, 2), round(height, 2)


def circuit_drawing(
    graph: Graph,
    *,
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> CircuitDrawing:
    """Positions, styles and gids of what :func:`circuit_figure` draws; see :class:`CircuitDrawing`.

    Drawn edges: those with ``in_graph`` set, or, when ``max_edges`` is given and the circuit
    is larger, its ``max_edges`` edges of largest ``|score|`` (ties in index order). Drawn nodes:
    the ends of drawn edges (every query head of a shared k/v port), plus ``input`` and
    ``logits``. Edge width is proportional to ``|score|`` relative to the largest drawn
    ``|score|``; colour is blue for a positive score, red for a negative one, grey for 0.
    ``supernodes``: ``(name, node names)`` groups, each drawn as a labelled box around its
    nodes' places (see :mod:`circuits.app.explorer.supernodes`).
    """
    if max_edges is not None and max_edges < 0:
        raise FigureError(f"max_edges must be >= 0, got {max_edges}")
    layout = graph.layout
    L, H = graph.spec.n_layers, graph.spec.n_heads
    mask = graph.in_graph & graph.real_edges
    index, scores, n_circuit, truncated, max_abs = edges_to_draw(mask, graph.scores, max_edges)

    nodes: dict[str, DrawnNode] = {}
    ports: dict[str, DrawnPort] = {}

    def add_node(name: str) -> DrawnNode:
        if name not in nodes:
            node = layout.node_by_name[name]
            x, y = node_xy(node, H, L)
            nodes[name] = DrawnNode(name, node.kind, x, y, svg_id("node", name))
        return nodes[name]

    add_node(INPUT)
    add_node(LOGITS)
    edges: list[DrawnEdge] = []
    for (up, port_index), score in zip(index.tolist(), scores.tolist(), strict=True):
        upstream = layout.upstream[up]
        port = layout.ports[port_index]
        start = add_node(upstream.name)
        readers = [add_node(name) for name in port.nodes]
        if len(readers) == 1:
            target, end = readers[0].name, (readers[0].x, readers[0].y)
        else:  # a k/v port shared by a group of query heads: the line ends at the port
            if port.name not in ports:
                x, y = port_xy(port.port, [(r.x, r.y) for r in readers])
                ports[port.name] = DrawnPort(
                    port.name,
                    port.port,
                    x,
                    y,
                    tuple(r.name for r in readers),
                    svg_id("port", port.name),
                )
            drawn_port = ports[port.name]
            target, end = port.name, (drawn_port.x, drawn_port.y)
        width, color = edge_look(score, max_abs)
        name = f"{upstream.name}->{port.name}"
        edges.append(
            DrawnEdge(
                name=name,
                upstream=upstream.name,
                port=port.name,
                port_kind=port.port,
                target=target,
                score=score,
                start=(start.x, start.y),
                end=end,
                linestyle=PORT_STYLES[port.port],
                linewidth=width,
                color=color,
                gid=svg_id("edge", name),
            )
        )

    # components of the whole circuit (not only of the drawn edges)
    touched = {layout.upstream[u].name for u in mask.any(dim=1).nonzero().flatten().tolist()}
    for p in mask.any(dim=0).nonzero().flatten().tolist():
        touched.update(layout.ports[p].nodes)
    n_nodes = len(touched - {INPUT, LOGITS})
    if title is None:
        title = f"Circuit of {model_label(graph)}: {n_circuit} edges, {n_nodes} heads/MLPs"
    if truncated:
        title += f"\n(drawing the top {len(edges)} of {n_circuit} edges by |score|)"
    note = None
    if not edges:
        note = EMPTY_NOTE if n_circuit == 0 else f"max_edges=0: none of {n_circuit} edges drawn"
        if n_circuit == 0:
            title += " (empty circuit)"
    grid = [node_xy(n, H, L) for n in layout.nodes if n.kind in ("attention", "mlp")]
    route_edges(edges, obstacles=[*grid, *(node_xy(layout.nodes[i], H, L) for i in (0, -1))])
    return CircuitDrawing(
        title=title,
        n_layers=L,
        n_heads=H,
        figsize=_circuit_figsize(L, H),
        nodes=nodes,
        ports=ports,
        edges=edges,
        n_circuit_edges=n_circuit,
        truncated=truncated,
        max_abs_score=max_abs,
        note=note,
        grid=grid,
        supernodes=[
            (name, [node_xy(layout.node(n), H, L) for n in members])
            for name, members in (supernodes or [])
        ],
    )


def edge_bends(
    starts: np.ndarray, ends: np.ndarray, port_kinds: list[str], obstacles: np.ndarray
) -> np.ndarray:
    """The circuit figure's (and the explorer's) Bézier offsets of edges ``starts[i] ->
    ends[i]`` entering ports of ``port_kinds[i]``: the port kind's bend plus a detour around
    the ``obstacles`` (the nodes' places) that the straight line would cross
    (:func:`circuits.app.edge_routes.route_offsets`)."""
    bends = [_PORT_BEND[kind] for kind in port_kinds]
    return route_offsets(starts, ends, bends, obstacles, step=ROUTE_STEP)


def route_edges(edges: list[DrawnEdge], obstacles: list[tuple[float, float]]) -> None:
    """Set each edge's ``bend`` (:func:`edge_bends`)."""
    if not edges:
        return
    offsets = edge_bends(
        np.array([e.start for e in edges]), np.array([e.end for e in edges]),
        [e.port_kind for e in edges], np.array(obstacles),
    )  # fmt: skip
    for edge, offset in zip(edges, offsets.tolist(), strict=True):
        edge.bend = offset


def _edge_path(edge: DrawnEdge) -> MplPath:
    """A quadratic Bézier from start to end, its control point ``edge.bend`` to the side."""
    cx, cy = control_point(edge.start, edge.end, edge.bend)
    return MplPath(
        [edge.start, (cx, cy), edge.end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3]
    )


def _x_range(drawing: CircuitDrawing) -> tuple[float, float]:
    """The x range of the axes: the grid, widened to hold every edge's curve (a detour may
    swing out past the MLP column)."""
    lo, hi = -0.8, drawing.n_heads + 0.6
    for edge in drawing.edges:
        cx, _ = control_point(edge.start, edge.end, edge.bend)
        mid = (edge.start[0] + 2 * cx + edge.end[0]) / 4  # the curve's farthest point
        lo, hi = min(lo, mid - 0.3), max(hi, mid + 0.3)
    return lo, hi


def _render_circuit(drawing: CircuitDrawing) -> Figure:
    L, H = drawing.n_layers, drawing.n_heads
    fig = new_figure(drawing.figsize)
    ax = fig.add_subplot()
    ax.set_title(drawing.title, fontsize=11)
    marker_size = 10.0 if H <= 16 else 7.0

    # the full layer grid, faintly, so the circuit sits where it lives in the model
    if drawing.grid:
        gx, gy = zip(*drawing.grid, strict=True)
        ax.scatter(gx, gy, s=6, color="#dddddd", zorder=1, gid="layer-grid")

    # edges, weakest first so the strong ones stay visible
    order = sorted(drawing.edges, key=lambda e: abs(e.score) if math.isfinite(e.score) else -1.0)
    for edge in order:
        ax.add_patch(
            PathPatch(
                _edge_path(edge),
                fill=False,
                edgecolor=edge.color,
                linewidth=edge.linewidth,
                linestyle=edge.linestyle,
                alpha=0.8,
                capstyle="butt",
                zorder=2,
                gid=edge.gid,
            )
        )

    for port in drawing.ports.values():
        for reader in port.readers:
            node = drawing.nodes[reader]
            ax.plot(
                [port.x, node.x],
                [port.y, node.y],
                color="#999999",
                lw=0.6,
                zorder=2.5,
                gid=f"{port.gid}-reader-{svg_id('node', reader)[5:]}",
            )
        marker, face, _ = _PORT_MARKER
        ax.plot(
            [port.x],
            [port.y],
            marker=marker,
            ms=marker_size * 0.6,
            mfc=face,
            mec="#333333",
            mew=0.8,
            ls="none",
            zorder=3,
            gid=port.gid,
        )
    for node in drawing.nodes.values():
        marker, face, _ = NODE_STYLES[node.kind]
        size = marker_size * (1.1 if node.kind in ("input", "logits") else 1.0)
        ax.plot(
            [node.x],
            [node.y],
            marker=marker,
            ms=size,
            mfc=face,
            mec="#222222",
            mew=0.8,
            ls="none",
            zorder=4,
            gid=node.gid,
        )
        # the name beside the marker, so a reader can match nodes to the edge table
        ax.annotate(
            node.name,
            (node.x, node.y),
            xytext=(0, -9 if node.kind != "logits" else 9),
            textcoords="offset points",
            ha="center",
            va="top" if node.kind != "logits" else "bottom",
            fontsize=7,
            color="#222222",
            zorder=6,
            gid=f"label-{node.gid}",
        )

    for name, points in drawing.supernodes:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, y0 = min(xs) - 0.42, min(ys) - 0.62  # room for the node labels below the markers
        ax.add_patch(
            FancyBboxPatch(
                (x0, y0), max(xs) + 0.42 - x0, max(ys) + 0.42 - y0,
                boxstyle="round,pad=0.02,rounding_size=0.15", fc="#7b2cbf", alpha=0.12,
                ec="#7b2cbf", lw=1.2, zorder=1.5, gid=svg_id("supernode", name.replace(" ", "_")),
            )
        )  # fmt: skip
        ax.text(
            x0 + 0.05, max(ys) + 0.45, name, fontsize=8, color="#5a189a", fontweight="bold",
            ha="left", va="bottom", zorder=6, gid=f"label-{svg_id('supernode', name.replace(' ', '_'))}",
        )  # fmt: skip

    if drawing.note:
        ax.text(
            (H - 1) / 2,
            L - 0.5,
            drawing.note,
            ha="center",
            va="center",
            fontsize=12,
            color="#444444",
            zorder=5,
            gid="empty-note",
            bbox={"boxstyle": "round,pad=0.5", "fc": "#fff8e1", "ec": "#c9a227"},
        )

    ticks = [-1.0]
    labels = ["input"]
    for layer in range(L):
        ticks += [2.0 * layer, 2.0 * layer + 1]
        labels += [f"L{layer} heads", f"L{layer} MLP"]
    ticks.append(2.0 * L)
    labels.append("logits")
    ax.set_yticks(ticks, labels, fontsize=7 if L > 8 else 8)
    step = max(1, math.ceil(H / 16))
    xticks = [*range(0, H, step), H]
    ax.set_xticks(xticks, [f"h{h}" for h in xticks[:-1]] + ["MLP"], fontsize=7)
    ax.set_xlim(*_x_range(drawing))
    ax.set_ylim(-1.7, 2.0 * L + 0.7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)

    handles = legend_handles(
        colors=(e.color for e in drawing.edges), max_abs=drawing.max_abs_score,
        ports=bool(drawing.ports), marker_size=8,
    )  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def circuit_figure(
    graph: Graph,
    *,
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> Figure:
    """The circuit drawn by :func:`draw_circuit`, as a figure (not saved)."""
    with figure_style():
        drawing = circuit_drawing(graph, title=title, max_edges=max_edges, supernodes=supernodes)
        return _render_circuit(drawing)


def draw_circuit(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_edges: int | None = None,
    supernodes: list[tuple[str, list[str]]] | None = None,
) -> list[Path]:
    """Draw the circuit (edges with ``in_graph`` set) to ``path`` as PNG and SVG.

    Layout follows the model: ``input`` at the bottom, then per layer a row of heads (head
    ``h`` in column ``h``) with the layer's MLP in a row above it, ``logits`` on top; edges run
    upwards from the upstream node to the node reading the port (on grouped-query models, to a
    small diamond for the shared k/v port, joined to the query heads that read it), bending
    aside around the nodes their straight line would cross (:func:`edge_bends`). Only nodes
    on drawn edges (plus input and logits) are drawn; the rest of the grid is faint dots.
    Line style tells the port kind (q, k, v, MLP input, logits), colour the sign of the score,
    width its magnitude; legends say which is which. With ``max_edges``, a larger circuit is
    cut to its top ``max_edges`` edges by ``|score|`` and the title says so. An empty circuit
    gives a figure with an "empty circuit" note. ``supernodes`` (``(name, node names)``) are
    drawn as labelled boxes. Returns ``[png_path, svg_path]``.
    """
    return save_and_close(
        lambda: circuit_figure(graph, title=title, max_edges=max_edges, supernodes=supernodes),
        path,
    )


# --------------------------------------------------------------------------- faithfulness
@dataclass
class FaithfulnessPlotData:
    """The points :func:`faithfulness_figure` draws; sizes ``<= 0`` (not drawable on the log
    axis) are left out and counted in ``n_dropped``."""

    n_edges: list[int]
    f: list[float]
    random_n_edges: list[int] | None
    random_f: list[float] | None
    minimal: tuple[int, float] | None
    minimal_reached: bool | None
    evaluations: list[tuple[int, float]]
    target: tuple[float, float] | None
    cpr: float
    cmd: float
    cpr_log: float
    cmd_log: float
    n_dropped: int


def faithfulness_plot_data(curve: Any, minimal: Any | None = None) -> FaithfulnessPlotData:
    """What :func:`plot_faithfulness_curve` draws for a ``FaithfulnessCurve`` and an optional
    ``MinimalCircuit``."""
    dropped = 0

    def positive(xs, ys) -> tuple[list[int], list[float]]:
        nonlocal dropped
        keep = [(int(x), float(y)) for x, y in zip(xs, ys, strict=True) if x > 0]
        dropped += len(xs) - len(keep)
        return [x for x, _ in keep], [y for _, y in keep]

    n_edges, f = positive(list(curve.n_edges), list(curve.f))
    random_n = random_f = None
    if curve.random_f is not None:
        random_n, random_f = positive(list(curve.n_edges), list(curve.random_f))
    star = reached = target = None
    evaluations: list[tuple[int, float]] = []
    if minimal is not None:
        target = (float(minimal.target[0]), float(minimal.target[1]))
        reached = bool(minimal.reached)
        if minimal.n_edges > 0:
            star = (int(minimal.n_edges), float(minimal.f))
        else:
            dropped += 1
        ev_n, ev_f = positive(
            [e.n_edges for e in minimal.evaluations], [e.f for e in minimal.evaluations]
        )
        evaluations = list(zip(ev_n, ev_f, strict=True))
    return FaithfulnessPlotData(
        n_edges=n_edges,
        f=f,
        random_n_edges=random_n,
        random_f=random_f,
        minimal=star,
        minimal_reached=reached,
        evaluations=evaluations,
        target=target,
        cpr=float(curve.cpr),
        cmd=float(curve.cmd),
        cpr_log=float(curve.cpr_log),
        cmd_log=float(curve.cmd_log),
        n_dropped=dropped,
    )


def faithfulness_figure(
    curve: Any,
    *,
    minimal: Any | None = None,
    title: str | None = None,
    curve_split: str = "test",
    search_split: str = "train",
) -> Figure:
    """The plot of :func:`plot_faithfulness_curve`, as a figure (not saved)."""
    data = faithfulness_plot_data(curve, minimal)
    with figure_style():
        fig = new_figure((7.5, 4.8))
        ax = fig.add_subplot()
        ax.set_xscale("log")
        if data.evaluations:
            ex, ey = zip(*data.evaluations, strict=True)
            ax.scatter(
                ex,
                ey,
                s=12,
                color="#9a9a9a",
                zorder=2,
                gid="search-evaluations",
                label=f"search evaluations ({len(data.evaluations)}), {search_split} split",
            )
        if data.random_f is not None and data.random_n_edges:
            ax.plot(
                data.random_n_edges,
                data.random_f,
                ls="--",
                marker=".",
                color="#7f7f7f",
                zorder=3,
                gid="random-baseline",
                label=f"random circuits, same size (mean), {curve_split} split",
            )
        ax.plot(
            data.n_edges,
            data.f,
            marker="o",
            ms=4,
            color=POSITIVE,
            zorder=4,
            gid="faithfulness-curve",
            label=f"top edges by |score|, {curve_split} split\n"
            f"CPR {data.cpr:.3f}, CMD {data.cmd:.3f} (MIB's, linear edge fraction)\n"
            f"CPR_log {data.cpr_log:.3f}, CMD_log {data.cmd_log:.3f} (log10 edge fraction)",
        )
        ax.axhline(1.0, color="#333333", lw=0.8, ls=":", zorder=1, gid="f-equals-1")
        ax.axhline(0.0, color="#bbbbbb", lw=0.6, zorder=1)
        if data.target is not None:
            lo, hi = data.target
            ax.axhline(
                lo,
                color="#2a9d8f",
                lw=1.0,
                ls="-.",
                zorder=1,
                gid="target",
                label=f"target f ≥ {lo:g}" if math.isinf(hi) else f"target {lo:g} ≤ f ≤ {hi:g}",
            )
            if math.isfinite(hi):
                ax.axhline(hi, color="#2a9d8f", lw=1.0, ls="-.", zorder=1, gid="target-high")
        if data.minimal is not None:
            n, f = data.minimal
            status = "" if data.minimal_reached else " (target not reached)"
            ax.plot(
                [n],
                [f],
                marker="*",
                ms=16,
                color="#e9c46a",
                mec="#6b4e00",
                ls="none",
                zorder=5,
                gid="minimal-circuit",
                label=f"minimal circuit: {n} edges, f = {f:.3f} on {search_split}{status}",
            )
        if not data.n_edges and data.minimal is None and not data.evaluations:
            ax.text(
                0.5,
                0.5,
                "no circuit sizes > 0 to plot",
                transform=ax.transAxes,
                ha="center",
                va="center",
                gid="empty-note",
            )
            ax.set_xlim(1, 10)
        xlabel = "circuit size (edges, log scale)"
        if data.n_dropped:
            xlabel += f"; {data.n_dropped} point(s) with 0 edges not shown"
        ax.set_xlabel(xlabel)
        ax.set_ylabel("faithfulness f")
        ax.set_title(
            title or f"Faithfulness vs circuit size (CPR {data.cpr:.3f} ↑, CMD {data.cmd:.3f} ↓)",
            fontsize=11,
        )
        ax.grid(True, which="major", color="#eeeeee", lw=0.6)
        ax.legend(fontsize=8, loc="best")
        return fig


def plot_faithfulness_curve(
    curve: Any,
    path: str | os.PathLike[str],
    *,
    minimal: Any | None = None,
    title: str | None = None,
    curve_split: str = "test",
    search_split: str = "train",
) -> list[Path]:
    """Plot f against circuit size (``curve``: a :class:`circuits.FaithfulnessCurve`) to
    ``path`` as PNG and SVG.

    The x axis (number of edges) is always logarithmic, since MIB-style sizes span three orders
    of magnitude; the legend gives MIB's CPR/CMD (areas over the linear edge fraction) and
    CPR_log/CMD_log (over its log10), the title MIB's pair. Points with 0 edges cannot sit
    on a log axis and are left out (the x label counts them). Drawn: the curve (markers and line), the random-circuit baseline (dashed) when
    ``curve.random_f`` is set, a dotted line at f = 1, and with ``minimal`` (a
    :class:`circuits.MinimalCircuit`) its target, its search evaluations as small grey points
    and the minimal circuit itself as a star. CPR and CMD are in the title and legend. The
    legend names the split of each: ``curve_split`` for the curve and the random baseline,
    ``search_split`` for the search (``circuits discover`` searches on train and draws the
    curve on test). Returns ``[png_path, svg_path]``.
    """
    return save_and_close(
        lambda: faithfulness_figure(
            curve, minimal=minimal, title=title, curve_split=curve_split, search_split=search_split
        ),
        path,
    )


# --------------------------------------------------------------------------- scores
@dataclass
class ScoreHistogram:
    """Histogram of edge scores: ``bin_edges`` (``bins + 1``), counts of all real edges and of
    in-circuit edges over the same bins; non-finite scores are counted in ``n_nonfinite``
    and not binned."""

    bin_edges: np.ndarray
    counts: np.ndarray
    circuit_counts: np.ndarray
    n_edges: int
    n_circuit: int
    n_nonfinite: int


def score_histogram_data(graph: Graph, *, bins: int = 60) -> ScoreHistogram:
    """Bin the scores of all real edges and, over the same bins, of the in-circuit edges."""
    if bins < 1:
        raise FigureError(f"bins must be >= 1, got {bins}")
    scores = graph.scores[graph.real_edges].to(torch.float64).numpy()
    in_circuit = graph.in_graph[graph.real_edges].numpy()
    finite = np.isfinite(scores)
    values = scores[finite]
    if len(values):
        bin_edges = np.histogram_bin_edges(values, bins=bins)
    else:
        bin_edges = np.linspace(-1.0, 1.0, bins + 1)
    counts, _ = np.histogram(values, bins=bin_edges)
    circuit_counts, _ = np.histogram(scores[finite & in_circuit], bins=bin_edges)
    return ScoreHistogram(
        bin_edges=bin_edges,
        counts=counts,
        circuit_counts=circuit_counts,
        n_edges=int(finite.sum()),
        n_circuit=int((finite & in_circuit).sum()),
        n_nonfinite=int((~finite).sum()),
    )


def score_histogram_figure(graph: Graph, *, title: str | None = None, bins: int = 60) -> Figure:
    """The histogram of :func:`plot_score_histogram`, as a figure (not saved)."""
    data = score_histogram_data(graph, bins=bins)
    with figure_style():
        fig = new_figure((7.5, 4.5))
        ax = fig.add_subplot()
        left = data.bin_edges[:-1]
        ax.hist(
            left,
            bins=data.bin_edges,
            weights=data.counts,
            log=True,
            histtype="stepfilled",
            color="#9ecae1",
            edgecolor="#4a90c2",
            linewidth=0.6,
            gid="hist-all",
            label=f"all edges ({data.n_edges})",
        )
        if data.n_circuit:
            ax.hist(
                left,
                bins=data.bin_edges,
                weights=data.circuit_counts,
                log=True,
                histtype="stepfilled",
                color="#e76f51",
                alpha=0.85,
                gid="hist-circuit",
                label=f"in circuit ({data.n_circuit})",
            )
        else:
            ax.plot([], [], ls="none", label="no edges in circuit")
        ax.axvline(0.0, color="#555555", lw=0.6, ls=":")
        if data.n_edges == 0 or not data.counts.any():
            ax.text(
                0.5,
                0.5,
                "no finite scores",
                transform=ax.transAxes,
                ha="center",
                va="center",
                gid="empty-note",
            )
        xlabel = "edge score = m(patched) − m(clean)"
        if data.n_nonfinite:
            xlabel += f"  ({data.n_nonfinite} non-finite not shown)"
        ax.set_xlabel(xlabel)
        ax.set_ylabel("edges (log scale)")
        ax.set_title(title or f"Edge scores of {model_label(graph)}", fontsize=11)
        ax.legend(fontsize=8)
        return fig


def plot_score_histogram(
    graph: Graph, path: str | os.PathLike[str], *, title: str | None = None, bins: int = 60
) -> list[Path]:
    """Histogram of the scores of all real edges, with the in-circuit edges' scores overlaid in
    another colour (over the same bins), on a log-scaled count axis, written to ``path`` as
    PNG and SVG. Scores follow the graph's sign convention, score = m(patched) − m(clean).
    Returns ``[png_path, svg_path]``."""
    return save_and_close(lambda: score_histogram_figure(graph, title=title, bins=bins), path)
