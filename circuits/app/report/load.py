"""What the report reads from a run folder: the checked ``metrics.json`` and the figure files
it names, each allowed only inside the folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuits.app.run import METRICS_FILE, RUN_FORMAT, RUN_SCHEMA_VERSION, RunFileError, RunRecord

__all__ = [
    "EDGES_CSV",
    "FIGURES",
    "FORMAT",
    "METRICS_FILE",
    "PNG_SIGNATURE",
    "REPORT_HTML",
    "REPORT_MD",
    "SCHEMA_VERSION",
    "ReportError",
    "figure_names",
    "load_metrics",
    "read_file",
]

FORMAT, SCHEMA_VERSION = RUN_FORMAT, RUN_SCHEMA_VERSION
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
EDGES_CSV = "circuit_edges.csv"
# The figures every run folder should have, in report order.
FIGURES = ("circuit", "faithfulness_curve", "score_histogram")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


#: ``metrics.json`` is missing or invalid, so no report can be rendered.
ReportError = RunFileError


def load_metrics(run_dir: str | os.PathLike[str]) -> dict:
    """Read and check ``run_dir/metrics.json`` (a :class:`~circuits.app.run.RunRecord`);
    raise :class:`ReportError` if it is unusable."""
    return RunRecord.load(run_dir).to_dict()


def figure_names(metrics: Mapping[str, Any]) -> dict[str, str | None]:
    """Figure key -> file name inside the run folder (``None`` when the name is unusable)."""
    listed = metrics.get("figures")
    listed = listed if isinstance(listed, Mapping) else {}
    names: dict[str, str | None] = {}
    extra = (
        k
        for k, v in listed.items()
        if k not in FIGURES and isinstance(v, str) and v.lower().endswith(".png")
    )
    for key in (*FIGURES, *extra):
        name = listed.get(key, f"{key}.png")
        names[str(key)] = name if _is_plain_file_name(name) else None
    return names


def _is_plain_file_name(name: object) -> bool:
    """A bare file name: the report may only refer to files inside the run folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not name.startswith(".")
    )


def read_file(path: Path) -> bytes | None:
    """The file's bytes; None when it is missing, a directory or unreadable."""
    try:
        return path.read_bytes()
    except OSError:
        return None
