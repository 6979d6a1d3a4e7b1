"""The report package's structure: both renderers show one document, a position-aware run is a
shape of the same section builders, and no module of the package reaches into another's
private names."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest

from circuits.app.report import FIGURES, POSITION_FIGURE, render_html, render_markdown
from circuits.app.report.circuit import top_edge_table
from circuits.app.report.doc import Figure, Heading, Table
from circuits.app.report.document import document
from tests.test_report import METRICS, png_bytes

PACKAGE = Path(__file__).resolve().parents[1] / "circuits" / "app" / "report"

#: A ``--positions`` record's section (the shape a `--positions` discovery run writes).
POSITIONS = {
    "mode": "schema",
    "spans": ["A", "B", "END"],
    "n_spans": 3,
    "circuit": {"n_edges": 4, "n_nodes": 5, "f_search": 0.93, "edges_per_span": {"A": 1, "B": 0, "END": 3}},
    "faithfulness": {"f": 0.91, "ci": [0.8, 0.97]},
    "comparison": {
        "target": [0.9, None], "agnostic_n_edges": 3, "agnostic_n_position_edges": 9,
        "agnostic_f_search": 0.92, "agnostic_f": 0.9, "aware_n_edges_projected": 3,
        "aware_n_edges": 4, "aware_f": 0.91, "shared_edges": 2, "jaccard": 0.5,
        "top_overlap": {"fraction": 0.1, "k": 2, "shared": 0.5},
    },
    "curve": {"fractions": [0.1, 1.0], "f": [0.5, 1.0]},
    "top_edges": [
        {"span": "END", "edge": "a0.h1->logits", "score": 0.4, "in_circuit": True},
        {"span": "A", "edge": "m0->a1.h0<q>", "score": -0.1, "in_circuit": False},
    ],
}  # fmt: skip


def position_metrics() -> dict:
    metrics = copy.deepcopy(METRICS)
    metrics["positions"] = copy.deepcopy(POSITIONS)
    metrics["figures"][POSITION_FIGURE] = f"{POSITION_FIGURE}.png"
    return metrics


@pytest.mark.parametrize("metrics", [METRICS, position_metrics()], ids=["plain", "positions"])
def test_markdown_and_html_render_the_same_blocks(metrics):
    """Every heading, table (with its every row) and figure of the one document is in both
    files, so neither renderer can drop or add a section."""
    keys = (*FIGURES, POSITION_FIGURE)
    blocks = document(metrics, keys)
    md = render_markdown(metrics, {k: f"{k}.png" for k in keys})
    page = render_html(metrics, {k: png_bytes() for k in keys})
    headings = [b for b in blocks if isinstance(b, Heading)]
    tables = [b for b in blocks if isinstance(b, Table)]
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert len(re.findall(r"^#+ ", md, re.M)) == len(headings) == len(re.findall(r"<h\d", page))
    assert len(re.findall(r"^\|(?:---:?\|)+$", md, re.M)) == len(tables) == page.count("<table>")
    n_rows = sum(len(t.rows) for t in tables)
    assert len(re.findall(r"^\| ", md, re.M)) == len(tables) + n_rows  # a header row each
    assert page.count("<tr>") == len(tables) + n_rows
    assert len(re.findall(r"^\*Figure \d+: ", md, re.M)) == len(figures) == page.count("<figure ")
    assert ("Positions" in {h.text for h in headings}) == ("positions" in metrics)


def test_a_position_aware_top_edge_table_is_the_table_with_a_span_column():
    top = POSITIONS["top_edges"]
    plain, aware = top_edge_table(top), top_edge_table(top, spans=True)
    assert aware.headers == [*plain.headers[:1], "Span", *plain.headers[1:]]
    assert aware.align == plain.align[:1] + "l" + plain.align[1:]
    assert [[*row[:1], *row[2:]] for row in aware.rows] == [list(row) for row in plain.rows]
    assert [row[1] for row in aware.rows] == [item["span"] for item in top]


def private_imports(package: Path, name: str) -> list[str]:
    """``module: name`` for each private name a module of the package ``name`` (at
    ``package``) imports from another of its modules."""
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(name):
                found += [f"{path.stem}: {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_report_module_imports_a_private_name_of_another():
    assert private_imports(PACKAGE, "circuits.app.report") == []


def test_the_private_import_check_catches_one(tmp_path):
    (tmp_path / "a.py").write_text("def _helper():\n    return 1\n")
    (tmp_path / "b.py").write_text("from pkg.a import _helper, public\n")
    assert private_imports(tmp_path, "pkg") == ["b: _helper"]


def test_the_curve_figure_names_its_areas_in_the_words_of_the_summary():
    from circuits.app.curve_text import areas_text, recorded_areas

    curve = next(
        b for b in document(METRICS, FIGURES) if isinstance(b, Figure) and b.key == FIGURES[1]
    )
    assert f" {areas_text(recorded_areas(METRICS['curve']))}." in curve.caption
