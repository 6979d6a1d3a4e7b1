"""Figures of a circuit-discovery run: the circuit, the faithfulness curve, the score histogram.

One module per figure kind: :mod:`~circuits.app.figures.circuit` (the circuit, drawn in the
shape of its graph, :mod:`~circuits.app.figures.shapes`: the model's layer grid, or a column per
span of a position-aware graph), :mod:`~circuits.app.figures.curve` (faithfulness against
circuit size), :mod:`~circuits.app.figures.histogram` (edge scores); what they share is
:mod:`~circuits.app.figures.style` (colours, line styles, svg ids, legend) and
:mod:`~circuits.app.figures.routes` (how every circuit picture, the browser explorer's too,
bends an edge).

Each ``draw_*``/``plot_*`` function but :func:`draw_position_circuit` writes the figure twice, as
``<path>.png`` and ``<path>.svg`` (the suffix of ``path`` is replaced), creating missing parent
folders, and returns both paths; :func:`draw_position_circuit` writes the one format its
suffix names. Files are written atomically (:func:`graphs.atomic_files.atomic_write`), so a
reader never sees half a file.

No graphviz (or any other system program) is needed: the circuit's layout is computed here from
the model's layer grid and drawn with matplotlib. Figure creation, style and saving (Agg canvas,
no pyplot, font-independent and reproducible SVG) are :mod:`circuits.plotting`'s;
``DPI`` and ``save_figure`` are re-exported here for older callers.

Every drawn element that a test or a script may want to find carries a ``gid`` (the ``id`` of
its ``<g>`` in the SVG), see :func:`svg_id`: ``edge-<edge>``, ``node-<node>``, ``port-<port>``
(shared key/value ports of grouped-query models), ``empty-note``, ``minimal-circuit``,
``hist-all``, ``hist-circuit``; the span columns' are in :mod:`~circuits.app.figures.circuit`.

The ``*_figure`` functions return the figure without saving it, and :func:`circuit_drawing`,
:func:`faithfulness_plot_data` and :func:`score_histogram_data` compute what is drawn without
drawing, for inspection and tests.
"""

from circuits.app.figures.circuit import (
    AttentionLink,
    CircuitDrawing,
    DrawnEdge,
    DrawnNode,
    DrawnPort,
    PositionCircuitDrawing,
    circuit_drawing,
    circuit_figure,
    draw_circuit,
    draw_position_circuit,
    edges_to_draw,
    position_circuit_drawing,
    position_circuit_figure,
    route_edges,
)
from circuits.app.figures.curve import (
    FaithfulnessPlotData,
    faithfulness_figure,
    faithfulness_plot_data,
    plot_faithfulness_curve,
)
from circuits.app.figures.histogram import (
    ScoreHistogram,
    plot_score_histogram,
    score_histogram_data,
    score_histogram_figure,
)
from circuits.app.figures.routes import (
    CLEARANCE,
    bezier_path,
    control_point,
    nodes_crossed,
    route_offsets,
)
from circuits.app.figures.shapes import (
    ROUTE_STEP,
    SHAPES,
    CircuitShape,
    LayerGrid,
    SpanColumns,
    edge_bends,
    node_xy,
    port_xy,
)
from circuits.app.figures.style import (
    EMPTY_NOTE,
    NEGATIVE,
    NODE_STYLES,
    PORT_LABELS,
    PORT_STYLES,
    POSITIVE,
    ZERO,
    edge_look,
    legend_handles,
    model_label,
    svg_id,
)
from circuits.plotting import DPI, FigureError, save_figure

__all__ = [
    "CLEARANCE",
    "DPI",
    "EMPTY_NOTE",
    "NEGATIVE",
    "NODE_STYLES",
    "PORT_LABELS",
    "PORT_STYLES",
    "POSITIVE",
    "ROUTE_STEP",
    "SHAPES",
    "ZERO",
    "AttentionLink",
    "CircuitDrawing",
    "CircuitShape",
    "DrawnEdge",
    "DrawnNode",
    "DrawnPort",
    "FaithfulnessPlotData",
    "FigureError",
    "LayerGrid",
    "PositionCircuitDrawing",
    "ScoreHistogram",
    "SpanColumns",
    "bezier_path",
    "circuit_drawing",
    "circuit_figure",
    "control_point",
    "draw_circuit",
    "draw_position_circuit",
    "edge_bends",
    "edge_look",
    "edges_to_draw",
    "faithfulness_figure",
    "faithfulness_plot_data",
    "legend_handles",
    "model_label",
    "node_xy",
    "nodes_crossed",
    "plot_faithfulness_curve",
    "plot_score_histogram",
    "port_xy",
    "position_circuit_drawing",
    "position_circuit_figure",
    "route_edges",
    "route_offsets",
    "save_figure",
    "score_histogram_data",
    "score_histogram_figure",
    "svg_id",
]
