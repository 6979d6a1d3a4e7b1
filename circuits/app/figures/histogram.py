"""The score histogram: every real edge's score, the circuit's overlaid."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from circuits.app.figures.style import model_label
from circuits.plotting import FigureError, figure_style, new_figure, save_and_close
from graphs.graph import Graph

__all__ = [
    "ScoreHistogram",
    "plot_score_histogram",
    "score_histogram_data",
    "score_histogram_figure",
]


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
