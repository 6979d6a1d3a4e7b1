"""Filling a graph from edge records read out of a file, with the checks every format needs.

GraphML (through networkx) and JSON both store one record per edge. :class:`EdgeCollector`
turns those records into the dense score/flag tensors and reports, in one place and with the
same wording, edges the model does not have, duplicates, and (for files that promise every
edge) edges that are missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from graphs.errors import GraphFormatError, UnknownEdgeError
from graphs.graph import Graph

# Strings that stand for the non-finite scores JSON cannot write as numbers.
_SPECIAL_SCORES = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def parse_score(value: Any, label: str) -> float:
    """A stored score as a float; ``None`` (JSON ``null``) is NaN, ``"inf"``/``"-inf"`` are
    infinities."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in _SPECIAL_SCORES:
        return _SPECIAL_SCORES[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise GraphFormatError(
        f'{label} has score {value!r}; a score is a number, null (NaN), "inf" or "-inf"'
    )


def parse_flag(value: Any, label: str, field: str = "in_graph") -> bool:
    """A stored boolean; integers and strings are refused so a typo cannot flip membership."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_, from graphs built with numpy data
        return bool(value)
    raise GraphFormatError(f"{label} has {field}={value!r}; expected true or false")


class EdgeCollector:
    """Collect ``(source, target, score, in_graph)`` records, then write them into ``graph``.

    Each record carries a ``label`` (``"edge 17 ('input->a0.h1<q>')"``) used in messages.
    With ``positions`` (span names) every record also carries its per-span scores, and with
    ``position_circuit`` its per-span circuit flags; :meth:`finish` then checks that each
    ``score`` is their sum and each ``in_graph`` their union (with ``scores_from_positions``,
    for formats that store only the per-span scores, the records' ``score`` is not read and
    the sum is used).
    """

    def __init__(
        self,
        graph: Graph,
        positions: Sequence[str] | None = None,
        *,
        position_circuit: bool = False,
        scores_from_positions: bool = False,
    ):
        self.graph = graph
        self.scores_from_positions = scores_from_positions and positions is not None
        self.positions = None if positions is None else tuple(positions)
        self.position_circuit = position_circuit and positions is not None
        self._ups: list[int] = []
        self._ports: list[int] = []
        self._scores: list[float] = []
        self._flags: list[bool] = []
        self._labels: list[str] = []
        self._span_scores: list[list[float]] = []
        self._span_flags: list[list[bool]] = []

    def add(
        self,
        label: str,
        source: Any,
        target: Any,
        score: Any,
        in_graph: Any,
        *,
        position_scores: Sequence[Any] | None = None,
        position_flags: Sequence[Any] | None = None,
    ) -> None:
        layout = self.graph.layout
        up = layout.node_by_name.get(source) if isinstance(source, str) else None
        port = layout.port_by_name.get(target) if isinstance(target, str) else None
        if up is None or up.forward_index < 0 or port is None:
            self._unknown(label, source, target)
        if self.positions is not None:
            n = len(self.positions)
            if not isinstance(position_scores, (list, tuple)) or len(position_scores) != n:
                got = (
                    f"{len(position_scores)} position scores"
                    if isinstance(position_scores, (list, tuple))
                    else f"position scores {position_scores!r}"
                )
                raise GraphFormatError(
                    f"{label} has {got}; the graph has {n} spans, so each edge needs a list of {n}"
                )
            self._span_scores.append([parse_score(v, label) for v in position_scores])
            if self.position_circuit:
                if position_flags is None or len(position_flags) != n:
                    raise GraphFormatError(
                        f"{label} lacks its per-span circuit flags; the graph holds a "
                        "position-aware circuit, so every edge says at which spans it is kept"
                    )
                self._span_flags.append([parse_flag(f, label) for f in position_flags])
        self._ups.append(up.forward_index)
        self._ports.append(port.index)
        self._scores.append(parse_score(score, label))
        self._flags.append(parse_flag(in_graph, label))
        self._labels.append(label)

    def _unknown(self, label: str, source: Any, target: Any) -> None:
        try:  # reuse the layout's explanation of why the name is not an edge
            self.graph.layout.edge_index(f"{source}->{target}")
        except UnknownEdgeError as err:
            raise GraphFormatError(f"{label} is not an edge of this model: {err}") from None
        raise AssertionError("unreachable: edge_index accepted an unknown edge")

    def finish(self, *, complete: bool, missing_hint: str = "") -> None:
        """Write the collected records into the graph (absent edges: score 0, not in graph).

        ``complete`` files must list every edge of the model exactly once.
        """
        graph, layout = self.graph, self.graph.layout
        ups = torch.tensor(self._ups, dtype=torch.long)
        ports = torch.tensor(self._ports, dtype=torch.long)
        # Checked in bulk: a per-record tensor lookup would dominate load time on big models.
        not_real = (~graph.real_edges[ups, ports]).nonzero()
        if len(not_real):
            i = int(not_real[0])
            self._unknown(
                self._labels[i],
                layout.upstream[self._ups[i]].name,
                layout.ports[self._ports[i]].name,
            )

        flat = ups * graph.n_backward + ports
        counts = torch.bincount(flat, minlength=graph.n_forward * graph.n_backward)
        if len(flat) and int(counts.max()) > 1:
            dup = int((counts > 1).nonzero()[0])
            first, second = [
                label for label, f in zip(self._labels, flat.tolist(), strict=True) if f == dup
            ][:2]
            name = layout.edge_name(dup // graph.n_backward, dup % graph.n_backward)
            what = (
                f"{first} and {second} are both {name!r}" if first != second else f"{first} repeats"
            )
            raise GraphFormatError(f"duplicate edge: {what}; each edge may appear once")
        if complete:
            absent = (graph.real_edges.flatten() & (counts == 0)).nonzero().flatten().tolist()
            if absent:
                first = ", ".join(
                    repr(layout.edge_name(f // graph.n_backward, f % graph.n_backward))
                    for f in absent[:3]
                )
                raise GraphFormatError(
                    f"lacks {len(absent)} of the model's {graph.n_edges} edges (first: {first}"
                    f"{', ...' if len(absent) > 3 else ''}); a full graph file lists every edge"
                    f"{missing_hint}"
                )

        scores = torch.zeros(graph.n_forward, graph.n_backward, dtype=torch.float32)
        flags = torch.zeros(graph.n_forward, graph.n_backward, dtype=torch.bool)
        # float64 Python values -> float32 rounds to nearest, which restores each stored
        # float32 exactly (writers store float32 values exactly or by a verified short repr).
        scores[ups, ports] = torch.tensor(self._scores, dtype=torch.float64).to(torch.float32)
        flags[ups, ports] = torch.tensor(self._flags, dtype=torch.bool)
        if self.positions is not None:
            scores = self._finish_positions(ups, ports, scores, flags)
        graph.scores = scores
        graph.in_graph = flags

    def _finish_positions(
        self, ups: torch.Tensor, ports: torch.Tensor, scores: torch.Tensor, flags: torch.Tensor
    ) -> torch.Tensor:
        """Write the per-span records into the graph; returns the scores to keep."""
        graph, n = self.graph, len(self.positions)
        shape = (n, graph.n_forward, graph.n_backward)
        per_span = torch.zeros(shape, dtype=torch.float32)
        values = torch.tensor(self._span_scores, dtype=torch.float64).reshape(-1, n)
        per_span[:, ups, ports] = values.T.to(torch.float32)
        graph.set_position_scores(self.positions, per_span)
        summed = graph.scores
        agree = (summed == scores) | (summed.isnan() & scores.isnan())
        bad = (~agree[ups, ports]).nonzero().flatten()
        if self.scores_from_positions:
            scores = summed
        elif len(bad):
            i = int(bad[0])
            raise GraphFormatError(
                f"{self._labels[i]} has score {self._scores[i]!r}, but its position scores sum "
                f"to {float(summed[ups[i], ports[i]])!r}; the score of a position-aware edge is "
                "the sum of its per-span scores"
            )
        if self.position_circuit:
            kept = torch.zeros(shape, dtype=torch.bool)
            kept[:, ups, ports] = torch.tensor(self._span_flags, dtype=torch.bool).reshape(-1, n).T
            bad = (kept.any(0)[ups, ports] != flags[ups, ports]).nonzero().flatten()
            if len(bad):
                i = int(bad[0])
                raise GraphFormatError(
                    f"{self._labels[i]} has in_graph={self._flags[i]}, but the circuit keeps it "
                    f"at {int(kept[:, ups[i], ports[i]].sum())} spans; in_graph is true exactly "
                    "when the edge is kept at some span"
                )
            graph.position_in_graph = kept
        return scores


def span_names(names: Any, problem: str) -> tuple[str, ...]:
    """``names`` as a position axis's span names; GraphFormatError (``problem``, then what it
    must be) unless it is a non-empty list of distinct strings."""
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
    ):
        raise GraphFormatError(f"{problem}; it must be a non-empty list of distinct span names")
    return tuple(names)


def check_edge_record(label: str, data: dict, name: str) -> None:
    """GraphFormatError unless a GraphML/networkx edge record that is not a port edge is of
    kind ``edge`` and, when it carries a ``name``, is named ``name`` (its endpoints' edge)."""
    kind = data.get("kind")
    if kind != "edge":
        raise GraphFormatError(
            f"{label} has kind={kind!r}; edges are kind 'edge' (upstream -> port) or "
            "'port' (attention port -> the heads that read it)"
        )
    if "name" in data and data["name"] != name:
        raise GraphFormatError(
            f"{label} is named {data['name']!r}, which disagrees with its endpoints"
        )
