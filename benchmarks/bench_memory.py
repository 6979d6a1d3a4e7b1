"""Peak memory of attribution against the prediction, for several node chunks.

Run (from the repository root)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_memory [--chunks none,16,4,1]
        [--method eap] [--json out.json]

Each chunk runs in a fresh process. The measured peak of one :func:`attribution.attribute`
call is the kernel's resident-memory high-water mark (``VmHWM``) after the call minus the RSS
just before it, the high-water mark reset first (``bench_attribution.reset_peak``); it is
printed next to :func:`attribution.memory.attribution_peak_bytes` (the same formula
``attribute`` prints before it starts). The model is a random GPT-2 shape whose write buffers are a large share
of the peak (6 layers × 8 heads, width 256, 16 prompts of 64 tokens, float32), so the effect
of chunking shows. Linux only (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPE = dict(n_layers=6, n_heads=8, d_model=256, d_mlp=1024, vocab_size=512, max_positions=64)
N_EXAMPLES, N_POS = 16, 64


def measure(chunk: int | None, method: str) -> dict:
    """Predicted and measured peak bytes of one attribution call in this process."""
    import torch

    from attribution import attribute
    from attribution.memory import attribution_peak_bytes
    from benchmarks.bench_attribution import _status_mb, make_data, reset_peak
    from circuits.models import load_model
    from circuits.models.random import random_hf_model
    from graphs import Graph

    torch.set_num_threads(1)
    model = load_model(random_hf_model("GPT2LMHeadModel", seed=0, **SHAPE))
    data = make_data(N_EXAMPLES, SHAPE["vocab_size"], n_pos=N_POS)
    graph = Graph.from_model(model)
    kwargs = dict(method=method, steps=2, batch_size=N_EXAMPLES, node_chunk=chunk, quiet=True)
    attribute(model, graph, data.select(slice(0, 2)), **kwargs)  # warm-up: allocator, caches
    before_mb = reset_peak()
    if before_mb is None:
        raise RuntimeError("measuring a peak needs a writable /proc/self/clear_refs (Linux)")
    start = time.perf_counter()
    result = attribute(model, graph, data, **kwargs)
    seconds = time.perf_counter() - start
    measured = (_status_mb("VmHWM") - before_mb) * 2**20
    predicted = attribution_peak_bytes(
        model,
        graph,
        batch_size=N_EXAMPLES,
        n_pos=N_POS,
        rows=result.settings["max_rows"],
        method=method,
        node_chunk=chunk,
    )
    return {
        "chunk": chunk,
        "method": method,
        "measured_bytes": int(measured),
        "predicted_bytes": predicted["total"],
        "predicted_parts": predicted,
        "seconds": round(seconds, 3),
        "n_forward": graph.n_forward,
    }


def run_isolated(chunk: int | None, method: str) -> dict:
    """:func:`measure` in a fresh Python process (peak RSS is per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", "--one", str(chunk), "--method", method],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", default="none,16,4,1", help="node chunks, 'none' for all nodes")
    parser.add_argument("--method", default="eap", help="eap, clean-corrupted or eap-ig-inputs")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one chunk here
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(None if args.one == "None" else int(args.one), args.method)))
        return 0
    rows = []
    for text in args.chunks.split(","):
        chunk = None if text.strip().lower() == "none" else int(text)
        row = run_isolated(chunk, args.method)
        rows.append(row)
        ratio = row["measured_bytes"] / row["predicted_bytes"]
        print(
            f"{args.method} node_chunk={str(chunk):>5}: measured peak {row['measured_bytes'] / 2**20:7.1f} MiB, "
            f"predicted {row['predicted_bytes'] / 2**20:7.1f} MiB (measured/predicted {ratio:.2f}), {row['seconds']:.1f} s"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
