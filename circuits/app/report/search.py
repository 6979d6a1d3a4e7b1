"""The report's "Search" section: how the search reached the circuit, evaluation by
evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circuits.app.report.doc import (
    Block,
    Heading,
    Inline,
    Paragraph,
    Table,
    fmt_num,
    fmt_target,
    fmt_value,
    section_of,
)

__all__ = ["search_blocks"]


def search_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """The target, the search's strategy and every evaluation it made."""
    search = section_of(metrics, "search")
    evaluations = search.get("evaluations")
    if not search:
        return []
    target = fmt_target(search.get("target"))
    intro = [
        "The circuit is the smallest prefix of the edges ranked by score that meets the target",
        f" {target}" if target else "",
        ": sizes grow exponentially until one meets it, a binary search then finds the "
        "smallest passing size, and an optional refinement drops single edges while the target "
        "still holds. ",
        f"{fmt_num(search.get('n_evaluations'))} evaluations, in order:"
        if search.get("n_evaluations") is not None
        else "Evaluations, in order:",
    ]
    blocks: list[Block] = [Heading(2, "Search", "search"), Paragraph(intro)]
    if not isinstance(evaluations, list) or not evaluations:
        blocks.append(Paragraph("No evaluations recorded.", "note"))
        return blocks
    columns: list[str] = []
    for row in evaluations:
        if isinstance(row, Mapping):
            columns += [k for k in row if k not in columns]
    labels = {"n_edges": "Edges", "f": "f", "phase": "Phase", "meets_target": "Meets target"}
    rows: list[list[Inline]] = []
    for i, row in enumerate(evaluations, start=1):
        row = row if isinstance(row, Mapping) else {}
        rows.append([str(i)] + [fmt_value(row.get(c)) for c in columns])
    align = "r" + "".join("l" if c in ("phase", "meets_target") else "r" for c in columns)
    return blocks + [Table(["#"] + [labels.get(c, c) for c in columns], rows, align)]
