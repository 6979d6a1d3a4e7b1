"""Compare attribution methods on the bundled models and tasks: CPR_log, CMD_log, minimal circuit,
time.

Run (from the repository root)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.compare_methods [--models toy-gpt2,toy-llama]
        [--tasks ioi,...] [--methods eap,ifr,...] [--n 100] [--json out.json]

or ``make compare`` (``COMPARE_ARGS="--models toy-gpt2 --tasks ioi"``). For every model, task and
method it builds the train and test splits exactly as ``circuits discover`` does (same
settings: ``n`` train and ``n`` test prompts, seed 0, corrupted-prompt patching, the task's
metric), scores the edges on the train split (timed), finds the minimal circuit with f ≥ 0.9
on the train split (:func:`circuits.search.minimal.minimal_circuit`) and measures the
faithfulness curve on the test split (:func:`circuits.search.faithfulness.faithfulness_curve`,
MIB's ten sizes): CPR_log (area under f over the log10 edge fraction rescaled to [0, 1]) and
CMD_log (area under |1 − f| on that axis; lower is better), not MIB's linear-axis CPR/CMD. Methods not registered (e.g. ``mask`` before that branch is
merged) and model/task pairs that cannot run are skipped with a note. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

DEFAULT_METHODS = (
    "eap",
    "eap-ig-inputs",
    "eap-ig-activations",
    "clean-corrupted",
    "ifr",
    "relp",
    "mask",
    "ensemble:eap-ig-inputs,ifr",
)


def compare(model_name: str, task: str, methods: list[str], n: int) -> tuple[list[dict], list[str]]:
    """One row per method for ``model_name`` on ``task``, and notes on what was skipped."""
    from attribution import RunSetup, attribute, get_method
    from attribution.ablations import as_ablation
    from circuits.app.discovery import DiscoverySettings, load_for_task
    from circuits.app.prompts import prompt_pairs
    from circuits.search.faithfulness import faithfulness_curve
    from circuits.search.minimal import minimal_circuit
    from graphs import Graph

    settings = DiscoverySettings(model=model_name, task=task, n_examples=n, n_eval=n, seed=0)
    settings.check()
    bridge, tokenizer, _ = load_for_task(model_name, settings.device)
    train, test, _ = prompt_pairs(settings, tokenizer)
    setup = RunSetup(settings.task_metric, as_ablation("patching"), settings.batch_size)
    rows, notes = [], []
    for name in methods:
        try:
            get_method(name)
        except ValueError:
            notes.append(f"{name}: not registered here, skipped")
            continue
        graph = Graph.from_model(bridge)
        start = time.perf_counter()
        result = attribute(bridge, graph, train, method=name, steps=settings.steps, setup=setup)
        seconds = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minimal = minimal_circuit(bridge, graph, train, target=0.9, setup=setup)
            curve = faithfulness_curve(
                bridge, graph, test, fractions=tuple(settings.fractions), setup=setup
            )
        rows.append(
            {
                "model": model_name,
                "task": task,
                "method": result.method,
                "cpr_log": curve.cpr_log,
                "cmd_log": curve.cmd_log,
                "minimal_edges": minimal.n_edges if minimal.reached else None,
                "minimal_f": minimal.f,
                "n_edges_total": int(graph.real_edges.sum()),
                "attribution_s": seconds,
            }
        )
    return rows, notes


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | task | method | CPR_log ↑ | CMD_log ↓ | minimal circuit (f ≥ 0.9, train) | time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        size = (
            f"{r['minimal_edges']} / {r['n_edges_total']} (f {r['minimal_f']:.3f})"
            if r["minimal_edges"] is not None
            else f"not reached (f {r['minimal_f']:.3f} with all edges)"
        )
        lines.append(
            f"| {r['model']} | {r['task']} | {r['method']} | {r['cpr_log']:.3f} | {r['cmd_log']:.3f} | "
            f"{size} | {r['attribution_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from circuits.tasks import TASK_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="toy-gpt2,toy-llama")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--methods", default=";".join(DEFAULT_METHODS), help="';'-separated")
    parser.add_argument("--n", type=int, default=100, help="train and test prompts (default 100)")
    parser.add_argument("--json", help="also write the rows and notes to this file")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(";") if m]
    rows, notes = [], []
    for model_name in args.models.split(","):
        for task in args.tasks.split(","):
            try:
                got, skipped = compare(model_name, task, methods, args.n)
            except Exception as err:  # a pair the model cannot run: note it, go on
                notes.append(f"{model_name} / {task}: skipped ({type(err).__name__}: {err})")
                continue
            rows += got
            notes += [f"{model_name} / {task}: {s}" for s in skipped]
            print(markdown(got), file=sys.stderr)
    print(markdown(rows))
    for note in dict.fromkeys(notes):
        print(f"- {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "notes": notes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
