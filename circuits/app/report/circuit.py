"""The report's sections on the circuit's edges: every circuit edge, the top-ranked edges, and
for a run with a position axis (``--positions``) the same per span (edges per span, the top
(span, edge) pairs) and the position-aware circuit next to the position-agnostic one. A
position-aware record is one more shape of these tables: a span column, not a twin module."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from circuits.app.report.doc import (
    NA,
    Block,
    Code,
    Heading,
    Inline,
    Paragraph,
    Table,
    fmt_ci,
    fmt_num,
    fmt_value,
    is_number,
    section_of,
)
from circuits.app.report.load import EDGES_CSV

__all__ = [
    "ALL_SPANS_UP_TO",
    "circuit_edge_blocks",
    "comparison_table",
    "edges_csv",
    "ranked_by",
    "span_blocks",
    "top_edge_blocks",
    "top_edge_table",
]

#: Up to this many spans the table lists every span; beyond, only those the circuit uses.
ALL_SPANS_UP_TO = 12


def circuit_edge_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """The "Circuit edges" section: every edge of the circuit with its score."""
    edges = metrics.get("circuit_edges")
    if not isinstance(edges, list):
        return []
    blocks: list[Block] = [
        Heading(2, "Circuit edges", "circuit-edges"),
        Paragraph(
            [
                f"All {fmt_num(len(edges))} edges of the circuit, by |score| (also in ",
                Code(EDGES_CSV),
                ").",
            ]
        ),
    ]
    if not edges:
        return blocks + [Paragraph("The circuit has no edges.", "note")]
    rows: list[list[Inline]] = []
    for rank, item in enumerate(edges, start=1):
        item = item if isinstance(item, Mapping) else {}
        rows.append(
            [
                str(rank),
                [Code(fmt_value(item.get("edge", NA)))],
                fmt_num(item.get("score"), signed=True),
            ]
        )
    return blocks + [Table(["Rank", "Edge", "Score"], rows, "rlr")]


def edges_csv(metrics: Mapping[str, Any]) -> str:
    """The circuit's edges as CSV text (``rank,edge,upstream,port,score``), best first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "edge", "upstream", "port", "score"])
    edges = metrics.get("circuit_edges")
    for rank, item in enumerate(edges if isinstance(edges, list) else [], start=1):
        item = item if isinstance(item, Mapping) else {}
        name = str(item.get("edge", ""))
        upstream, _, port = name.partition("->")
        score = item.get("score")
        writer.writerow(
            [rank, name, upstream, port, repr(float(score)) if is_number(score) else ""]
        )
    return out.getvalue()


def ranked_by(metrics: Mapping[str, Any]) -> str:
    """What the run ranked edges by: ``|score|`` or ``score``."""
    return "|score|" if section_of(metrics, "settings").get("absolute", True) else "score"


def top_edge_table(top: list, *, spans: bool = False) -> Table:
    """The ranked ``top_edges`` items; with ``spans``, each item's span in a column of its
    own (the position-aware ranking ranks (span, edge) pairs)."""
    rows: list[list[Inline]] = []
    for rank, item in enumerate(top, start=1):
        item = item if isinstance(item, Mapping) else {}
        edge = item.get("edge")
        span: list[Inline] = [Code(fmt_value(item.get("span")))] if spans else []
        rows.append(
            [
                str(rank),
                *span,
                [Code(fmt_value(edge))] if edge is not None else NA,
                fmt_num(item.get("score"), signed=True),
                fmt_num(item.get("in_circuit")),
            ]
        )
    if spans:
        return Table(["Rank", "Span", "Edge", "Score", "In circuit"], rows, "rllrl")
    return Table(["Rank", "Edge", "Score", "In circuit"], rows, "rlrl")


def top_edge_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """The "Top edges" section: the best-ranked edges and whether the circuit keeps them."""
    top = metrics.get("top_edges")
    if not isinstance(top, list):
        return []
    blocks: list[Block] = [
        Heading(2, "Top edges", "top-edges"),
        Paragraph(
            [
                "The score of an edge is m(run with that edge patched to its ablated value) − "
                "m(clean run), averaged over the attribution examples: a negative score means "
                "ablating the edge lowers the metric. Edges are ranked by ",
                Code(ranked_by(metrics)),
                ".",
            ]
        ),
    ]
    if not top:
        return blocks + [Paragraph("No edges recorded.", "note")]
    return blocks + [top_edge_table(top)]


def span_blocks(positions: Mapping[str, Any]) -> list[Block]:
    """The position-aware circuit's edges per span (only the used spans when there are many)."""
    per_span = section_of(positions, "circuit").get("edges_per_span")
    if not isinstance(per_span, Mapping) or not per_span:
        return []
    shown = {
        name: n
        for name, n in per_span.items()
        if len(per_span) <= ALL_SPANS_UP_TO or not _is_zero(n)
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


def comparison_table(metrics: Mapping[str, Any]) -> Table:
    """The position-agnostic and the position-aware circuit side by side: sizes (distinct
    edges, and edges × positions), nodes, f on the search and the test split."""
    positions = section_of(metrics, "positions")
    comp = section_of(positions, "comparison")
    pcircuit = section_of(positions, "circuit")
    n_spans = positions.get("n_spans")
    rows: list[list[Inline]] = [
        [
            "position-agnostic",
            fmt_num(comp.get("agnostic_n_edges")),
            fmt_num(comp.get("agnostic_n_position_edges")),
            fmt_num(section_of(metrics, "circuit").get("n_nodes")),
            fmt_num(comp.get("agnostic_f_search")),
            fmt_num(comp.get("agnostic_f")),
            fmt_ci(section_of(metrics, "faithfulness").get("ci")) or NA,
        ],
        [
            "position-aware",
            fmt_num(comp.get("aware_n_edges_projected")),
            fmt_num(comp.get("aware_n_edges")),
            fmt_num(pcircuit.get("n_nodes")),
            fmt_num(pcircuit.get("f_search")),
            fmt_num(comp.get("aware_f")),
            fmt_ci(section_of(positions, "faithfulness").get("ci")) or NA,
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
