"""What several ``circuits`` commands share: exit codes, :class:`UsageError`, the model and
task options and the checks of a graph file or run folder argument.

Importing this module is cheap (no torch): the options read the registries when a command's
parser is built, not before.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphs.errors import CircuitDiscoveryError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "add_changed_data_option",
    "add_data_options",
    "add_model_and_task",
    "check_graph_file",
    "check_run_dir",
    "one_prompt_source",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(CircuitDiscoveryError):
    """Bad input found by the command itself (exit code 2)."""


def add_data_options(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    """``--data FILE`` (with ``data``) and ``--counterfactual NAME``."""
    if data:
        p.add_argument(
            "--data", metavar="FILE",
            help="your own prompt pairs (.jsonl or .csv, see docs/guide.md) instead of --task",
        )  # fmt: skip
    p.add_argument(
        "--counterfactual", metavar="NAME",
        help="which counterfactual prompt of MIB-style rows is the corrupted prompt",
    )  # fmt: skip


def add_changed_data_option(p: argparse.ArgumentParser) -> None:
    """``--allow-changed-data``, for the commands that reread a run's prompt file."""
    p.add_argument(
        "--allow-changed-data", action="store_true",
        help="use a prompt file whose bytes differ from the one the run was made with (by "
        "default refused: the run records the file's SHA-256)",
    )  # fmt: skip


def add_model_and_task(p: argparse.ArgumentParser, from_run: bool = False) -> None:
    """The options that choose the model, the prompts and how they are run (``discover`` and
    ``evaluate``); ``from_run``: no defaults, evaluate takes them from the graph's run."""
    from attribution import METRICS, ablations
    from circuits.models.zoo import DEFAULT_MODEL
    from circuits.tasks import task_names

    run = "the graph file's, else the run's (metrics.json beside GRAPH), else " if from_run else ""

    def default(value):
        return None if from_run else value

    p.add_argument(
        "--model", default=default(DEFAULT_MODEL),
        help=f"bundled model name, local model folder or Hugging Face Hub name (default: {run}{DEFAULT_MODEL}, bundled, offline)",
    )  # fmt: skip
    p.add_argument(
        "--task", default=None,  # None: ioi, unless --data (or the run) gives the prompts
        help=f"task: {', '.join(task_names())} (default: {run}ioi)",
    )  # fmt: skip
    add_data_options(p)  # --data FILE, --counterfactual NAME
    p.add_argument(
        "--metric", choices=sorted(METRICS), help=f"metric (default: {run}the task's own)"
    )
    p.add_argument(
        # read now: ablations registered after import count too
        "--ablation", default=default("patching"), choices=ablations.names(),
        help="how edges outside the circuit are removed: "
        + "; ".join(f"{name}: {ablations.get(name).description}" for name in ablations.names())
        + f" (default: {run}patching with the corrupted prompt)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=default(0),
        help=f"seed of the prompts and the random baseline (default: {run}0)",
    )  # fmt: skip
    _add_run_options(p)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Batch size, device, dtype, device map and --quiet."""
    from circuits.app.discovery import DTYPES

    p.add_argument(
        "--batch-size", type=int, default=16, help="examples per forward pass (default: 16)"
    )
    p.add_argument("--device", help="torch device, e.g. cuda (default: where the model loads)")
    p.add_argument(
        "--dtype", choices=list(DTYPES),
        help="load the model in this dtype, e.g. bfloat16 for billion-parameter models (default: as stored)",
    )  # fmt: skip
    p.add_argument(
        "--device-map", metavar="MAP",
        help="spread the layers of a model too large for one GPU: a Hugging Face device_map such as auto or balanced (needs accelerate; not with --device)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def one_prompt_source(args: argparse.Namespace) -> None:
    """--task and --data both name the prompts: refuse both at once rather than pick one."""
    if args.task is not None and args.data is not None:
        raise UsageError(
            f"pass either --task ({args.task}) or --data ({args.data}), not both: each names the prompts"
        )


def check_graph_file(path: Path) -> None:
    """UsageError unless ``path`` is an existing file in a format the commands read."""
    from graphs.io import readable_suffixes

    if not path.is_file():
        raise UsageError(f"graph file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in readable_suffixes():
        found = f"the suffix {suffix!r}" if suffix else "no suffix"
        dot = (
            " (DOT is written by `circuits export --format dot`, not read back)"
            if suffix == ".dot"
            else ""
        )
        raise UsageError(
            f"{path}: graph files end in .graphml, .json or .safetensors, this one has {found}"
            f"{dot}; pass the graph.graphml, graph.json or scores.safetensors of a run folder"
        )


def check_run_dir(run_dir: Path) -> None:
    """UsageError unless ``run_dir`` is a folder (a run folder argument)."""
    if not run_dir.is_dir():
        raise UsageError(
            f"run folder {run_dir} does not exist; run `circuits discover --out {run_dir}` first"
        )
