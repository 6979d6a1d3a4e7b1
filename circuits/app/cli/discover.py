"""``circuits discover``: score edges, find the minimal faithful circuit, evaluate it and write
a run folder. Its ``--{method}-*`` flags are built from each registered method's declared
options."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, UsageError, add_model_and_task, one_prompt_source

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Score every edge on the task's train split, find the smallest top-scoring circuit whose "
    "faithfulness reaches --target, measure it on the held-out test split, and write a run folder "
    "(graph.graphml, graph.json, scores.safetensors, metrics.json, figures, report.md, report.html)."
)


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


def add_arguments(d: argparse.ArgumentParser) -> None:
    """The options of ``circuits discover``."""
    from attribution import RULES
    from attribution.methods import method_names

    add_model_and_task(d)
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
    _add_search_options(d)


def _add_search_options(d: argparse.ArgumentParser) -> None:
    """--positions, the target, the prompt counts and the run folder."""
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


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the discovery job and print its summary; ``argv`` is recorded as the command."""
    from circuits.app.checks import summary_text
    from circuits.app.discovery import DiscoverySettings, discover

    one_prompt_source(args)
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
    print(summary_text(metrics))
    dropped = metrics.get("task", {}).get("n_duplicate_rows_dropped")
    if dropped:  # the split and every count above are of the rows left
        print(f"data: dropped {dropped} duplicate row(s) of {args.data} before the split "
              f"(circuits data check {args.data} lists them)")  # fmt: skip
    print(
        f"wrote {args.out}/ (report: {args.out / 'report.html'}) in {metrics['timings']['total_s']:.1f}s"
    )
    return EXIT_OK
