"""``circuits evaluate GRAPH``: the faithfulness of a saved circuit, with the options not given
taken from the graph file, else the run record beside it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.app.cli.common import (
    EXIT_OK,
    UsageError,
    add_changed_data_option,
    add_model_and_task,
    check_graph_file,
    one_prompt_source,
)

if TYPE_CHECKING:
    from circuits.app.discovery import DiscoverySettings
    from circuits.search.faithfulness import Faithfulness
    from graphs import Graph

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Measure the faithfulness of the circuit stored in GRAPH (its in-circuit edges) on a task. "
    "Options not given are taken from the graph file (task, metric, ablation, seed, model recorded by "
    "`circuits discover`), else from the metrics.json beside it; a model whose weights differ from the "
    "graph's is warned about."
)


def add_arguments(e: argparse.ArgumentParser) -> None:
    """The options of ``circuits evaluate``."""
    e.add_argument("graph", type=Path, help="graph file (.graphml, .json or .safetensors)")
    add_model_and_task(e, from_run=True)
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
    add_changed_data_option(e)
    e.add_argument(
        "--json", action="store_true", help="print the result as JSON (warnings included)"
    )
    e.add_argument(
        "--curve", action="store_true",
        help="also faithfulness at MIB's ten sizes of GRAPH's top-scoring edges, with MIB's CPR "
        "and CMD (linear edge-fraction axis) and CPR_log and CMD_log (log10 size axis)",
    )  # fmt: skip


def _random_text(faith: Faithfulness) -> str:
    """The random baseline as the report writes it: mean ± spread at the precision the spread
    supports (0.000 ± 0.000, not -7.9e-8), or the mean alone without a spread."""
    from circuits.app.curve_text import fixed, mean_pm

    if faith.random_f_std is None:
        return fixed(faith.random_f)
    return mean_pm(faith.random_f, faith.random_f_std)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Evaluate the circuit in ``args.graph`` and print the result (``--json``: as JSON)."""
    from attribution.ablations import restore_ablation
    from circuits.app.integrity import load_checked_graph
    from circuits.app.prompts import split_pairs
    from circuits.search.faithfulness import evaluate

    check_graph_file(args.graph)
    one_prompt_source(args)
    graph = load_checked_graph(args.graph)
    _defaults_from_run(args, graph.metadata)
    settings = _settings(args, graph)
    bridge, tokenizer, warnings = _load_model(args, graph)
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
    result = _result(args, task["name"], settings.task_metric, faith, warnings)
    if args.curve:
        from circuits.app.mib_export import mib_curve

        result["curve"] = mib_curve(
            bridge, graph, data, settings.task_metric, ablation=ablation,
            batch_size=args.batch_size,
        )  # fmt: skip
    _print_result(args, result, faith)
    return EXIT_OK


def _settings(args: argparse.Namespace, graph: Graph) -> DiscoverySettings:
    """The checked settings of the evaluation (those of the discovery job it repeats)."""
    from circuits.app.discovery import DiscoverySettings

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
    return settings


def _load_model(args: argparse.Namespace, graph: Graph) -> tuple[Any, Any, list[str]]:
    """The bridge and tokenizer of ``args.model``, refused unless ``graph`` fits it, and the
    warnings to print and report (weights other than those the graph was built with)."""
    from circuits.app.discovery import load_for_task
    from graphs import ModelSpec

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
    return bridge, tokenizer, warnings


def _result(
    args: argparse.Namespace, task: str, metric: str, faith: Faithfulness, warnings: list[str]
) -> dict[str, Any]:
    """What ``--json`` prints."""
    return {
        "graph": str(args.graph), "model": args.model, "task": task, "metric": metric,
        "split": args.split, "n_examples": faith.n_examples, "n_edges": faith.n_edges, "f": faith.f,
        "ci": list(faith.ci) if faith.ci else None, "m_full": faith.m_full, "m_circuit": faith.m_circuit,
        "m_empty": faith.m_empty, "random_f": faith.random_f, "ablation": args.ablation,
        "seed": args.seed, "warnings": warnings,
    }  # fmt: skip


def _print_result(args: argparse.Namespace, result: dict[str, Any], faith: Faithfulness) -> None:
    if args.json:
        print(json.dumps(result, indent=1))
        return
    ci = f" [{faith.ci[0]:.3f}, {faith.ci[1]:.3f}]" if faith.ci else ""
    print(
        f"{faith.n_edges} edges: faithfulness {faith.f:.4f}{ci} on {faith.n_examples} {args.split} prompts of {result['task']}; "
        f"m(M) {faith.m_full:.4g}, m(C) {faith.m_circuit:.4g}, m(empty) {faith.m_empty:.4g}, random circuit f {_random_text(faith)}"
    )
    if args.curve:
        from circuits.app.curve_text import curve_line

        print(curve_line(result["curve"]))


def _defaults_from_run(args: argparse.Namespace, metadata: dict) -> None:
    """Fill the options the user did not give (model, task, metric, ablation, seed, and the
    prompt file with its counterfactual) from the graph file's metadata, else the run record
    beside it, else the usual defaults; refuse a task, metric or ablation that contradicts the
    graph's unless ``--allow-mismatch``, and a prompt file whose bytes differ from the run's
    unless ``--allow-changed-data``."""
    from circuits.app.integrity import check_prompt_file, recorded_settings
    from circuits.models.zoo import DEFAULT_MODEL

    recorded = recorded_settings(metadata, args.graph.parent)  # one lookup, the hash's too
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
    for name in ("model", "task", "metric", "ablation", "seed", "data", "counterfactual"):
        if getattr(args, name) is None:
            value = recorded.get(name)
            setattr(args, name, value if value is not None else fallback.get(name))
    check_prompt_file(args.data, recorded["data_sha256"], allow_changed=args.allow_changed_data)
