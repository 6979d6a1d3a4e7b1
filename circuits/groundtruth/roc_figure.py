"""The benchmark's figure: ROC curves of every method on every compiled model.

On the compiled models most methods find the ground truth exactly, so their curves coincide
(all along the left and top sides). Every curve stays visible all the same: the methods are
drawn in order, each narrower than the one before and on top of it, so a curve that another
covers still shows as a wider band around it; each method has its own line style and marker;
and a panel where curves coincide says which ones do.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from textwrap import fill

from matplotlib.axes import Axes

from circuits.plotting import new_figure, save_figure

__all__ = ["coinciding", "draw_roc_curves"]

_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_MARKERS = ("o", "s", "^", "D", "v", "P")


def coinciding(curves: dict[str, tuple[list, list]]) -> list[list[str]]:
    """Groups (two or more, in ``curves``' order) of methods whose ROC points are equal."""
    groups: dict[tuple, list[str]] = {}
    for method, (fpr, tpr) in curves.items():
        key = (tuple(round(float(x), 9) for x in fpr), tuple(round(float(y), 9) for y in tpr))
        groups.setdefault(key, []).append(method)
    return [names for names in groups.values() if len(names) > 1]


def _panel(ax: Axes, model: str, curves: dict[str, tuple[list, list]]) -> None:
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls=":")
    n = len(curves)
    step = min(0.9, 4.0 / max(n - 1, 1))  # the widest band at most 5 pt
    for i, (method, (fpr, tpr)) in enumerate(curves.items()):
        ax.plot(
            fpr, tpr, lw=1.0 + step * (n - 1 - i), ls=_STYLES[i % len(_STYLES)],
            marker=_MARKERS[i % len(_MARKERS)], ms=3 + step * (n - 1 - i),
            markevery=max(1, len(fpr) // 6), zorder=2 + i, label=method,
            gid=f"roc-{model}-{method}",
        )  # fmt: skip
    same = coinciding(curves)
    if same:
        ax.text(
            0.97, 0.06, "same curve:\n" + "\n".join(fill(" = ".join(g), 34, break_on_hyphens=False) for g in same),
            transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="#444444",
            zorder=20, gid=f"roc-same-{model}",
            bbox={"boxstyle": "round,pad=0.3", "fc": "#ffffff", "ec": "#cccccc", "alpha": 0.9},
        )  # fmt: skip
    ax.set_title(model, fontsize=9)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false-positive rate", fontsize=8)
    ax.set_ylabel("true-positive rate", fontsize=8)
    ax.tick_params(labelsize=7)


def draw_roc_curves(
    curves: dict[str, dict[str, tuple[list, list]]], path: str | os.PathLike
) -> list[Path]:
    """One panel per model (``curves[model][method] = (fpr, tpr)``), one line per method
    (module docstring: how coinciding curves stay visible); writes ``path`` as PNG and SVG
    (:func:`circuits.plotting.save_figure`) and returns both."""
    models = list(curves)
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    fig = new_figure((3.2 * cols, 3.0 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models, strict=False):
        _panel(ax, model, curves[model])
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=7)
    fig.suptitle("Edge ROC against the compiled ground truth (|score|)", fontsize=10)
    try:
        return save_figure(fig, path)
    finally:
        fig.clear()
