"""``circuits report RUN_DIR``: rebuild a run folder's report (and its explorer page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, add_changed_data_option, check_run_dir

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "Rebuild the report of a run folder from its metrics.json and figures."


def add_arguments(r: argparse.ArgumentParser) -> None:
    """The options of ``circuits report``."""
    r.add_argument("run_dir", type=Path, help="run folder written by `circuits discover`")
    r.add_argument(
        "--data", metavar="FILE",
        help="check that FILE is the prompt file the run was made with (its SHA-256 as recorded)",
    )  # fmt: skip
    add_changed_data_option(r)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Write report.md, report.html and the explorer files; ``--data``: check the file first."""
    from circuits.app.explorer import update_run_folder
    from circuits.app.report import write_report

    check_run_dir(args.run_dir)
    if args.data is not None:
        from circuits.app.integrity import check_run_prompt_file

        print(check_run_prompt_file(args.run_dir, args.data, args.allow_changed_data))
    written = update_run_folder(args.run_dir)  # supernodes in the circuit figure, explorer.html
    md, html = write_report(args.run_dir)
    print(f"wrote {', '.join(str(p) for p in [md, html, *written])}")
    return EXIT_OK
