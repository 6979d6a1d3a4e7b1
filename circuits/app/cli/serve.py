"""``circuits serve RUN_DIR``: the run's explorer with live ablation on a local web server."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, UsageError, add_changed_data_option, check_run_dir

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Serve RUN_DIR's explorer at http://127.0.0.1:PORT/?token=TOKEN (this machine only; "
    "requests without the printed token or with another Host are refused) and "
    'answer POST /faithfulness {"edges": [...]} by evaluating that edge set on the run\'s '
    "model and held-out prompts, so the page shows f, m(C) and the CI as you toggle edges. "
    "Ctrl-C stops it."
)


def add_arguments(s: argparse.ArgumentParser) -> None:
    """The options of ``circuits serve``."""
    s.add_argument("run_dir", type=Path, help="run folder written by `circuits discover`")
    s.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free one)")
    s.add_argument("--device", help="torch device for the model (default: where it loads)")
    s.add_argument(
        "--data", metavar="FILE",
        help="the run's prompt file, where it is now (default: the path the run recorded)",
    )  # fmt: skip
    add_changed_data_option(s)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Serve until Ctrl-C."""
    import logging

    from circuits.app.serve import serve

    check_run_dir(args.run_dir)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(
        args.run_dir, args.port, device=args.device, data=args.data,
        allow_changed_data=args.allow_changed_data,
    )  # fmt: skip
    return EXIT_OK
