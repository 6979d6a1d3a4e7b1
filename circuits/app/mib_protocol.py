"""MIB's circuit-localization protocol for one task and model, end to end (no network).

:func:`run_mib`: MIB rows (a JSON-lines file, or the rows bundled for the task) read as MIB's
loader reads them → edge attribution with the chosen ablation (counterfactual patching by
default) on the first three quarters of the rows → the faithfulness curve at MIB's ten sizes
on the last quarter, twice, as MIB's ``print_results.py`` reports it: CPR from the curve of
MIB's signed ranking, CMD from the curve of the |score| ranking (:func:`mib_curve`) → the
submission folder ``{task}_{model}`` (:func:`export_mib`) and a table next to it. Every check
of the inputs (the task, the pair, the rows, the output folder) runs before the model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.app.mib_export import (
    MIBExportError,
    check_mib_pair,
    clear_submission,
    export_mib,
    mib_curves,
    mib_folder_name,
    submission_folder,
)
from circuits.tasks.mib_rows import BUNDLED, read_mib_rows, row_task

__all__ = ["BUNDLED_COUNTERFACTUALS", "MIBResult", "run_mib"]

#: The counterfactual each bundled row file is read with (MIB's default where it has one).
BUNDLED_COUNTERFACTUALS: dict[str, str | None] = {"ioi": None, "mcqa": "query_counterfactual"}


@dataclass
class MIBResult:
    """What :func:`run_mib` computed and wrote."""

    task: str
    model: str
    method: str
    ablation: str
    n_attribution: int
    n_evaluation: int
    signed: dict[str, Any]  # mib_curve(..., ranking="signed"): CPR is its "cpr"
    absolute: dict[str, Any]  # mib_curve(..., ranking="absolute"): CMD is its "cmd"
    files: list[Path] = field(default_factory=list)
    table_file: Path | None = None

    @property
    def cpr(self) -> float:
        return float(self.signed["cpr"])

    @property
    def cmd(self) -> float:
        return float(self.absolute["cmd"])

    def table(self) -> str:
        """A markdown table: the pair's CPR and CMD, then f at each size of both rankings."""
        pair = mib_folder_name(self.task, self.model)
        sizes = " | ".join(f"{100 * k:g}%" for k in self.signed["fractions"])
        lines = [
            f"| method | {pair} CPR | {pair} CMD |",
            "| --- | --- | --- |",
            f"| {self.method} ({self.ablation}) | {self.cpr:.4f} | {self.cmd:.4f} |",
            "",
            f"| ranking | {sizes} |",
            "| --- |" + " --- |" * len(self.signed["fractions"]),
        ]
        for name, curve in (("signed (CPR)", self.signed), ("abs score (CMD)", self.absolute)):
            points = zip(curve["f"], curve["n_edges"], strict=True)
            values = " | ".join(f"{f:.3f} ({n})" for f, n in points)
            lines.append(f"| {name} | {values} |")
        return "\n".join(lines) + "\n"


def _rows_for(task: str, rows: str | Path | None) -> tuple[Path, str | None]:
    """The rows file and its counterfactual default; MIBExportError when there are none."""
    key = row_task(task).name
    if rows is not None:
        return Path(rows), None
    if key in BUNDLED:
        return BUNDLED[key], BUNDLED_COUNTERFACTUALS[key]
    raise MIBExportError(
        f"no rows bundled for MIB task {key!r} (bundled: {', '.join(BUNDLED)}); give them as "
        "--rows FILE (rows=FILE in Python), MIB's rows as JSON lines: with network, "
        "datasets.load_dataset('mib-bench/...', "
        "split='validation').to_json(FILE) writes them (this project reads no dataset online)"
    )


def run_mib(
    task: str,
    model: str,
    out: str | Path,
    *,
    rows: str | Path | None = None,
    counterfactual: str | None = None,
    method: str = "eap-ig-inputs",
    ablation: str = "patching",
    contents: str = "importances",
    fmt: str = "json",
    steps: int = 5,
    batch_size: int = 8,
    device: str | None = None,
    overwrite: bool = False,
    quiet: bool = True,
) -> MIBResult:
    """Run MIB's protocol for ``task`` (MIB's task name) and ``model`` (a bundled model or a
    Hugging Face name) and write ``out/{task}_{model}/`` and ``out/{task}_{model}.md``."""
    from circuits.app.discovery import load_for_task
    from circuits.tasks.encode import encode_examples

    check_mib_pair(task, model)
    path, default_cf = _rows_for(task, rows)
    examples = read_mib_rows(path, task, counterfactual=counterfactual or default_cf)
    if len(examples) < 4:
        raise MIBExportError(
            f"{path}: {len(examples)} usable rows; MIB's protocol needs at least 4"
        )
    out = Path(out)
    target = submission_folder(out, task, model, overwrite, "pass overwrite=True to replace it")
    cut = len(examples) - len(examples) // 4  # attribution rows, then held-out evaluation rows
    bridge, tokenizer, _ = load_for_task(model, device)
    train = encode_examples(examples[:cut], tokenizer)
    test = encode_examples(examples[cut:], tokenizer)
    result = _attribute_and_curve(bridge, train, test, method, ablation, steps, batch_size, quiet)
    graph, signed, absolute = result
    clear_submission(target)  # the folder holds one submission only
    files = export_mib(graph, out, task, model, contents=contents, fmt=fmt)
    mib = MIBResult(task, model, method, ablation, len(train), len(test), signed, absolute, files)
    mib.table_file = out / f"{target.name}.md"
    mib.table_file.write_text(mib.table(), encoding="utf-8")
    return mib


def _attribute_and_curve(
    bridge: Any, train: Any, test: Any, method: str, ablation: str, steps: int, batch: int,
    quiet: bool,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Scores on ``train``, then the curves of both of MIB's rankings on ``test``, with one
    ablation object throughout (its reference prompts, or its fit, are ``train``'s, made once)."""
    from attribution.ablations import build_ablation
    from attribution.attribute import attribute
    from graphs import Graph

    graph = Graph.from_model(bridge)
    removal = build_ablation(ablation, train, metric="logit_diff", quiet=quiet)
    attribute(bridge, graph, train, "logit_diff", method=method, steps=steps, ablation=removal,
              batch_size=batch, quiet=quiet)  # fmt: skip
    curves = mib_curves(
        bridge, graph, test, "logit_diff", rankings=("signed", "absolute"), ablation=removal,
        batch_size=batch,
    )  # fmt: skip
    return graph, curves[0], curves[1]
