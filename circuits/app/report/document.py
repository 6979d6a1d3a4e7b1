"""The report as one list of blocks, independent of output format: its sections in order, each
built by the module of its topic. A run with a position axis (``--positions``) adds a
"Positions" section made by the same builders in their position-aware shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from circuits.app.curve_text import areas_text, recorded_areas
from circuits.app.report.captions import POSITION_FIGURE, figure_blocks, position_figure_blocks
from circuits.app.report.circuit import (
    circuit_edge_blocks,
    comparison_table,
    ranked_by,
    span_blocks,
    top_edge_blocks,
    top_edge_table,
)
from circuits.app.report.doc import (
    Block,
    Code,
    Contents,
    Heading,
    Inline,
    Link,
    Paragraph,
    flatten,
    fmt_num,
    fmt_pct,
    fmt_target,
    kv_table,
    section_of,
)
from circuits.app.report.faithfulness import faithfulness_blocks
from circuits.app.report.search import search_blocks
from circuits.app.report.summary import summary, timing_blocks, title, warning_blocks
from circuits.app.report.task import task_blocks

__all__ = ["document", "position_blocks"]

#: The ``metrics.json`` fields a section shows; any other goes under "Other fields".
_KNOWN = {
    "verdict",
    "warnings",
    "circuit_edges",
    "examples",
    "behaviour",
    "format",
    "schema_version",
    "package_version",
    "created",
    "command",
    "model",
    "task",
    "settings",
    "graph",
    "circuit",
    "faithfulness",
    "curve",
    "search",
    "attribution",
    "timings",
    "top_edges",
    "figures",
    "positions",
}


def document(metrics: Mapping[str, Any], figure_keys: Iterable[str]) -> list[Block]:
    """The whole report: title, summary, warnings, contents, then every section; the figures
    are those of ``figure_keys``."""
    keys = list(figure_keys)
    blocks: list[Block] = [Heading(2, "Circuit", "circuit")]
    blocks += figure_blocks(metrics, [k for k in keys if k == "circuit"], heading=False)
    blocks.append(
        Paragraph(
            ["Explore the whole graph (circuit size, edge details, supernodes): ",
             Link("explorer.html", "explorer.html"), "; ", Code("circuits serve RUN"),
             " adds live ablation."]
        )
    )  # fmt: skip
    blocks += _setup_blocks(metrics)
    blocks += faithfulness_blocks(metrics)
    first = 2 if "circuit" in keys else 1
    others = [k for k in keys if k not in ("circuit", POSITION_FIGURE)]
    blocks += figure_blocks(metrics, others, first)
    blocks += search_blocks(metrics)
    blocks += circuit_edge_blocks(metrics)
    blocks += top_edge_blocks(metrics)
    blocks += position_blocks(metrics, first + len(others))
    blocks += timing_blocks(metrics)
    extra = {k: v for k, v in metrics.items() if k not in _KNOWN}
    if extra:
        blocks += [Heading(2, "Other fields", "other"), kv_table(flatten(extra))]
    contents = [(b.anchor, b.text) for b in blocks if isinstance(b, Heading) and b.anchor]
    head: list[Block] = [Heading(1, title(metrics)), Paragraph(summary(metrics), "summary")]
    head += warning_blocks(metrics)
    return head + [Contents(contents)] + blocks


def _setup_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """What was run: the model and graph, the task and data, the settings."""
    model = section_of(metrics, "model")
    graph = section_of(metrics, "graph")
    settings = section_of(metrics, "settings")
    blocks: list[Block] = []
    if model or graph:
        rows = flatten(model) + [(f"graph.{k}", v) for k, v in flatten(graph)]
        blocks += [Heading(2, "Model", "model"), kv_table(rows)]
    blocks += task_blocks(metrics)
    if settings:
        blocks += [Heading(2, "Settings", "settings"), kv_table(flatten(settings), "Setting")]
    return blocks


def position_blocks(metrics: Mapping[str, Any], figure_number: int) -> list[Block]:
    """The "Positions" section of a ``--positions`` run (none for another run): the
    position-aware circuit next to the position-agnostic one, their overlap, its edges per
    span, its figure (numbered ``figure_number``) and its top (span, edge) pairs."""
    positions = section_of(metrics, "positions")
    if not positions:
        return []
    blocks: list[Block] = [
        Heading(2, "Positions", "positions"),
        Paragraph(_position_intro(positions)),
        comparison_table(metrics),
        Paragraph(_overlap_text(positions)),
    ]
    blocks += span_blocks(positions)
    blocks += position_figure_blocks(metrics, figure_number)
    top = positions.get("top_edges")
    if isinstance(top, list) and top:
        blocks += [
            Heading(3, "Top position-aware edges", "position-top-edges"),
            Paragraph(
                [
                    "Ranked by ",
                    Code(ranked_by(metrics)),
                    "; the score has the sign convention of the position-agnostic scores.",
                ]
            ),
            top_edge_table(top, spans=True),
        ]
    return blocks


def _position_intro(positions: Mapping[str, Any]) -> list[Inline]:
    """What a position-aware edge and circuit are, over this run's position axis."""
    spans, mode = positions.get("spans"), positions.get("mode")
    target = fmt_target(section_of(positions, "comparison").get("target"))
    axis = (
        "token positions"
        if mode == "tokens"
        else "the named spans " + ", ".join(str(s) for s in spans)
        if isinstance(spans, list)
        else "named spans"
    )
    return [
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


def _overlap_text(positions: Mapping[str, Any]) -> list[Inline]:
    """How far the two circuits share edges, and the position-aware curve's areas."""
    comp = section_of(positions, "comparison")
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
    areas = recorded_areas(section_of(positions, "curve"))
    if any(v is not None for v in areas.values()):
        overlap.append(
            f"Position-aware curve (held-out, over the share of position-aware edges kept): "
            f"{areas_text(areas)}."
        )
    return overlap
