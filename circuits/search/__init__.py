"""Choosing circuits and measuring them: selection rules over scored graphs (:mod:`.select`),
faithfulness of a circuit with everything else ablated (:mod:`.faithfulness`) and the search
for the smallest faithful circuit (:mod:`.minimal`). Each takes position-aware circuits
(``[n_spans, n_forward, n_backward]`` masks over ``(span, upstream, port)`` edges) too; their
public names are importable from here."""

from circuits.search.faithfulness import position_faithfulness_curve
from circuits.search.minimal import minimal_position_circuit
from circuits.search.select import (
    position_circuit,
    ranked_position_edges,
    threshold_positions,
    top_n_positions,
    top_position_edges,
)

__all__ = [
    "minimal_position_circuit",
    "position_circuit",
    "position_faithfulness_curve",
    "ranked_position_edges",
    "threshold_positions",
    "top_n_positions",
    "top_position_edges",
]
