"""The ``circuits`` command line: discover, evaluate, export, report, compare and serve.

Exit codes: 0 success, 2 bad usage or input (unknown task/model/method, unusable output
folder, a graph of another model, ...), 1 any other failure, 130 Ctrl-C (SIGINT), 143
SIGTERM. Errors are one line on stderr starting with ``error:``; nothing half-written is left
behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from graphs.errors import CircuitDiscoveryError

if TYPE_CHECKING:
    from circuits.search.faithfulness import Faithfulness

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(CircuitDiscoveryError):
    """Bad input found by the command itself (exit code 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs: temporary run folders and
    files are removed on the way out (Python's default SIGTERM ends the process at once)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


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


def _method_name(text: str) -> str:
    """``--method``: a registered method or an ensemble of them, checked at parse time."""
    from attribution.methods import get_method

    try:
        get_method(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _option_dest(method: str, option: str) -> str:
    return f"method_option:{method}:{option}"


def _method_option_flags(parser: argparse.ArgumentParser) -> None:
    """``--{method}-{flag}`` for each option a registered method declares with a flag (the
    registry is read now, so methods registered after import get theirs too)."""
    from attribution.methods import REGISTRY

    for cls in REGISTRY.values():
        for option in cls.options:
            if option.flag is None:
                continue
            default = option.default_text or str(option.default)
            parser.add_argument(
                f"--{cls.name}-{option.flag}", dest=_option_dest(cls.name, option.name),
                type=option.type, choices=option.choices, metavar=option.metavar,
                help=f"--method {cls.name}: {option.help} (default: {default})",
            )  # fmt: skip


def _method_options(args: argparse.Namespace) -> dict:
    """The chosen method's options from its ``--{method}-*`` flags (only those given) and
    ``--seed`` when it has a seed; UsageError for another method's flags."""
    from attribution.methods import REGISTRY

    chosen: dict = {}
    for cls in REGISTRY.values():
        names = [option.name for option in cls.options]
        given = {
            name: value for name in names
            if (value := getattr(args, _option_dest(cls.name, name), None)) is not None
        }  # fmt: skip
        if cls.name != args.method:
            if given:
                raise UsageError(f"--{cls.name}-* options go with --method {cls.name}")
            continue
        chosen = given
        if "seed" in names:  # a method's own randomness follows the run's --seed
            chosen["seed"] = args.seed
    return chosen


def _version() -> str:
    from circuits import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    from attribution import METRICS, RULES, ablations
    from attribution.methods import method_names
    from circuits.app.data_cli import add_data_options, data_parser
    from circuits.app.discovery import DTYPES
    from circuits.models.zoo import DEFAULT_MODEL
    from circuits.tasks import TASK_NAMES

    parser = argparse.ArgumentParser(
        prog="circuits",
        description="Find and check faithful circuits in transformer language models.",
        epilog="Run `circuits COMMAND --help` for a command's options. Exit codes: 0 ok, 2 bad input, 1 failure, "
        "130 Ctrl-C, 143 SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def model_and_task(p: argparse.ArgumentParser, from_run: bool = False) -> None:
        # evaluate takes what it is not told from the run record beside the graph file
        run = (
            "the graph file's, else the run's (metrics.json beside GRAPH), else "
            if from_run
            else ""
        )

        def default(value):
            return None if from_run else value

        p.add_argument(
            "--model", default=default(DEFAULT_MODEL),
            help=f"bundled model name, local model folder or Hugging Face Hub name (default: {run}{DEFAULT_MODEL}, bundled, offline)",
        )  # fmt: skip
        p.add_argument(
            "--task", default=None,  # None: ioi, unless --data (or the run) gives the prompts
            help=f"task: {', '.join(TASK_NAMES)} (default: {run}ioi)",
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
        type=_method_name,
        help="edge scoring method: one of "
        + ", ".join(method_names())  # read now: methods registered after import count too
        + ", or an ensemble 'ensemble:NAME,NAME,...' averaging the members' normalised ranks "
        "('ensemble-z:...' averages z-scores) (default: eap-ig-inputs)",
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
    _method_option_flags(d)
    d.add_argument(
        "--positions", choices=["tokens", "schema"],
        help="also find a position-aware circuit, edges per token position ('tokens': prompts of one "
        "length) or per named span ('schema': the task's span schema or the prompt file's spans), and "
        "compare it with the position-agnostic one (methods: eap, eap-ig-inputs, eap-ig-activations, "
        "clean-corrupted, relp, exact) (default: position-agnostic only)",
    )  # fmt: skip
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
        "--overwrite", action="store_true",
        help="replace an existing run folder (only one written by `circuits discover`: its metrics.json "
        "says it is; never the current folder, the home folder or a repository)",
    )  # fmt: skip

    e = sub.add_parser(
        "evaluate", help="faithfulness of a saved circuit",
        description="Measure the faithfulness of the circuit stored in GRAPH (its in-circuit edges) on a task. "
        "Options not given are taken from the graph file (task, metric, ablation, seed, model recorded by "
        "`circuits discover`), else from the metrics.json beside it; a model whose weights differ from the "
        "graph's is warned about.",
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
    e.add_argument(
        "--allow-mismatch", action="store_true",
        help="evaluate with a --task, --metric or --ablation other than the graph was found with "
        "(by default such a mismatch is refused)",
    )  # fmt: skip
    _changed_data_option(e)
    e.add_argument(
        "--json", action="store_true", help="print the result as JSON (warnings included)"
    )
    e.add_argument(
        "--curve", action="store_true",
        help="also faithfulness at MIB's ten sizes of GRAPH's top-scoring edges, with MIB's CPR "
        "and CMD (linear edge-fraction axis) and CPR_log and CMD_log (log10 size axis)",
    )  # fmt: skip

    x = sub.add_parser(
        "export",
        help="convert a graph file",
        description="Write GRAPH as GraphML, JSON or Graphviz DOT.",
    )
    x.add_argument("graph", type=Path, help="graph file (.graphml, .json or .safetensors)")
    x.add_argument(
        "--format", required=True, choices=("graphml", "json", "dot", "mib"),
        help="output format; mib: GRAPH may be a run folder, --out a folder (see docs/circuits.md)",
    )  # fmt: skip
    x.add_argument("--out", type=Path, help="output file (default: GRAPH with the new suffix)")
    x.add_argument(
        "--all-edges", action="store_true", help="DOT only: every edge, not just the circuit"
    )
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    data_parser(sub)

    r = sub.add_parser(
        "report",
        help="(re)build report.md and report.html of a run folder",
        description="Rebuild the report of a run folder from its metrics.json and figures.",
    )
    r.add_argument("run_dir", type=Path, help="run folder written by `circuits discover`")
    r.add_argument(
        "--data", metavar="FILE",
        help="check that FILE is the prompt file the run was made with (its SHA-256 as recorded)",
    )  # fmt: skip
    _changed_data_option(r)

    c = sub.add_parser(
        "compare", help="two runs side by side (compare.html)",
        description="Write compare.html: both circuits drawn side by side, their shared and "
        "different edges, each circuit's held-out f, the edge-set Jaccard index and the Spearman "
        "rank correlation of the two runs' scores.",
    )  # fmt: skip
    c.add_argument("run_a", type=Path, help="first run folder")
    c.add_argument("run_b", type=Path, help="second run folder (same model shape)")
    c.add_argument(
        "--out",
        type=Path,
        default=Path("compare.html"),
        help="page to write (default: compare.html)",
    )

    s = sub.add_parser(
        "serve", help="the run's explorer with live ablation, on a local web server",
        description="Serve RUN_DIR's explorer at http://127.0.0.1:PORT/?token=TOKEN (this machine only; "
        "requests without the printed token or with another Host are refused) and "
        "answer POST /faithfulness {\"edges\": [...]} by evaluating that edge set on the run's "
        "model and held-out prompts, so the page shows f, m(C) and the CI as you toggle edges. "
        "Ctrl-C stops it.",
    )  # fmt: skip
    s.add_argument("run_dir", type=Path, help="run folder written by `circuits discover`")
    s.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free one)")
    s.add_argument("--device", help="torch device for the model (default: where it loads)")
    s.add_argument(
        "--data", metavar="FILE",
        help="the run's prompt file, where it is now (default: the path the run recorded)",
    )  # fmt: skip
    _changed_data_option(s)

    b = sub.add_parser(
        "benchmark", help="score every method against the compiled ground-truth models",
        description="AUROC, minimal-circuit precision/recall, CPR/CMD and time of every attribution "
        "method on every compiled model (docs/ground_truth.md); writes benchmark.md, benchmark.json, roc.png.",
    )  # fmt: skip
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
    return parser


def _changed_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-changed-data", action="store_true",
        help="use a prompt file whose bytes differ from the one the run was made with (by "
        "default refused: the run records the file's SHA-256)",
    )  # fmt: skip


def _benchmark(args: argparse.Namespace) -> int:
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


def _one_prompt_source(args: argparse.Namespace) -> None:
    """--task and --data both name the prompts: refuse both at once rather than pick one."""
    if args.task is not None and args.data is not None:
        raise UsageError(
            f"pass either --task ({args.task}) or --data ({args.data}), not both: each names the prompts"
        )


def _discover(args: argparse.Namespace, argv: list[str]) -> int:
    from circuits.app.discovery import DiscoverySettings, discover

    _one_prompt_source(args)
    if args.task is None:
        args.task = "ioi"

    settings = DiscoverySettings(
        method_options=_method_options(args),
        model=args.model, task=args.task, method=args.method, steps=args.steps, quadrature_rule=args.quadrature,
        metric=args.metric, ablation=args.ablation, target=args.target, n_examples=args.n_examples,
        n_eval=args.n_eval, seed=args.seed, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, device_map=args.device_map, memory_budget_gb=args.memory_budget_gb,
        data=args.data, counterfactual=args.counterfactual, positions=args.positions,
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
    dropped = metrics.get("task", {}).get("n_duplicate_rows_dropped")
    if dropped:  # the split and every count above are of the rows left
        print(f"data: dropped {dropped} duplicate row(s) of {args.data} before the split "
              f"(circuits data check {args.data} lists them)")  # fmt: skip
    print(
        f"wrote {args.out}/ (report: {args.out / 'report.html'}) in {metrics['timings']['total_s']:.1f}s"
    )
    return EXIT_OK


def _random_text(faith: Faithfulness) -> str:
    """The random baseline as the report writes it: mean ± spread at the precision the spread
    supports (0.000 ± 0.000, not -7.9e-8), or the mean alone without a spread."""
    from circuits.app.curve_text import fixed, mean_pm

    if faith.random_f_std is None:
        return fixed(faith.random_f)
    return mean_pm(faith.random_f, faith.random_f_std)


def _evaluate(args: argparse.Namespace) -> int:
    from attribution.ablations import restore_ablation
    from circuits.app.discovery import DiscoverySettings, load_for_task
    from circuits.app.integrity import load_checked_graph
    from circuits.app.prompts import split_pairs
    from circuits.search.faithfulness import evaluate
    from graphs import ModelSpec

    _check_graph_file(args.graph)
    _one_prompt_source(args)
    graph = load_checked_graph(args.graph)
    _defaults_from_run(args, graph.metadata)
    settings = DiscoverySettings(
        model=args.model,
        task=args.task,
        metric=args.metric,
        ablation=args.ablation,
        n_eval=args.n_examples,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        data=args.data,
        counterfactual=args.counterfactual,
        seed=args.seed,
        # a position-aware circuit is evaluated per span, on prompts with its positions
        positions=graph.metadata.get("positions") if graph.position_in_graph is not None else None,
    )
    settings.check()
    bridge, tokenizer, _ = load_for_task(
        args.model, args.device, dtype=args.dtype, device_map=args.device_map
    )
    built_for = graph.spec.model_name
    named = f"--model {shlex.quote(built_for)}" if built_for not in ("", "external") else "--model"
    graph.check_compatible(
        bridge,
        fix=f"Pass {named}, the model it was built for, or find a circuit for {args.model} "
        f"with `circuits discover --model {shlex.quote(args.model)}`.",
    )
    warnings = []
    built = graph.spec.weights_fingerprint
    loaded = ModelSpec.from_model(bridge).weights_fingerprint
    if built and loaded and built != loaded:
        warnings.append(
            f"the weights of {args.model} differ from those the graph was built with "
            f"(fingerprint {loaded}, graph {built}); its scores and circuit may not apply"
        )
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    data, task = split_pairs(settings, tokenizer, args.split, args.n_examples)
    # built once (a fitting ablation's fit is the slow part) for f and the curve alike, from
    # as many train prompts as the run saved that it took its means from or fit on
    ablation = restore_ablation(
        {**graph.metadata, "ablation": args.ablation},
        lambda n: split_pairs(settings, tokenizer, "train", n or args.n_examples)[0],
        metric=settings.task_metric, seed=args.seed, quiet=args.quiet,
    )  # fmt: skip
    faith = evaluate(
        bridge, graph, data, settings.task_metric, ablation=ablation,
        batch_size=args.batch_size, bootstrap=args.bootstrap, seed=args.seed, quiet=args.quiet,
    )  # fmt: skip
    result = {
        "graph": str(args.graph), "model": args.model, "task": task["name"], "metric": settings.task_metric,
        "split": args.split, "n_examples": faith.n_examples, "n_edges": faith.n_edges, "f": faith.f,
        "ci": list(faith.ci) if faith.ci else None, "m_full": faith.m_full, "m_circuit": faith.m_circuit,
        "m_empty": faith.m_empty, "random_f": faith.random_f, "ablation": args.ablation,
        "seed": args.seed, "warnings": warnings,
    }  # fmt: skip
    if args.curve:
        from circuits.app.mib_export import mib_curve

        result["curve"] = mib_curve(
            bridge, graph, data, settings.task_metric, ablation=ablation,
            batch_size=args.batch_size,
        )  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        ci = f" [{faith.ci[0]:.3f}, {faith.ci[1]:.3f}]" if faith.ci else ""
        print(
            f"{faith.n_edges} edges: faithfulness {faith.f:.4f}{ci} on {faith.n_examples} {args.split} prompts of {task['name']}; "
            f"m(M) {faith.m_full:.4g}, m(C) {faith.m_circuit:.4g}, m(empty) {faith.m_empty:.4g}, random circuit f {_random_text(faith)}"
        )
        if args.curve:
            from circuits.app.curve_text import curve_line

            print(curve_line(result["curve"]))
    return EXIT_OK


def _defaults_from_run(args: argparse.Namespace, metadata: dict) -> None:
    """Fill the options the user did not give (model, task, metric, ablation, seed, and the
    prompt file with its counterfactual) from the graph file's metadata, else the run record
    beside it, else the usual defaults; refuse a task, metric or ablation that contradicts the
    graph's unless ``--allow-mismatch``, and a prompt file whose bytes differ from the run's
    unless ``--allow-changed-data``."""
    from circuits.app.integrity import check_prompt_file, recorded_prompt_sha256
    from circuits.app.run import METRICS_FILE, RunFileError, RunRecord
    from circuits.models.zoo import DEFAULT_MODEL

    names = ("model", "task", "metric", "ablation", "seed", "data", "counterfactual")
    recorded = {name: metadata.get(name) for name in names}
    if any(v is None for v in recorded.values()) and (args.graph.parent / METRICS_FILE).is_file():
        try:
            record = RunRecord.load(args.graph.parent)
        except RunFileError:
            record = None  # a folder with some other metrics.json: not a run of ours
        if record is not None:
            from_run = {
                "model": record.model.get("name"), "task": record.task.get("name"),
                "metric": record.settings.get("metric"), "ablation": record.settings.get("ablation"),
                "seed": record.task.get("seed"), "data": record.task.get("data_file"),
                "counterfactual": record.task.get("counterfactual"),
            }  # fmt: skip
            recorded = {k: v if v is not None else from_run[k] for k, v in recorded.items()}
    if args.task is not None or args.data is not None:  # the user chose the prompts
        recorded["data"] = recorded["counterfactual"] = None
    clashes = [
        f"--{name} {getattr(args, name)} (the graph's is {recorded[name]})"
        for name in ("task", "metric", "ablation")
        if getattr(args, name) is not None
        and recorded[name] is not None
        and getattr(args, name) != recorded[name]
    ]
    if clashes and not args.allow_mismatch:
        raise UsageError(
            f"{args.graph} was found with task {recorded['task']}, metric {recorded['metric']}, "
            f"ablation {recorded['ablation']}, but you asked for {', '.join(clashes)}; drop those "
            "options to evaluate it as it was found, or pass --allow-mismatch to evaluate it so anyway"
        )
    if args.task is not None and recorded["task"] is not None and args.task != recorded["task"]:
        recorded["metric"] = None  # another task: its own metric, not the graph's
    fallback = {"model": DEFAULT_MODEL, "task": "ioi", "ablation": "patching", "seed": 0}
    for name in names:
        if getattr(args, name) is None:
            value = recorded.get(name)
            setattr(args, name, value if value is not None else fallback.get(name))
    check_prompt_file(
        args.data, recorded_prompt_sha256(metadata, args.graph.parent),
        allow_changed=args.allow_changed_data,
    )  # fmt: skip


def _check_graph_file(path: Path) -> None:
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


def _export(args: argparse.Namespace) -> int:
    from circuits.app.integrity import load_checked_graph
    from graphs.dot_io import save_dot
    from graphs.io import save_graph

    if args.format == "mib":  # ten circuits in MIB's layout, into a folder
        from circuits.app.mib_export import export_mib_run

        paths = export_mib_run(args.graph, args.out, args.overwrite)
        print(f"wrote {len(paths)} MIB files to {paths[0].parent}")
        return EXIT_OK
    _check_graph_file(args.graph)
    out = args.out or args.graph.with_suffix("." + args.format)
    if out.resolve() == args.graph.resolve():
        raise UsageError(f"{args.graph} is already {args.format}; pass --out to write a copy")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    graph = load_checked_graph(args.graph)
    if args.format == "dot":
        save_dot(graph, out, only_in_graph=not args.all_edges)
    else:
        save_graph(graph, out, format=args.format)
    print(f"wrote {out}")
    return EXIT_OK


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise UsageError(
            f"run folder {run_dir} does not exist; run `circuits discover --out {run_dir}` first"
        )


def _report(args: argparse.Namespace) -> int:
    from circuits.app.explorer import update_run_folder
    from circuits.app.report import write_report

    _check_run_dir(args.run_dir)
    if args.data is not None:
        from circuits.app.integrity import check_run_prompt_file

        print(check_run_prompt_file(args.run_dir, args.data, args.allow_changed_data))
    written = update_run_folder(args.run_dir)  # supernodes in the circuit figure, explorer.html
    md, html = write_report(args.run_dir)
    print(f"wrote {', '.join(str(p) for p in [md, html, *written])}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from circuits.app.explorer import write_compare

    for run in (args.run_a, args.run_b):
        _check_run_dir(run)
    out, result = write_compare(args.run_a, args.run_b, args.out)
    fa, fb = result["a"]["f"], result["b"]["f"]
    jac, rho = result["jaccard"], result["spearman"]
    print(
        f"A: {result['a']['n_edges']} edges, f {fa if fa is None else round(fa, 4)}; "
        f"B: {result['b']['n_edges']} edges, f {fb if fb is None else round(fb, 4)}; "
        f"{len(result['shared'])} shared edges, Jaccard {jac if jac is None else round(jac, 4)}, "
        f"Spearman {rho if rho is None else round(rho, 4)}"
    )
    print(f"wrote {out}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import logging

    from circuits.app.serve import serve

    _check_run_dir(args.run_dir)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(
        args.run_dir, args.port, device=args.device, data=args.data,
        allow_changed_data=args.allow_changed_data,
    )  # fmt: skip
    return EXIT_OK


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
        if args.command == "benchmark":
            return _benchmark(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "data":
            from circuits.app.data_cli import run_data

            return run_data(args)
        return _report(args)
    except CircuitDiscoveryError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
