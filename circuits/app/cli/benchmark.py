"""``circuits benchmark``: every attribution method against the compiled ground-truth models."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, UsageError
from graphs.errors import CircuitDiscoveryError

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "AUROC, minimal-circuit precision/recall, CPR/CMD and time of every attribution "
    "method on every compiled model (docs/ground_truth.md); writes benchmark.md, benchmark.json, roc.png."
)


def add_arguments(b: argparse.ArgumentParser) -> None:
    """The options of ``circuits benchmark``."""
    b.add_argument("--out", type=Path, default=Path("benchmark_run"), help="output folder")
    b.add_argument("--methods", nargs="+", help="methods (default: all)")
    b.add_argument(
        "--models", nargs="+", help="compiled models (default: all, none with --model-dir)"
    )
    b.add_argument(
        "--model-dir", type=Path, metavar="FOLDER",
        help="your own model: a folder written by truth.save (save_pretrained plus task.json, "
        "the prompts as token ids); see docs/ground_truth.md",
    )  # fmt: skip
    b.add_argument(
        "--true-edges", type=Path, metavar="FILE",
        help="JSON list of the true circuit's edge names for --model-dir (default: task.json's "
        "'circuit')",
    )  # fmt: skip


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the benchmark, print its table and write its files."""
    from circuits.groundtruth.benchmark import check_methods, markdown_table, run_benchmark
    from circuits.groundtruth.custom import from_folder, read_true_edges

    if args.true_edges is not None and args.model_dir is None:
        raise UsageError("--true-edges names the edges of --model-dir FOLDER; pass both")
    try:  # bad methods and a malformed edges file fail before the model loads
        check_methods(args.methods)
        if args.true_edges is not None:
            read_true_edges(args.true_edges)
        truths = [from_folder(args.model_dir, args.true_edges)] if args.model_dir else None
        rows = run_benchmark(methods=args.methods, models=args.models, out=args.out, truths=truths)
    except ValueError as err:
        if isinstance(err, CircuitDiscoveryError):
            raise
        raise UsageError(str(err)) from err
    print(markdown_table(rows), end="")
    print(f"wrote {args.out}/benchmark.md, benchmark.json and roc.png")
    return EXIT_OK
