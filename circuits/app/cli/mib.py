"""``circuits mib --task T --model M``: MIB's circuit-localization protocol end to end
(:func:`circuits.app.mib_protocol.run_mib`), offline on the rows bundled for the task or on a
MIB row file."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Run MIB's circuit-localization protocol for one task and model: MIB rows read as MIB's "
    "loader reads them, edge attribution on the first three quarters, the faithfulness curve "
    "at MIB's ten sizes (int(p*n) edges) on the last quarter, CPR from MIB's signed ranking "
    "and CMD from the |score| ranking as MIB's print_results.py reports them; writes the "
    "submission folder OUT/{task}_{model}/ and the table OUT/{task}_{model}.md (see "
    "docs/circuits.md)."
)


def add_arguments(m: argparse.ArgumentParser) -> None:
    """The options of ``circuits mib``."""
    from attribution import ablations
    from attribution.methods import method_names
    from circuits.tasks.mib_rows import BUNDLED, MIB_ROW_TASKS

    m.add_argument(
        "--task", required=True, choices=sorted(MIB_ROW_TASKS),
        help=f"MIB's task name (rows bundled for: {', '.join(sorted(BUNDLED))})",
    )  # fmt: skip
    m.add_argument("--model", required=True, help="a bundled model or a Hugging Face name")
    m.add_argument("--rows", type=Path, help="MIB row file (.jsonl; default: the bundled rows)")
    m.add_argument("--counterfactual", metavar="NAME", help="the counterfactual prompt to use")
    m.add_argument(  # read now: methods and ablations registered after import count too
        "--method", default="eap-ig-inputs", choices=method_names(),
        help="edge scoring method (default: eap-ig-inputs, MIB's recommended baseline)",
    )  # fmt: skip
    m.add_argument(
        "--ablation", default="patching", choices=ablations.names(),
        help="how edges outside the circuit are removed (default: patching with the "
        "counterfactual prompt, MIB's)",
    )  # fmt: skip
    m.add_argument(
        "--contents", choices=("importances", "circuits"), default="importances",
        help="write one importance file (default) or the circuits at MIB's sizes",
    )  # fmt: skip
    m.add_argument("--format", choices=("json", "pt"), default="json", help="MIB file format")
    m.add_argument("--steps", type=int, default=5, help="integration steps (default: 5)")
    m.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    m.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    m.add_argument("--out", type=Path, default=Path("mib_submission"), help="output folder")
    m.add_argument("--overwrite", action="store_true", help="replace an earlier submission")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the protocol and print its table."""
    from circuits.app.mib_protocol import run_mib

    result = run_mib(
        args.task, args.model, args.out, rows=args.rows, counterfactual=args.counterfactual,
        method=args.method, ablation=args.ablation, contents=args.contents, fmt=args.format,
        steps=args.steps, batch_size=args.batch_size, device=args.device,
        overwrite=args.overwrite, quiet=False,
    )  # fmt: skip
    print(result.table(), end="")
    print(
        f"wrote {len(result.files)} MIB file(s) to {result.files[0].parent} and {result.table_file}"
    )
    return EXIT_OK
