"""The faithfulness curve: f against circuit size, with the random baseline and the minimal
circuit's search."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from circuits.app.figures.style import POSITIVE
from circuits.plotting import figure_style, new_figure, save_and_close

__all__ = [
    "FaithfulnessPlotData",
    "faithfulness_figure",
    "faithfulness_plot_data",
    "plot_faithfulness_curve",
]


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


def _plot_sizes(ax: Axes, data: FaithfulnessPlotData, curve_split: str, search_split: str) -> None:
    """The search's evaluations, the random baseline and the curve itself."""
    if data.evaluations:
        ex, ey = zip(*data.evaluations, strict=True)
        ax.scatter(
            ex, ey, s=12, color="#9a9a9a", zorder=2, gid="search-evaluations",
            label=f"search evaluations ({len(data.evaluations)}), {search_split} split",
        )  # fmt: skip
    if data.random_f is not None and data.random_n_edges:
        ax.plot(
            data.random_n_edges, data.random_f, ls="--", marker=".", color="#7f7f7f", zorder=3,
            gid="random-baseline", label=f"random circuits, same size (mean), {curve_split} split",
        )  # fmt: skip
    ax.plot(
        data.n_edges, data.f, marker="o", ms=4, color=POSITIVE, zorder=4, gid="faithfulness-curve",
        label=f"top edges by |score|, {curve_split} split\n"
        f"CPR {data.cpr:.3f}, CMD {data.cmd:.3f} (MIB's, linear edge fraction)\n"
        f"CPR_log {data.cpr_log:.3f}, CMD_log {data.cmd_log:.3f} (log10 edge fraction)",
    )  # fmt: skip


def _plot_marks(ax: Axes, data: FaithfulnessPlotData, search_split: str) -> None:
    """The lines at f = 1 and f = 0, the search's target and the minimal circuit's star."""
    ax.axhline(1.0, color="#333333", lw=0.8, ls=":", zorder=1, gid="f-equals-1")
    ax.axhline(0.0, color="#bbbbbb", lw=0.6, zorder=1)
    if data.target is not None:
        lo, hi = data.target
        ax.axhline(
            lo, color="#2a9d8f", lw=1.0, ls="-.", zorder=1, gid="target",
            label=f"target f ≥ {lo:g}" if math.isinf(hi) else f"target {lo:g} ≤ f ≤ {hi:g}",
        )  # fmt: skip
        if math.isfinite(hi):
            ax.axhline(hi, color="#2a9d8f", lw=1.0, ls="-.", zorder=1, gid="target-high")
    if data.minimal is not None:
        n, f = data.minimal
        status = "" if data.minimal_reached else " (target not reached)"
        ax.plot(
            [n], [f], marker="*", ms=16, color="#e9c46a", mec="#6b4e00", ls="none", zorder=5,
            gid="minimal-circuit",
            label=f"minimal circuit: {n} edges, f = {f:.3f} on {search_split}{status}",
        )  # fmt: skip


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
        _plot_sizes(ax, data, curve_split, search_split)
        _plot_marks(ax, data, search_split)
        if not data.n_edges and data.minimal is None and not data.evaluations:
            ax.text(0.5, 0.5, "no circuit sizes > 0 to plot", transform=ax.transAxes,
                    ha="center", va="center", gid="empty-note")  # fmt: skip
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
