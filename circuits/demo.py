"""Smoke demo: build the full edge graph of a small model and write it to disk.

Runs offline: the model is a randomly initialised GPT-2-architecture network built from a
config (the bundled trained models and the full ``circuits discover`` job come later).

    python -m circuits.demo --out demo_out
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from graphs import Graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m circuits.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (created)"
    )
    parser.add_argument(
        "--architecture", default="GPT2LMHeadModel", help="architecture of the random model"
    )
    parser.add_argument("--layers", type=int, default=4, help="number of layers")
    parser.add_argument("--heads", type=int, default=4, help="attention heads per layer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)

    from circuits.models import ModelLoadError, load_model
    from circuits.random_models import random_hf_model

    start = time.perf_counter()
    try:
        hf_model = random_hf_model(
            args.architecture,
            n_layers=args.layers,
            n_heads=args.heads,
            d_model=16 * args.heads,
            seed=args.seed,
        )
        model = load_model(hf_model)
    except (ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    graph = Graph.from_model(model)
    args.out.mkdir(parents=True, exist_ok=True)
    for suffix in ("graphml", "json", "safetensors"):
        graph.save(args.out / f"graph.{suffix}")
    elapsed = time.perf_counter() - start
    print(f"{graph}")
    print(f"  upstream nodes {graph.n_forward}, ports {graph.n_backward}, edges {graph.n_edges}")
    print(f"  wrote {args.out}/graph.graphml, graph.json, graph.safetensors in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
