"""Position-aware attribution against position-agnostic, on the GPT-2-small shape (issue #17).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_positions [--threads 1] [--repeats 3]

A random-weight GPT-2 small (12 layers, 12 heads, d_model 768), a batch of 8 prompts of 32
tokens. For ``eap`` and ``eap-ig-inputs`` (5 steps) it times ``attribute`` without and with a
position axis (``with_positions(data, "tokens")``: 32 spans) in the same run, and prints

- ``aware/agnostic``: the time ratio (target <= 1.3);
- ``/bound``: time over the true lower bound ``k x T(forward+backward without parameter
  gradients: params frozen, gradient w.r.t. the input embeddings only) + 2 x T(forward)``,
  ``k`` = 1 for eap, ``steps`` for eap-ig-inputs (targets: eap <= 1.5, eap-ig-inputs <= 1.3);
- ``/tight``: time over the same bound with the plain passes unembedding only the metric
  position, as attribution's passes do (``attribution.passes.unembed_at``): what is left
  above 1 is attribution's own work (hooks, write and gradient buffers, the contraction) and
  the bridge's per-head forks;
- the peak RSS of each call (kernel high-water mark, reset before the call) and the
  predicted peak of :mod:`attribution.memory`.

Medians over ``--repeats`` calls after one warm-up. It is a measurement, not a test: it always
exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.bench_attribution import (
    _status_mb,
    build,
    make_data,
    plain_forward,
    plain_forward_backward,
    reset_peak,
)

CASES = (("eap", 1), ("eap-ig-inputs", 5))
TARGETS = {"aware/agnostic": 1.3, "eap": 1.5, "eap-ig-inputs": 1.3}


def median_time(fn, repeats: int) -> tuple[float, float | None]:
    """Median seconds of ``repeats`` calls after a warm-up, and the peak RSS growth (MB) of
    the warm-up call."""
    before = reset_peak()
    fn()
    peak = _status_mb("VmHWM")
    grown = None if before is None or peak is None else peak - before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from attribution import attribute
    from attribution.memory import attribution_peak_bytes
    from attribution.positions import with_positions
    from circuits import load_model
    from graphs import Graph

    hf = build("gpt2-small")
    data = make_data(args.examples, hf.config.vocab_size, n_pos=args.tokens)
    positioned = with_positions(data, "tokens")
    fwd, _ = median_time(plain_forward(hf, data), args.repeats)
    fb, _ = median_time(plain_forward_backward(hf, data, frozen=True), args.repeats)
    fwd_cut, _ = median_time(plain_forward(hf, data, metric_only=True), args.repeats)
    fb_cut, _ = median_time(
        plain_forward_backward(hf, data, frozen=True, metric_only=True), args.repeats
    )
    print(f"threads {args.threads}; batch {args.examples} x {args.tokens} tokens")
    print(f"forward {fwd:.3f} s; forward+backward without parameter gradients {fb:.3f} s")
    print(f"unembedding the metric position only: forward {fwd_cut:.3f} s, fwd+bwd {fb_cut:.3f} s")
    bridge = load_model(hf)
    graph = Graph.from_model(bridge)
    header = (
        f"{'method':<16}{'axis':<10}{'s':>8}{'/bound':>8}{'/tight':>8}{'peak MB':>9}{'pred MB':>9}"
    )
    print(header)
    for method, k in CASES:
        bound = k * fb + 2 * fwd
        tight = k * fb_cut + 2 * fwd_cut
        times = {}
        for axis, d in (("agnostic", data), ("tokens", positioned)):

            def call(d=d, method=method):
                attribute(
                    bridge, graph, d, method=method, steps=5, quiet=True,
                    batch_size=args.examples,
                )  # fmt: skip

            t, grown = median_time(call, args.repeats)
            times[axis] = t
            from attribution.methods import get_method

            pred = attribution_peak_bytes(
                bridge, graph, batch_size=args.examples, n_pos=args.tokens,
                rows=args.examples, method=get_method(method), n_spans=d.n_spans,
            )["total"] / 2**20  # fmt: skip
            grown_text = f"{grown:.0f}" if grown is not None else "-"
            print(
                f"{method:<16}{axis:<10}{t:>8.3f}{t / bound:>8.2f}{t / tight:>8.2f}"
                f"{grown_text:>9}{pred:>9.0f}"
            )
        ratio = times["tokens"] / times["agnostic"]
        verdict = "PASS" if ratio <= TARGETS["aware/agnostic"] else "FAIL"
        bound_verdict = "PASS" if times["tokens"] / bound <= TARGETS[method] else "FAIL"
        print(
            f"  {method}: aware/agnostic {ratio:.2f} ({verdict}, target <= 1.3); aware/bound "
            f"{times['tokens'] / bound:.2f} ({bound_verdict}, target <= {TARGETS[method]})"
        )


if __name__ == "__main__":
    main()
