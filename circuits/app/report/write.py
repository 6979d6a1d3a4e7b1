"""Writing a run folder's reports: ``report.md``, ``report.html`` and ``circuit_edges.csv``,
rendered from its ``metrics.json`` and figures."""

from __future__ import annotations

import os
from pathlib import Path

from circuits.app.report.circuit import edges_csv
from circuits.app.report.html import render_html
from circuits.app.report.load import (
    EDGES_CSV,
    PNG_SIGNATURE,
    REPORT_HTML,
    REPORT_MD,
    figure_names,
    load_metrics,
    read_file,
)
from circuits.app.report.markdown import render_markdown
from graphs.atomic_files import atomic_write

__all__ = ["write_report"]


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Render ``report.md`` and ``report.html`` into ``run_dir`` from its ``metrics.json`` and
    PNG figures; return their paths.

    Both reports are rendered before either is written, and each is written atomically (a
    temporary file beside it, then ``os.replace``), so a failure leaves earlier reports intact.
    """
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    figures: dict[str, str | None] = {}
    images: dict[str, bytes | None] = {}
    for key, name in figure_names(metrics).items():
        data = read_file(run_dir / name) if name is not None else None
        is_png = data is not None and data.startswith(PNG_SIGNATURE)
        figures[key] = name if is_png else None
        images[key] = data  # render_html notes a file that is not a PNG as such
    markdown = render_markdown(metrics, figures)
    page = render_html(metrics, images)
    md_path, html_path = run_dir / REPORT_MD, run_dir / REPORT_HTML
    outputs = [(md_path, markdown), (html_path, page)]
    if metrics.get("circuit_edges"):  # written with the report: a pure function of metrics.json
        outputs.append((run_dir / EDGES_CSV, edges_csv(metrics)))
    for path, text in outputs:
        with atomic_write(path) as handle:
            handle.write(text.encode("utf-8"))
    return md_path, html_path
