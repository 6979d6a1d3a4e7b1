"""Figure plumbing shared by every package that draws: creation, style, saving.

Figures are plain :class:`matplotlib.figure.Figure` objects with an Agg canvas, never
registered with pyplot, so no GUI backend is touched and nothing is left open. Text uses
matplotlib's bundled DejaVu Sans and SVG files store glyphs as paths (``svg.fonttype =
"path"``, set locally by :func:`figure_style`), so they render the same on machines without any fonts;
the SVG carries no date and fixed ids (``svg.hashsalt``), so the same input gives the same
file. :func:`save_figure` writes ``<path>.png`` and ``<path>.svg`` atomically
(:func:`graphs.atomic_files.atomic_write`), so a reader never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from graphs.atomic_files import atomic_write
from graphs.errors import CircuitDiscoveryError

__all__ = [
    "DPI",
    "FigureError",
    "draw_heatmap",
    "new_figure",
    "output_paths",
    "save_and_close",
    "save_figure",
    "figure_style",
    "write_figure",
]

DPI = 150


class FigureError(CircuitDiscoveryError, ValueError):
    """A figure that cannot be drawn as asked (a bad ``max_edges``, ``bins`` or file suffix)."""


# Local rc settings that make SVG output byte-for-byte reproducible and font-independent.
_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "circuit-discovery",
    "font.family": "DejaVu Sans",
    "axes.unicode_minus": True,
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The project's rc settings, for building and saving a figure (global rc untouched)."""
    with matplotlib.rc_context(_RC):
        yield


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout figure at :data:`DPI` with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=6 / 72, h_pad=6 / 72)
    FigureCanvasAgg(fig)
    return fig


def output_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``path`` with its suffix replaced by ``.png`` and by ``.svg``."""
    path = Path(path)
    return path.with_suffix(".png"), path.with_suffix(".svg")


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> list[Path]:
    """Write ``fig`` to ``path.with_suffix('.png')`` and ``.svg`` atomically (parent folders are
    created) and return both paths. The figure keeps its size: PNG pixels are
    ``figsize * 150`` dpi."""
    paths = output_paths(path)
    for out in paths:
        write_figure(fig, out)
    return list(paths)


def write_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically in the format its suffix names (``.png``, ``.svg``,
    ``.pdf``; an SVG without a date, so it is reproducible), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lower()[1:]
    with figure_style(), atomic_write(path) as handle:
        fig.savefig(handle, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return path


def save_and_close(build: Callable[[], Figure], path: str | os.PathLike[str]) -> list[Path]:
    """Build a figure, save it with :func:`save_figure` and free it; returns both paths."""
    fig = build()
    try:
        return save_figure(fig, path)
    finally:
        fig.clear()  # a bare Figure is not held by pyplot; clearing frees its artists now


def draw_heatmap(ax: Any, values: np.ndarray, *, origin: str = "upper", fontsize: float = 8) -> Any:
    """``values`` (``[rows, cols]`` in ``[0, 1]``) as a viridis image on ``ax``, each cell's value
    written in it (black on light cells, white on dark); returns the image for a colorbar."""
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", origin=origin, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = float(values[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="black" if v > 0.6 else "white")  # fmt: skip
    return image
