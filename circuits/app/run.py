"""The run record: what one discovery run found and how, as a typed object with a format name
and a schema version. :func:`circuits.app.discovery.discover` writes it as ``metrics.json``,
:mod:`circuits.app.report` reads it, and ``circuits evaluate`` takes its model, task, metric
and ablation as defaults for a graph file inside a run folder.

The file is strict JSON (``JSON.parse``, jq and every other reader accept it): an infinite or
undefined number is written as ``null``, e.g. the open upper bound of the default target
``f ≥ 0.9`` is ``[0.9, null]``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from graphs.errors import CircuitDiscoveryError

__all__ = [
    "METRICS_FILE",
    "RUN_FORMAT",
    "RUN_SCHEMA_VERSION",
    "RunFileError",
    "RunRecord",
    "section_of",
    "strict_json",
]

RUN_FORMAT = "circuit-discovery-run"
RUN_SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"


class RunFileError(CircuitDiscoveryError, ValueError):
    """A run folder's ``metrics.json`` is missing or is not a run record this version reads."""


@dataclass
class RunRecord:
    """Every number and setting of one run, in the sections of ``metrics.json``.

    ``model``, ``task``, ``settings``: what was run; ``graph``, ``circuit``, ``faithfulness``
    (held-out split), ``curve``, ``search`` (train split), ``attribution`` (diagnostics):
    what it found; ``timings`` in seconds; ``top_edges``: the best-scoring edges;
    ``figures``: file names inside the run folder; ``verdict``: the target met or missed on
    each split (search on train, faithfulness on test); ``warnings``: ``{code, message, fix}``
    for each result that should not be trusted (:mod:`circuits.app.checks`);
    ``circuit_edges``: every circuit edge with its score, best first; ``examples``: a few
    prompt pairs as the model saw them; ``behaviour``: the model's accuracy and mean metric on
    the clean and corrupted held-out prompts, and quantiles of the per-example metrics;
    ``positions``: with ``--positions``, the position-aware circuit, its held-out f and curve,
    and its comparison with the position-agnostic circuit
    (:mod:`circuits.app.discovery.record`); empty otherwise; ``integrity``: the SHA-256 of
    each graph file and tensor, checked by every reader (:mod:`circuits.app.integrity`)."""

    model: dict[str, Any]
    task: dict[str, Any]
    settings: dict[str, Any]
    graph: dict[str, Any]
    circuit: dict[str, Any]
    faithfulness: dict[str, Any]
    curve: dict[str, Any]
    search: dict[str, Any]
    attribution: dict[str, Any]
    timings: dict[str, float]
    top_edges: list[dict[str, Any]]
    figures: dict[str, str]
    verdict: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    circuit_edges: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    behaviour: dict[str, Any] = field(default_factory=dict)
    positions: dict[str, Any] = field(default_factory=dict)
    #: checksums of the graph files (:mod:`circuits.app.integrity`); empty in older folders
    integrity: dict[str, Any] = field(default_factory=dict)
    package_version: str = "0+unknown"
    created: str = ""
    command: str | None = None
    format: str = RUN_FORMAT
    schema_version: int = RUN_SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # sections of newer writers, kept

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` object: format and schema first, then the sections."""
        head = ("format", "schema_version", "package_version", "created", "command")
        data = {k: getattr(self, k) for k in head}
        for f in fields(self):
            if f.name not in head and f.name != "extra":
                data[f.name] = getattr(self, f.name)
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "run record") -> RunRecord:
        """Check the format marker and schema version; RunFileError says what is wrong."""
        fix = "run `circuits discover` first to create a run folder"
        if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
            raise RunFileError(
                f'{source}: not a circuit-discovery run file (expected "format": "{RUN_FORMAT}"); {fix}'
            )
        version = data.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RunFileError(f"{source}: invalid schema_version {version!r}; {fix} again")
        if version > RUN_SCHEMA_VERSION:
            raise RunFileError(
                f"{source}: schema_version {version} is newer than this circuit-discovery supports "
                f"({RUN_SCHEMA_VERSION}); upgrade circuit-discovery to read it"
            )
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        defaults = {
            "figures": {}, "top_edges": [], "timings": {}, "warnings": [], "circuit_edges": [],
            "examples": [],
        }  # fmt: skip
        sections = {f.name: defaults.get(f.name, {}) for f in fields(cls) if f.name in _SECTIONS}
        sections.update(known)
        return cls(**sections, extra={k: v for k, v in data.items() if k not in names})

    def to_json(self) -> str:
        """Strict JSON text (see :func:`strict_json`), one field a line per level."""
        return json.dumps(strict_json(self.to_dict()), indent=1, allow_nan=False) + "\n"

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/metrics.json`` (atomically: readers never see half a record);
        returns its path."""
        from graphs.atomic_files import atomic_write

        path = Path(folder) / METRICS_FILE
        with atomic_write(path) as handle:
            handle.write(self.to_json().encode("utf-8"))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RunRecord:
        """Read ``folder/metrics.json``; RunFileError when it is missing, damaged or not a
        run record."""
        path = Path(folder) / METRICS_FILE
        fix = "run `circuits discover` first to create a run folder"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunFileError(f"{path}: no such file; {fix}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFileError(f"{path}: cannot be read ({exc}); {fix}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunFileError(
                f"{path}: not valid JSON ({exc}); the file is damaged, {fix} again"
            ) from None
        return cls.from_dict(data, str(path))


_SECTIONS = (
    "model", "task", "settings", "graph", "circuit", "faithfulness", "curve", "search",
    "attribution", "timings", "top_edges", "figures", "verdict", "warnings", "circuit_edges",
    "examples", "behaviour", "positions", "integrity",
)  # fmt: skip


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (inf, NaN) replaced by None, so it serialises as
    strict JSON; tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def section_of(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The ``key`` section of a ``metrics.json`` object; ``{}`` when absent or not an object
    (the report and the checks read records of older versions too)."""
    value = metrics.get(key)
    return value if isinstance(value, Mapping) else {}
