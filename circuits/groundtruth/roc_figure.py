"""The benchmark's figure: ROC curves of every method on every compiled model."""

from __future__ import annotations

import math
import os
from pathlib import Path

from circuits.plotting import new_figure, save_figure

__all__ = ["draw_roc_curves"]


def draw_roc_curves(
    curves: dict[str, dict[str, tuple[list, list]]], path: str | os.PathLike
) -> list[Path]:
    """One panel per model (``curves[model][method] = (fpr, tpr)``), one line per method;
    writes ``path`` as PNG and SVG (:func:`circuits.figures.save_figure`) and returns both."""
    models = list(curves)
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    fig = new_figure((3.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models, strict=False):
        ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls=":")
        for method, (fpr, tpr) in curves[model].items():
            ax.plot(fpr, tpr, lw=1.4, label=method, drawstyle="default")
        ax.set_title(model, fontsize=9)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("false-positive rate", fontsize=8)
        ax.set_ylabel("true-positive rate", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Edge ROC against the compiled ground truth (|score|)", fontsize=10)
    try:
        return save_figure(fig, path)
    finally:
        fig.clear()
