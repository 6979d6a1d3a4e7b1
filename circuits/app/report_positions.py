"""The report's "Positions" section: the position-aware circuit of a ``--positions`` run next to
the position-agnostic one (sizes at the same target, held-out f, overlap), its edges per span,
the top position-aware edges and its figure. Reads only the ``positions`` section of
``metrics.json`` (:mod:`circuits.app.position_discovery`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circuits.app.curve_text import areas_text, recorded_areas
from circuits.app.report_doc import (
    NA,
    Block,
    Code,
    Figure,
    Heading,
    Inline,
    Paragraph,
    Table,
    fmt_num,
    fmt_pct,
    fmt_target,
    fmt_value,
    section_of,
)

__all__ = ["POSITION_FIGURE", "position_blocks"]

#: The figure key (and file stem) of the position-aware circuit.
POSITION_FIGURE = "position_circuit"


def _ci(faith: Mapping[str, Any]) -> str:
    ci = faith.get("ci")
    if isinstance(ci, list) and len(ci) == 2:
        return f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
    return NA


def _comparison_table(positions: Mapping[str, Any], metrics: Mapping[str, Any]) -> Table:
    comp = section_of(positions, "comparison")
    faith = section_of(metrics, "faithfulness")
    pfaith = section_of(positions, "faithfulness")
    circuit = section_of(metrics, "circuit")
    pcircuit = section_of(positions, "circuit")
    n_spans = positions.get("n_spans")
    rows: list[list[Inline]] = [
        [
            "position-agnostic",
            fmt_num(comp.get("agnostic_n_edges")),
            fmt_num(comp.get("agnostic_n_position_edges")),
            fmt_num(circuit.get("n_nodes")),
            fmt_num(comp.get("agnostic_f_search")),
            fmt_num(comp.get("agnostic_f")),
            _ci(faith),
        ],
        [
            "position-aware",
            fmt_num(comp.get("aware_n_edges_projected")),
            fmt_num(comp.get("aware_n_edges")),
            fmt_num(pcircuit.get("n_nodes")),
            fmt_num(pcircuit.get("f_search")),
            fmt_num(comp.get("aware_f")),
            _ci(pfaith),
        ],
    ]
    headers = [
        "Circuit",
        "Edges (distinct)",
        f"Edges × positions ({fmt_num(n_spans)} spans)" if n_spans else "Edges × positions",
        "Nodes",
        "f (search, train)",
        "f (test)",
        "CI (test)",
    ]
    return Table(headers, rows, "lrrrrrl")


#: Up to this many spans the table lists every span; beyond, only those the circuit uses.
ALL_SPANS_UP_TO = 12


def _span_blocks(positions: Mapping[str, Any]) -> list[Block]:
    per_span = section_of(positions, "circuit").get("edges_per_span")
    if not isinstance(per_span, Mapping) or not per_span:
        return []
    shown = {
        name: n
        for name, n in per_span.items()
        if len(per_span) <= ALL_SPANS_UP_TO or not (_is_zero(n))
    }
    rows: list[list[Inline]] = [[Code(str(name)), fmt_num(n)] for name, n in shown.items()]
    blocks: list[Block] = [
        Heading(3, "Circuit edges per span", "position-spans"),
        Table(["Span", "Circuit edges"], rows, "lr"),
    ]
    if len(shown) < len(per_span):
        blocks.append(
            Paragraph(f"The other {len(per_span) - len(shown)} spans have no circuit edge.", "note")
        )
    return blocks


def _is_zero(n: object) -> bool:
    return isinstance(n, (int, float)) and n == 0


def _top_table(positions: Mapping[str, Any]) -> Table | None:
    top = positions.get("top_edges")
    if not isinstance(top, list) or not top:
        return None
    rows: list[list[Inline]] = []
    for rank, item in enumerate(top, start=1):
        item = item if isinstance(item, Mapping) else {}
        rows.append(
            [
                str(rank),
                Code(fmt_value(item.get("span"))),
                [Code(fmt_value(item.get("edge")))] if item.get("edge") is not None else NA,
                fmt_num(item.get("score"), signed=True),
                fmt_num(item.get("in_circuit")),
            ]
        )
    return Table(["Rank", "Span", "Edge", "Score", "In circuit"], rows, "rllrl")


def position_blocks(metrics: Mapping[str, Any], figure_number: int) -> list[Block]:
    """The section's blocks (none for a run without ``--positions``); its figure is numbered
    ``figure_number``."""
    positions = section_of(metrics, "positions")
    if not positions:
        return []
    comp = section_of(positions, "comparison")
    curve = section_of(positions, "curve")
    spans = positions.get("spans")
    mode = positions.get("mode")
    target = fmt_target(comp.get("target"))
    axis = (
        "token positions"
        if mode == "tokens"
        else "the named spans " + ", ".join(str(s) for s in spans)
        if isinstance(spans, list)
        else "named spans"
    )
    intro: list[Inline] = [
        "The same attribution run kept each edge's score per position, over ",
        axis,
        ". A position-aware edge is an edge at one span: the upstream node's write at that "
        "span's tokens entering the downstream port at the same tokens (for key and value "
        "ports the key position, for queries the query position). Summed over spans its "
        "scores are the position-agnostic scores above. The position-aware circuit is the "
        "smallest prefix of the position-aware ranking that meets the target",
        f" {target}" if target else "",
        " on the search split; a position-agnostic edge counts once per span in the "
        "'Edges × positions' column, since it is kept at every position.",
    ]
    blocks: list[Block] = [
        Heading(2, "Positions", "positions"),
        Paragraph(intro),
        _comparison_table(positions, metrics),
    ]
    top = section_of(comp, "top_overlap")
    overlap: list[Inline] = [
        f"The position-aware circuit uses {fmt_num(comp.get('aware_n_edges_projected'))} distinct "
        f"edges at some span; {fmt_num(comp.get('shared_edges'))} of them are in the "
        f"position-agnostic circuit (Jaccard index {fmt_num(comp.get('jaccard'))}). "
    ]
    if top:
        overlap.append(
            f"Of the top {fmt_pct(top.get('fraction'))} of edges without positions "
            f"({fmt_num(top.get('k'))}), {fmt_pct(top.get('shared'))} are also among the first "
            f"{fmt_num(top.get('k'))} distinct edges of the position-aware ranking. "
        )
    areas = recorded_areas(curve)
    if any(v is not None for v in areas.values()):
        overlap.append(
            f"Position-aware curve (held-out, over the share of position-aware edges kept): "
            f"{areas_text(areas)}."
        )
    blocks.append(Paragraph(overlap))
    blocks += _span_blocks(positions)
    figures = metrics.get("figures")
    if isinstance(figures, Mapping) and POSITION_FIGURE in figures:
        caption = (
            "The position-aware circuit: one column per span, layers bottom to top; an edge "
            "is drawn in the column of the span it is kept at."
        )
        blocks.append(Figure(POSITION_FIGURE, figure_number, caption, f"{POSITION_FIGURE}.png"))
    top_table = _top_table(positions)
    if top_table is not None:
        blocks += [
            Heading(3, "Top position-aware edges", "position-top-edges"),
            Paragraph(
                [
                    "Ranked by ",
                    Code(
                        "|score|"
                        if section_of(metrics, "settings").get("absolute", True)
                        else "score"
                    ),
                    "; the score has the sign convention of the position-agnostic scores.",
                ]
            ),
            top_table,
        ]
    return blocks
