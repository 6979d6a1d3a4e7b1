"""Scanning sites for one variable: train an intervention at every layer × position and
tabulate held-out IIA (the Boundless DAS paper's layer × position heatmaps)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from circuits.alignment.data import CounterfactualPairs
from circuits.alignment.interventions import Intervention
from circuits.alignment.sites import Site, validate_site
from circuits.alignment.train import TrainConfig, evaluate, train_intervention

__all__ = ["SearchResult", "scan"]


@dataclass
class SearchResult:
    """``table[i, j]``: held-out IIA at ``layers[i]`` × ``positions[j]``.

    ``details[(layer, position)]`` holds the full :func:`~circuits.alignment.train.evaluate`
    dict plus ``k`` (subspace dimension found) and ``steps``; ``interventions`` the trained
    modules."""

    variable: str
    hook: str
    layers: list[int]
    positions: list[Any]
    table: torch.Tensor
    details: dict[tuple[int, Any], dict[str, float]] = field(default_factory=dict)
    interventions: dict[tuple[int, Any], Intervention] = field(default_factory=dict, repr=False)
    metric: str = "iia"

    def best(self) -> tuple[Site, float]:
        """The site with the highest IIA (the earliest layer/position on ties)."""
        flat = int(torch.argmax(self.table))
        i, j = divmod(flat, len(self.positions))
        return self.site(self.layers[i], self.positions[j]), float(self.table[i, j])

    def site(self, layer: int, position: Any) -> Site:
        return Site(self.hook.format(layer=layer), position)

    def to_markdown(self, digits: int = 2) -> str:
        """The table as Markdown: one row per layer, one column per position."""
        head = "| layer | " + " | ".join(str(p) for p in self.positions) + " |"
        rule = "|---|" + "---|" * len(self.positions)
        rows = [
            f"| {layer} | " + " | ".join(f"{float(v):.{digits}f}" for v in self.table[i]) + " |"
            for i, layer in enumerate(self.layers)
        ]
        return "\n".join([head, rule, *rows])

    def heatmap(self, path: str | os.PathLike[str], *, title: str | None = None) -> list[Path]:
        """Write the table as a heatmap (``path`` ``.png`` and ``.svg``)."""
        from circuits.plotting import draw_heatmap, figure_style, new_figure, save_and_close

        def build():
            with figure_style():
                fig = new_figure((1.2 + 0.9 * len(self.positions), 1.0 + 0.55 * len(self.layers)))
                ax = fig.add_subplot(1, 1, 1)
                image = draw_heatmap(ax, self.table.numpy())
                ax.set_xticks(range(len(self.positions)), [str(p) for p in self.positions])
                ax.set_yticks(range(len(self.layers)), [str(layer) for layer in self.layers])
                ax.set_xlabel("position")
                ax.set_ylabel(self.hook.replace("{layer}", "ℓ"))
                ax.set_title(title or f"{self.metric} for {self.variable}")
                fig.colorbar(image, ax=ax, fraction=0.05)
            return fig

        return save_and_close(build, path)


def scan(
    model: Any,
    make_intervention: Callable[[int], Intervention],
    train_pairs: CounterfactualPairs,
    eval_pairs: CounterfactualPairs,
    *,
    layers: Sequence[int],
    positions: Sequence[Any],
    hook: str = "blocks.{layer}.hook_resid_pre",
    test_pairs: CounterfactualPairs | None = None,
    config: TrainConfig | None = None,
    metric: str = "iia",
    variable: str | None = None,
) -> SearchResult:
    """Train ``make_intervention(hidden size)`` at every ``hook.format(layer=l)`` × position,
    early-stopping on ``eval_pairs``, and report ``metric`` (a key of
    :func:`~circuits.alignment.train.evaluate`'s dict, e.g. ``"iia"`` or
    ``"iia_informative"``) on ``test_pairs`` (default ``eval_pairs``)."""
    config = config or TrainConfig()
    test_pairs = test_pairs if test_pairs is not None else eval_pairs
    # check every site before training any
    sites = {
        (layer, pos): Site(hook.format(layer=layer), pos) for layer in layers for pos in positions
    }
    for site in sites.values():
        validate_site(model, site)
    table = torch.zeros(len(layers), len(positions))
    result = SearchResult(
        variable=variable or "+".join(train_pairs.variables) or "variable",
        hook=hook,
        layers=list(layers),
        positions=list(positions),
        table=table,
        metric=metric,
    )
    for i, layer in enumerate(layers):
        for j, pos in enumerate(positions):
            site = sites[(layer, pos)]
            intervention = make_intervention(validate_site(model, site))
            trained = train_intervention(
                model, site, intervention, train_pairs, eval_pairs,
                config=replace(config, progress=config.progress),
            )  # fmt: skip
            scores = evaluate(
                model, site, trained.intervention, test_pairs, candidates=config.candidates
            )
            scores["k"] = float(trained.intervention.k)
            scores["steps"] = float(trained.steps)
            table[i, j] = scores[metric]
            result.details[(layer, pos)] = scores
            result.interventions[(layer, pos)] = trained.intervention
    return result
