"""The ``circuits`` command line: discover, evaluate, export, data, report, compare, serve and
benchmark, one module each in this package (:data:`COMMANDS`; shared options and checks in
:mod:`.common`), imported only for the command that runs.

Exit codes: 0 success, 2 bad usage or input (unknown task/model/method, unusable output
folder, a graph of another model, ...), 1 any other failure, 130 Ctrl-C (SIGINT), 143
SIGTERM. Errors are one line on stderr starting with ``error:``; nothing half-written is left
behind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass

from circuits.app.cli.common import EXIT_FAILURE, EXIT_USAGE, UsageError
from graphs.errors import CircuitDiscoveryError

__all__ = ["COMMANDS", "Command", "UsageError", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A ``circuits`` command: the module that builds its options and runs it (its
    ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args, argv) -> exit code``) and the
    one line ``circuits --help`` lists it with."""

    module: str
    help: str


#: The commands in the order ``circuits --help`` lists them. A command's module is imported
#: only when that command runs or its options are shown, so ``circuits --help``, ``--version``
#: and the ``data`` command's parser import no torch.
COMMANDS: dict[str, Command] = {
    "discover": Command(
        "circuits.app.cli.discover",
        "score edges, find the minimal faithful circuit, evaluate it, write a report",
    ),
    "evaluate": Command("circuits.app.cli.evaluate", "faithfulness of a saved circuit"),
    "export": Command("circuits.app.cli.export", "convert a graph file"),
    "data": Command("circuits.app.cli.data", "check a prompt file"),
    "report": Command(
        "circuits.app.cli.report", "(re)build report.md and report.html of a run folder"
    ),
    "compare": Command("circuits.app.cli.compare", "two runs side by side (compare.html)"),
    "serve": Command(
        "circuits.app.cli.serve", "the run's explorer with live ablation, on a local web server"
    ),
    "mib": Command(
        "circuits.app.cli.mib", "MIB's circuit-localization protocol for a task and model"
    ),
    "benchmark": Command(
        "circuits.app.cli.benchmark",
        "score every method against the compiled ground-truth models",
    ),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs: temporary run folders and
    files are removed on the way out (Python's default SIGTERM ends the process at once)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _version() -> str:
    from circuits import __version__

    return __version__


def build_parser(load: Collection[str] = ()) -> argparse.ArgumentParser:
    """The ``circuits`` parser, listing every command; the commands named in ``load`` get
    their description and options (their modules are imported for it, the others' are not)."""
    parser = argparse.ArgumentParser(
        prog="circuits",
        description="Find and check faithful circuits in transformer language models.",
        epilog="Run `circuits COMMAND --help` for a command's options. Exit codes: 0 ok, 2 bad input, 1 failure, "
        "130 Ctrl-C, 143 SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if name not in load:
            sub.add_parser(name, help=command.help)
            continue
        module = importlib.import_module(command.module)
        p = sub.add_parser(name, help=command.help, description=module.DESCRIPTION)
        module.add_arguments(p)
    return parser


def _parser() -> argparse.ArgumentParser:
    """The parser with every command's options (what the docs' command lines are checked with)."""
    return build_parser(COMMANDS)


def _chosen(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level options,
    -h and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``circuits`` console script; returns the exit code (130 after
    Ctrl-C, 143 after SIGTERM, with one line on stderr and no traceback)."""
    # importing this module is cheap (no torch), so start-up happens in here, where Ctrl-C
    # can be caught; SIGTERM becomes an exception too, so it cleans up the same way
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _main(argv)
    except KeyboardInterrupt as err:
        signum = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        print(f"interrupted by {signum.name}; no partial output was left", file=sys.stderr)
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(argv)
    args = build_parser([chosen] if chosen in COMMANDS else []).parse_args(argv)  # 2 on bad usage
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars
    # torch not imported yet: not under torchrun and no process group to join or leave, so a
    # command that needs no torch (data check) imports none
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "torch" in sys.modules
    if distributed:
        from attribution.distributed import init_from_environment, is_main_process

        init_from_environment()  # under torchrun: join the process group; rank 0 prints
        if not is_main_process():
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the other ranks' output
    try:
        return _run(args, argv)
    finally:
        if "torch" in sys.modules:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    # every error the project raises on purpose is bad input or a model it cannot use: exit 2
    try:
        return importlib.import_module(COMMANDS[args.command].module).run(args, argv)
    except CircuitDiscoveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
