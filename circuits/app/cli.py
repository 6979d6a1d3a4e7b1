"""The ``circuits`` command line: discover, evaluate, export and report.

Exit codes: 0 success, 2 bad usage or input (unknown task/model/method, unusable output
folder, a graph of another model, ...), 1 any other failure. Errors are one line on stderr
starting with ``error:``; nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from graphs.errors import CircuitDiscoveryError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(CircuitDiscoveryError):
    """Bad input found by the command itself (exit code 2)."""


def _target(text: str) -> tuple[float, float | None]:
    """``0.9`` (f ≥ 0.9) or ``0.9:1.1`` (a band)."""
    try:
        if ":" in text:
            lo, hi = text.split(":", 1)
            return float(lo), float(hi)
        return float(text), None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"target must be a number like 0.9 or a band like 0.9:1.1, got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    from attribution import ABLATIONS, METRICS, RULES
    from attribution.methods import method_names
    from circuits.app.discovery import DTYPES
    from circuits.models.zoo import DEFAULT_MODEL
    from circuits.tasks import TASK_NAMES

    parser = argparse.ArgumentParser(
        prog="circuits",
        description="Find and check faithful circuits in transformer language models.",
        epilog="Run `circuits COMMAND --help` for a command's options. Exit codes: 0 ok, 2 bad input, 1 failure.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def model_and_task(p: argparse.ArgumentParser, from_run: bool = False) -> None:
        # evaluate takes what it is not told from the run record beside the graph file
        run = "the run's (metrics.json beside GRAPH), else " if from_run else ""

        def default(value):
            return None if from_run else value

        p.add_argument(
            "--model", default=default(DEFAULT_MODEL),
            help=f"bundled model name, local model folder or Hugging Face Hub name (default: {run}{DEFAULT_MODEL}, bundled, offline)",
        )  # fmt: skip
        p.add_argument(
            "--task", default=default("ioi"),
            help=f"task: {', '.join(TASK_NAMES)} (default: {run}ioi)",
        )  # fmt: skip
        p.add_argument(
            "--metric", choices=sorted(METRICS), help=f"metric (default: {run}the task's own)"
        )
        p.add_argument(
            "--ablation", default=default("patching"), choices=ABLATIONS,
            help=f"how edges outside the circuit are removed (default: {run}patching with the corrupted prompt)",
        )  # fmt: skip
        p.add_argument(
            "--seed", type=int, default=default(0),
            help=f"seed of the prompts and the random baseline (default: {run}0)",
        )  # fmt: skip
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

    d = sub.add_parser(
        "discover", help="score edges, find the minimal faithful circuit, evaluate it, write a report",
        description="Score every edge on the task's train split, find the smallest top-scoring circuit whose "
        "faithfulness reaches --target, measure it on the held-out test split, and write a run folder "
        "(graph.graphml, graph.json, scores.safetensors, metrics.json, figures, report.md, report.html).",
    )  # fmt: skip
    model_and_task(d)
    d.add_argument(
        "--method",
        default="eap-ig-inputs",
        choices=method_names(),  # read now: methods registered after import count too
        help="edge scoring method (default: eap-ig-inputs)",
    )
    d.add_argument("--steps", type=int, default=5, help="integrated-gradients steps (default: 5)")
    d.add_argument(
        "--memory-budget-gb", type=float, default=4.0, metavar="GB",
        help="memory attribution may use besides the weights; sets the rows per pass and, if needed, "
        "builds the activation differences a chunk of nodes at a time (default: 4)",
    )  # fmt: skip
    d.add_argument(
        "--quadrature",
        default="riemann_left",
        choices=RULES,
        help="integrated-gradients rule (default: riemann_left)",
    )
    d.add_argument(
        "--target",
        type=_target,
        default=(0.9, None),
        help="faithfulness to reach: 0.9, or a band 0.9:1.1 (default: 0.9)",
    )
    d.add_argument(
        "--n-examples",
        type=int,
        default=100,
        help="prompts for scoring and search (train split, default: 100)",
    )
    d.add_argument(
        "--n-eval",
        type=int,
        default=100,
        help="held-out prompts for evaluation (test split, default: 100)",
    )
    d.add_argument(
        "--out",
        type=Path,
        default=Path("circuit_run"),
        help="run folder to write (default: circuit_run)",
    )
    d.add_argument(
        "--overwrite", action="store_true", help="replace an existing non-empty run folder"
    )

    e = sub.add_parser(
        "evaluate", help="faithfulness of a saved circuit",
        description="Measure the faithfulness of the circuit stored in GRAPH (its in-circuit edges) on a task.",
    )  # fmt: skip
    e.add_argument("graph", type=Path, help="graph file (.graphml, .json or .safetensors)")
    model_and_task(e, from_run=True)
    e.add_argument(
        "--n-examples", type=int, default=100, help="prompts to evaluate on (default: 100)"
    )
    e.add_argument(
        "--split", default="test", choices=("train", "test"), help="task split (default: test)"
    )
    e.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for the interval (default: 1000)",
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON")

    x = sub.add_parser(
        "export",
        help="convert a graph file",
        description="Write GRAPH as GraphML, JSON or Graphviz DOT.",
    )
    x.add_argument("graph", type=Path, help="graph file (.graphml, .json or .safetensors)")
    x.add_argument(
        "--format", required=True, choices=("graphml", "json", "dot"), help="output format"
    )
    x.add_argument("--out", type=Path, help="output file (default: GRAPH with the new suffix)")
    x.add_argument(
        "--all-edges", action="store_true", help="DOT only: every edge, not just the circuit"
    )
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    r = sub.add_parser(
        "report",
        help="(re)build report.md and report.html of a run folder",
        description="Rebuild the report of a run folder from its metrics.json and figures.",
    )
    r.add_argument("run_dir", type=Path, help="run folder written by `circuits discover`")
    return parser


def _discover(args: argparse.Namespace, argv: list[str]) -> int:
    from circuits.app.discovery import DiscoverySettings, discover

    settings = DiscoverySettings(
        model=args.model, task=args.task, method=args.method, steps=args.steps, quadrature_rule=args.quadrature,
        metric=args.metric, ablation=args.ablation, target=args.target, n_examples=args.n_examples,
        n_eval=args.n_eval, seed=args.seed, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, device_map=args.device_map, memory_budget_gb=args.memory_budget_gb,
    )  # fmt: skip
    metrics = discover(
        settings,
        args.out,
        overwrite=args.overwrite,
        quiet=args.quiet,
        command="circuits " + shlex.join(argv),
    )
    from circuits.app.checks import summary_text

    print(summary_text(metrics))
    print(
        f"wrote {args.out}/ (report: {args.out / 'report.html'}) in {metrics['timings']['total_s']:.1f}s"
    )
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from circuits.app.discovery import DiscoverySettings, load_for_task
    from circuits.search.faithfulness import evaluate
    from circuits.tasks import encode_examples, get_task
    from graphs import Graph

    if not args.graph.is_file():
        raise UsageError(f"graph file {args.graph} does not exist")
    _defaults_from_run(args)
    settings = DiscoverySettings(
        model=args.model,
        task=args.task,
        metric=args.metric,
        ablation=args.ablation,
        n_eval=args.n_examples,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
    )
    settings.check()
    graph = Graph.load(args.graph)
    bridge, tokenizer, _ = load_for_task(
        args.model, args.device, dtype=args.dtype, device_map=args.device_map
    )
    graph.check_compatible(bridge)
    task = get_task(args.task)
    data = encode_examples(
        task.examples(args.n_examples, seed=args.seed, split=args.split), tokenizer
    )
    mean_data = None
    if args.ablation == "mean":
        mean_data = encode_examples(
            task.examples(args.n_examples, seed=args.seed, split="train"), tokenizer
        )
    faith = evaluate(
        bridge, graph, data, settings.task_metric, ablation=args.ablation, mean_data=mean_data,
        batch_size=args.batch_size, bootstrap=args.bootstrap, seed=args.seed, quiet=args.quiet,
    )  # fmt: skip
    result = {
        "graph": str(args.graph), "model": args.model, "task": task.name, "metric": settings.task_metric,
        "split": args.split, "n_examples": faith.n_examples, "n_edges": faith.n_edges, "f": faith.f,
        "ci": list(faith.ci) if faith.ci else None, "m_full": faith.m_full, "m_circuit": faith.m_circuit,
        "m_empty": faith.m_empty, "random_f": faith.random_f,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        ci = f" [{faith.ci[0]:.3f}, {faith.ci[1]:.3f}]" if faith.ci else ""
        print(
            f"{faith.n_edges} edges: faithfulness {faith.f:.4f}{ci} on {faith.n_examples} {args.split} prompts of {task.name}; "
            f"m(M) {faith.m_full:.4g}, m(C) {faith.m_circuit:.4g}, m(empty) {faith.m_empty:.4g}, random circuit f {faith.random_f:.4f}"
        )
    return EXIT_OK


def _defaults_from_run(args: argparse.Namespace) -> None:
    """Fill the options the user did not give (model, task, metric, ablation, seed) from the
    run record beside a graph file written by ``circuits discover``, else the usual defaults."""
    from circuits.app.run import METRICS_FILE, RunFileError, RunRecord
    from circuits.models.zoo import DEFAULT_MODEL

    record = None
    if (args.graph.parent / METRICS_FILE).is_file():
        try:
            record = RunRecord.load(args.graph.parent)
        except RunFileError:
            record = None  # a folder with some other metrics.json: not a run of ours
    recorded = {}
    if record is not None:
        recorded = {
            "model": record.model.get("name"),
            "task": record.task.get("name"),
            "metric": record.settings.get("metric"),
            "ablation": record.settings.get("ablation"),
            "seed": record.task.get("seed"),
        }
    fallback = {"model": DEFAULT_MODEL, "task": "ioi", "ablation": "patching", "seed": 0}
    for name in ("model", "task", "metric", "ablation", "seed"):
        if getattr(args, name) is None:
            value = recorded.get(name)
            setattr(args, name, value if value is not None else fallback.get(name))


def _export(args: argparse.Namespace) -> int:
    from graphs import Graph
    from graphs.dot_io import save_dot

    if not args.graph.is_file():
        raise UsageError(f"graph file {args.graph} does not exist")
    out = args.out or args.graph.with_suffix("." + args.format)
    if out.resolve() == args.graph.resolve():
        raise UsageError(f"{args.graph} is already {args.format}; pass --out to write a copy")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    graph = Graph.load(args.graph)
    if args.format == "dot":
        save_dot(graph, out, only_in_graph=not args.all_edges)
    else:
        graph.save(out, format=args.format)
    print(f"wrote {out}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from circuits.app.report import write_report

    if not args.run_dir.is_dir():
        raise UsageError(
            f"run folder {args.run_dir} does not exist; run `circuits discover --out {args.run_dir}` first"
        )
    md, html = write_report(args.run_dir)
    print(f"wrote {md} and {html}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``circuits`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)  # exits 2 on bad usage
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars

    from attribution.distributed import init_from_environment, is_main_process

    init_from_environment()  # under torchrun: join the process group; rank 0 prints
    if not is_main_process():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the other ranks' output
    try:
        return _run(args, argv)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    # every error the project raises on purpose is bad input or a model it cannot use: exit 2
    try:
        if args.command == "discover":
            return _discover(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "export":
            return _export(args)
        return _report(args)
    except CircuitDiscoveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
