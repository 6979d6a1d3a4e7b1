"""Score every attribution method against every compiled ground truth.

For each model of :mod:`.registry` and each method of :data:`attribution.METHODS` (so any
method registered later is included): edge AUROC of ``|score|`` against the true circuit,
precision and recall of the minimal circuit with ``f >= target``, CPR and CMD of the
faithfulness curve, how many trap edges the minimal circuit keeps, and seconds taken.
``run_benchmark(out=folder)`` writes ``benchmark.md``, ``benchmark.json`` (strict JSON) and
``roc.png``/``roc.svg``.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import torch

from attribution import attribute
from attribution.methods import method_names
from circuits.groundtruth import registry
from circuits.groundtruth.custom import GroundTruthError, check_edges
from circuits.groundtruth.roc_figure import draw_roc_curves
from circuits.groundtruth.scoring import auroc, precision_recall, roc_points
from circuits.groundtruth.task import GroundTruth
from circuits.search.faithfulness import CircuitEvaluator, faithfulness_curve
from circuits.search.minimal import minimal_circuit
from graphs import Graph
from graphs.atomic_files import atomic_write

__all__ = ["COLUMNS", "check_methods", "run_benchmark", "markdown_table"]

#: Columns of the markdown table: (key in a result row, header, format).
COLUMNS = (
    ("model", "model", "{}"),
    ("method", "method", "{}"),
    ("n_edges", "edges", "{}"),
    ("auroc", "AUROC", "{:.3f}"),
    ("minimal_edges", "minimal", "{}"),
    ("precision", "precision", "{:.2f}"),
    ("recall", "recall", "{:.2f}"),
    ("trap_in_minimal", "trap kept", "{}"),
    ("cpr", "CPR", "{:.3f}"),
    ("cmd", "CMD", "{:.3f}"),
    ("seconds", "s", "{:.2f}"),
)


def check_methods(methods: list[str] | None) -> list[str]:
    """``methods`` (default: every registered one); ValueError naming an unknown one."""
    return _check_names(methods, list(method_names()), "methods")


def _check_names(given: list[str] | None, known: list[str], what: str) -> list[str]:
    names = list(known) if given is None else list(given)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise GroundTruthError(f"unknown {what} {unknown or names}; choose from {', '.join(known)}")
    return names


def _score_method(model, graph: Graph, truth, method: str, *, steps: int, target: float) -> dict:
    """Attribute with ``method`` and measure the ranking and its minimal circuit."""
    start = time.perf_counter()
    attribute(model, graph, truth.data, truth.metric, method=method, steps=steps, quiet=True)
    attribution_s = time.perf_counter() - start
    real = graph.real_edges
    truth_mask = truth.mask(graph)
    magnitude = graph.scores.abs()[real]
    labels = truth_mask[real]
    evaluator = CircuitEvaluator(model, graph, truth.data, truth.metric)
    minimal = minimal_circuit(
        model, graph, truth.data, truth.metric, target=target, evaluator=evaluator
    )
    precision, recall = precision_recall(minimal.mask[real], labels)
    curve = faithfulness_curve(model, graph, truth.data, truth.metric)
    trap = truth.mask(graph, truth.trap)
    row = {
        "model": truth.name,
        "method": method,
        "n_edges": int(real.sum()),
        "n_true": int(truth_mask.sum()),
        "auroc": auroc(magnitude, labels),
        "minimal_edges": minimal.n_edges,
        "minimal_f": minimal.f,
        "minimal_reached": minimal.reached,
        "precision": precision,
        "recall": recall,
        "trap_in_minimal": int((minimal.mask & trap).sum()) if truth.trap else "-",
        "trap_edges": list(truth.trap),
        "cpr": curve.cpr,
        "cmd": curve.cmd,
        "attribution_seconds": attribution_s,
        "seconds": time.perf_counter() - start,
    }
    row["roc"] = roc_points(magnitude, labels)
    return row


def _prepare(
    item: str | GroundTruth, seed: int, dtype: torch.dtype
) -> tuple[GroundTruth, Any, Graph]:
    """``(truth, bridge, graph)`` of a registry name or a :class:`GroundTruth`, its true and
    trap edges checked against the graph."""
    from circuits.models import load_model

    truth = registry.build(item, seed=seed) if isinstance(item, str) else item
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=dtype)
    graph = Graph.from_model(bridge)
    check_edges(truth, graph)
    return truth, bridge, graph


def run_benchmark(
    methods: list[str] | None = None,
    models: list[str] | None = None,
    out: str | Path | None = None,
    *,
    steps: int = 5,
    target: float = 0.9,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    truths: list[GroundTruth] | None = None,
) -> list[dict[str, Any]]:
    """One result row per (model, method); ``out`` (a folder, created) also gets the table,
    the JSON and the ROC figure. ``methods``/``models`` default to all (``models`` to none
    when ``truths``, your own :class:`GroundTruth` objects, are given); ValueError names an
    unknown one, :class:`.custom.GroundTruthError` an edge the model does not have (before
    any attribution). Prompts and noise are drawn with ``seed``."""
    methods = check_methods(methods)
    if truths and models is None:
        models = []
    if models or not truths:
        models = _check_names(models, registry.names(), "models")
    items = [*(truths or []), *models]
    # every model loaded and its edges checked before the first (long) attribution; then
    # each is loaded again (compiling is deterministic for the seed) when its turn comes and
    # freed after it, so that one model at a time is in memory
    names = [_prepare(item, seed, dtype)[0].name for item in items]
    rows = []
    total = 0.0
    for item in items:
        truth, bridge, graph = _prepare(item, seed, dtype)
        start = time.perf_counter()
        for method in methods:
            rows.append(_score_method(bridge, graph, truth, method, steps=steps, target=target))
        total += time.perf_counter() - start
        del truth, bridge, graph
        gc.collect()  # a bridge's hooks hold reference cycles
    if out is not None:
        write_results(rows, Path(out), settings={
            "methods": methods, "models": names, "steps": steps,
            "target": target, "seed": seed, "dtype": str(dtype).removeprefix("torch."), "total_seconds": total,
        })  # fmt: skip
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The result rows as a GitHub markdown table (:data:`COLUMNS`)."""
    lines = [
        "| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = [fmt.format(row[key]) if row[key] != "-" else "-" for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict[str, Any]], out: Path, *, settings: dict[str, Any]) -> list[Path]:
    """Write ``benchmark.md``, ``benchmark.json`` and ``roc.png``/``roc.svg`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, dict[str, tuple[list, list]]] = {}
    for row in rows:
        curves.setdefault(row["model"], {})[row["method"]] = tuple(row["roc"])
    payload = {"settings": settings, "results": rows}
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    table = (
        f"Settings: {', '.join(f'{k}={v}' for k, v in settings.items() if k != 'total_seconds')}; "
        f"total {settings['total_seconds']:.1f} s.\n\n" + markdown_table(rows)
    )
    paths = [out / "benchmark.json", out / "benchmark.md"]
    for path, content in zip(paths, (text, table), strict=True):
        with atomic_write(path) as handle:
            handle.write(content.encode())
    return paths + draw_roc_curves(curves, out / "roc.png")


def main(argv: list[str] | None = None) -> int:
    """``python -m circuits.groundtruth.benchmark [OUT]``: the full benchmark into OUT."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path("benchmark_run")
    rows = run_benchmark(out=out)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
