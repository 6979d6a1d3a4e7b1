"""Speed of graph files and circuit selection on large model shapes (no model runs).

Run (from the repository root)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_graph_ops [--repeats 3] [--json out.json]

Times, best of ``--repeats``:

- save + load of a GPT-2-small graph (32,491 edges, random scores, ~30 % of edges in the
  circuit) as GraphML, JSON and safetensors;
- ``top_n(20,000)`` + ``threshold(2.0)`` + ``prune_dead_edges`` on the Llama-3-8B shape
  (805,681 edges);
- ``greedy(2,000)`` on the GPT-2-small shape.

Target (each): under 10 s on a 2-core CPU. These were wall-clock assertions in the tests; the
tests now check only the results, since a loaded test machine made the times meaningless.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from circuits.search.select import greedy, prune_dead_edges, threshold, top_n
from graphs import Graph, ModelSpec, load_graph, save_graph

TARGET_S = 10.0
GPT2_SMALL = ModelSpec(
    n_layers=12, n_heads=12, d_model=768, d_head=64, d_vocab=50257,
    architecture="GPT2LMHeadModel", model_name="gpt2",
)  # fmt: skip
LLAMA3_8B = ModelSpec(n_layers=32, n_heads=32, n_kv_heads=8)


def scored(spec: ModelSpec, seed: int = 0, in_graph: float = 0.0) -> Graph:
    """A graph of ``spec`` with N(0, 1) scores and a random ``in_graph`` share of edges."""
    graph = Graph(spec)
    gen = torch.Generator().manual_seed(seed)
    graph.set_scores(torch.randn(graph.n_forward, graph.n_backward, generator=gen))
    if in_graph:
        graph.set_in_graph(torch.rand(graph.scores.shape, generator=gen) < in_graph)
    return graph


def best_of(repeats: int, run: Callable[[Graph], object], make: Callable[[], Graph]) -> float:
    """Best time of ``run(graph)`` over ``repeats`` fresh graphs from ``make`` (not timed)."""
    times = []
    for _ in range(repeats):
        graph = make()
        start = time.perf_counter()
        run(graph)
        times.append(time.perf_counter() - start)
    return min(times)


def save_and_load(graph: Graph, path: Path) -> Graph:
    save_graph(graph, path)
    return load_graph(path)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the times here")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    graph = scored(GPT2_SMALL, seed=6, in_graph=0.3)
    with tempfile.TemporaryDirectory() as directory:
        for fmt in ("graphml", "json", "safetensors"):
            path = Path(directory) / f"gpt2.{fmt}"
            results[f"save+load {fmt}, GPT-2 small"] = best_of(
                args.repeats, lambda g, path=path: save_and_load(g, path), lambda: graph
            )

    def select(big: Graph) -> None:  # each step on the previous one's circuit, as before
        big.set_circuit(top_n(big, 20_000))
        big.set_circuit(threshold(big, 2.0))
        prune_dead_edges(big)

    results["top_n + threshold + prune_dead, Llama-3-8B"] = best_of(
        args.repeats, select, lambda: scored(LLAMA3_8B)
    )
    results["greedy(2000), GPT-2 small"] = best_of(
        args.repeats, lambda g: greedy(g, 2000, prune_dead=False), lambda: scored(GPT2_SMALL)
    )
    for case, seconds in results.items():
        flag = "" if seconds < TARGET_S else f"  (over the {TARGET_S:.0f} s target)"
        print(f"{case:48s} {seconds:7.2f} s{flag}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
