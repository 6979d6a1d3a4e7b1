"""The look every figure of a run shares: colours, port line styles, node markers, svg ids,
the model's name in a title and the circuit figures' legend."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from matplotlib.lines import Line2D

from graphs.graph import Graph

__all__ = [
    "EMPTY_NOTE",
    "NEGATIVE",
    "NODE_STYLES",
    "PORT_LABELS",
    "PORT_MARKER",
    "PORT_STYLES",
    "POSITIVE",
    "ZERO",
    "edge_look",
    "legend_handles",
    "model_label",
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

POSITIVE = "#2166ac"
NEGATIVE = "#b2182b"
ZERO = "#888888"
NODE_STYLES = {  # node kind -> (marker, face colour, legend label)
    "attention": ("o", "#f4a261", "attention head"),
    "mlp": ("s", "#2a9d8f", "MLP"),
    "input": ("D", "#555555", "input / logits"),
    "logits": ("D", "#555555", "input / logits"),
}
PORT_MARKER = ("d", "#ffffff", "shared k/v port (grouped-query)")


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
        marker, face, label = PORT_MARKER
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
