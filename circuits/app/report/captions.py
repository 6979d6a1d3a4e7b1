"""The report's figures: their order, numbers and captions. A figure is a :class:`Figure`
block naming its file; each renderer shows the file (or a "not available" note)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from circuits.app.curve_text import areas_text, recorded_areas
from circuits.app.report.doc import Block, Figure, Heading, fmt_num, section_of
from circuits.app.report.load import FIGURES, figure_names

__all__ = ["POSITION_FIGURE", "figure_blocks", "figure_order", "position_figure_blocks"]

#: The figure key (and file stem) of the position-aware circuit.
POSITION_FIGURE = "position_circuit"

_CAPTIONS = {
    "circuit": "The circuit: the kept edges between model components "
    "(inputs, attention heads, MLPs, logits).",
    "faithfulness_curve": "Faithfulness f of circuits made of the top-scoring edges, "
    "over circuit size, on the held-out (test) split, against random circuits of the same "
    "size; grey points are the search's evaluations on the train split.",
    "score_histogram": "Distribution of the edge attribution scores over all edges of the graph.",
    POSITION_FIGURE: "The position-aware circuit: one column per span, layers bottom to top; "
    "an edge is drawn in the column of the span it is kept at.",
}


def figure_order(keys: Iterable[str]) -> list[str]:
    """The figures every run has, in report order, then any other figure keys."""
    keys = list(keys)
    return [*FIGURES, *(k for k in keys if k not in FIGURES)]


def figure_blocks(
    metrics: Mapping[str, Any], keys: Iterable[str], first: int = 1, heading: bool = True
) -> list[Block]:
    """A :class:`Figure` per key, numbered from ``first``, under a "Figures" heading unless
    ``heading`` is false."""
    names = figure_names(metrics)
    blocks: list[Block] = [Heading(2, "Figures", "figures")] if heading else []
    for number, key in enumerate(keys, start=first):
        expected = names.get(key) or f"{key}.png"
        blocks.append(Figure(key, number, _caption(metrics, key), expected))
    return blocks


def position_figure_blocks(metrics: Mapping[str, Any], number: int) -> list[Block]:
    """The position-aware circuit's figure, numbered ``number``, when the run lists it."""
    figures = metrics.get("figures")
    if not isinstance(figures, Mapping) or POSITION_FIGURE not in figures:
        return []
    caption = _CAPTIONS[POSITION_FIGURE]
    return [Figure(POSITION_FIGURE, number, caption, f"{POSITION_FIGURE}.png")]


def _caption(metrics: Mapping[str, Any], key: str) -> str:
    """The figure's caption, with the circuit's size or the curve's areas where they apply."""
    caption = _CAPTIONS.get(key, key.replace("_", " ").capitalize() + ".")
    circuit = section_of(metrics, "circuit")
    if key == "circuit" and circuit.get("n_edges") is not None:
        caption += (
            f" {fmt_num(circuit.get('n_edges'))} edges, {fmt_num(circuit.get('n_nodes'))} nodes."
        )
    areas = recorded_areas(section_of(metrics, "curve")) if key == "faithfulness_curve" else {}
    if any(v is not None for v in areas.values()):
        caption += f" {areas_text(areas)}."  # the words the summary and `evaluate` use
    return caption
