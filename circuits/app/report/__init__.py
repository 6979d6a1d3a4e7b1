"""Human-readable reports of a discovery run: ``report.md`` and a self-contained ``report.html``.

A run folder (written by ``circuits discover``) holds ``metrics.json`` and the PNG figures. A
report is rendered from those files alone, so ``circuits report DIR`` can rebuild it at any
time. The rendering is a pure function of ``metrics.json`` and the figure bytes (no timestamps
of its own), so rebuilding an unchanged folder gives byte-identical reports.

Both formats are produced from one intermediate list of blocks (headings, paragraphs, tables,
figures), so they always state the same things. The modules, by concept:

* :mod:`~circuits.app.report.load`: what is read from the run folder (``metrics.json``, the
  figure files); a missing or invalid ``metrics.json`` raises :class:`ReportError`.
* :mod:`~circuits.app.report.doc`: the document model and number formatting.
* the section builders, one module per topic: :mod:`~circuits.app.report.summary` (title,
  summary, warnings, timings, footer), :mod:`~circuits.app.report.task`,
  :mod:`~circuits.app.report.faithfulness`, :mod:`~circuits.app.report.search`,
  :mod:`~circuits.app.report.circuit` (circuit edges and top edges, with a span column when
  the run has a position axis), :mod:`~circuits.app.report.captions` (figures);
  :mod:`~circuits.app.report.document` puts the sections in order.
* the renderers: :mod:`~circuits.app.report.markdown` (``report.md``, figures by relative file
  name) and :mod:`~circuits.app.report.html` (``report.html``, figures inlined as ``data:``
  URIs, no external references and no JavaScript; a missing figure renders as a "figure not
  available" note in both).
* :mod:`~circuits.app.report.write`: :func:`write_report`, both files written atomically.
"""

from __future__ import annotations

from circuits.app.report.captions import POSITION_FIGURE
from circuits.app.report.circuit import ALL_SPANS_UP_TO, edges_csv
from circuits.app.report.doc import (
    NA,
    Block,
    Code,
    Contents,
    Figure,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
    Table,
    flatten,
    fmt_num,
    fmt_pct,
    fmt_seconds,
    fmt_target,
    fmt_value,
    is_number,
    section_of,
)
from circuits.app.report.document import position_blocks
from circuits.app.report.html import render_html
from circuits.app.report.load import (
    EDGES_CSV,
    FIGURES,
    FORMAT,
    METRICS_FILE,
    REPORT_HTML,
    REPORT_MD,
    SCHEMA_VERSION,
    ReportError,
    load_metrics,
)
from circuits.app.report.markdown import render_markdown
from circuits.app.report.write import write_report

__all__ = [
    "ALL_SPANS_UP_TO",
    "EDGES_CSV",
    "FIGURES",
    "FORMAT",
    "METRICS_FILE",
    "NA",
    "POSITION_FIGURE",
    "REPORT_HTML",
    "REPORT_MD",
    "SCHEMA_VERSION",
    "Block",
    "Code",
    "Contents",
    "Figure",
    "Heading",
    "Inline",
    "Link",
    "Paragraph",
    "ReportError",
    "Strong",
    "Table",
    "edges_csv",
    "flatten",
    "fmt_num",
    "fmt_pct",
    "fmt_seconds",
    "fmt_target",
    "fmt_value",
    "is_number",
    "load_metrics",
    "position_blocks",
    "render_html",
    "render_markdown",
    "section_of",
    "write_report",
]
