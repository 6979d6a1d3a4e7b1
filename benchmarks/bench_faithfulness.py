"""Speed of faithfulness evaluation against plain forward passes.

Run (from the repository root)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_faithfulness [--models gpt2-small,4L-256]
        [--edges 1000] [--repeats 3] [--threads N]

For each model (the same random GPT-2 shapes and data as ``bench_attribution``: 8 prompt pairs
of 32 tokens, batch 8) it times, in one process:

- two plain no-grad forward passes of the Hugging Face model (a deep copy made before
  bridging): the baseline;
- ``CircuitEvaluator`` set-up (the clean and corrupted runs that every evaluation shares);
- one evaluation of a circuit of ``--edges`` edges (the top edges of random scores): one
  patched forward pass per batch, every edge outside the circuit ablated;
- ``evaluate()`` from scratch (set-up + the circuit + the empty circuit, no bootstrap, no
  random baseline), as a user calling it once would pay;
- a whole 10-point faithfulness curve (MIB's sizes) from scratch.

It prints each time and its ratio over the two plain forward passes. Target (issue): one
faithfulness evaluation of a 1,000-edge circuit on the GPT-2-small shape ≤ 1.5× two plain
forward passes; ``evaluate()`` from scratch runs clean + corrupted + circuit + empty passes, so
its natural bound is 4 forwards (2× the baseline).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from benchmarks.bench_attribution import (
    BATCH,
    MODELS,
    build,
    cpu_model,
    default_threads,
    loadavg,
    make_data,
    plain_forward,
)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, n_edges: int, repeats: int) -> list[tuple[str, float, float]]:
    from circuits import CircuitEvaluator, evaluate, faithfulness_curve, load_model
    from graphs import Graph

    hf = build(name)
    plain = copy.deepcopy(hf)
    model = load_model(hf)
    graph = Graph.from_model(model)
    data = make_data(BATCH, int(model.cfg.d_vocab))
    graph.set_scores(
        torch.randn(graph.n_forward, graph.n_backward, generator=torch.Generator().manual_seed(0))
    )
    order = graph.ranked_edge_indices()[:n_edges]
    mask = torch.zeros(graph.real_edges.numel(), dtype=torch.bool)
    mask[order] = True
    mask = mask.view_as(graph.real_edges)
    graph.set_in_graph(mask)

    forward = plain_forward(plain, data)
    base = timed(lambda: (forward(), forward()), repeats)
    rows = [("2 plain forwards (baseline)", base, 1.0)]
    start = time.perf_counter()
    evaluator = CircuitEvaluator(model, graph, data, batch_size=BATCH)
    setup = time.perf_counter() - start
    rows.append(("evaluator set-up (clean + corrupted + empty)", setup, setup / base))
    one = timed(lambda: evaluator.metrics([mask]), repeats)
    rows.append((f"one evaluation, {n_edges}-edge circuit", one, one / base))
    full = timed(
        lambda: evaluate(model, graph, data, bootstrap=0, random_baseline=False, batch_size=BATCH),
        max(1, repeats // 2),
    )
    rows.append(("evaluate() from scratch", full, full / base))
    curve = timed(lambda: faithfulness_curve(model, graph, data, batch_size=BATCH), 1)
    rows.append(("10-point curve from scratch", curve, curve / base))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_faithfulness", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--models", default="gpt2-small,4L-256", help=f"comma-separated, from {sorted(MODELS)}"
    )
    parser.add_argument(
        "--edges", type=int, default=1000, help="circuit size for the single evaluation"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats per case (median reported)"
    )
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {cpu_model()}, load {loadavg()}")
    for name in args.models.split(","):
        print(f"\n{name}")
        print(f"  {'case':48s} {'seconds':>9s} {'ratio':>7s}")
        for case, seconds, ratio in bench(name, args.edges, args.repeats):
            verdict = ""
            if case.startswith("one evaluation") and name == "gpt2-small":
                verdict = "PASS (target 1.5)" if ratio <= 1.5 else "FAIL (target 1.5)"
            print(f"  {case:48s} {seconds:9.3f} {ratio:7.2f}  {verdict}")
    print(f"load after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
