"""Speed and memory of edge attribution against the plain Hugging Face model.

README
======
Run (from the repository root)::

    make bench                                   # full run, both models (~10 min on 2 cores)
    make bench BENCH_ARGS="--quick"              # ~3 min: fewer repeats, skips the slowest cases
    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_attribution [--quick] [--json out.json]
        [--models gpt2-small,4L-256] [--threads N] [--profile] [--examples N] [--tokens P]
        [--reference]

``--reference`` times the workload the reference EAP-IG implementation was timed on (16
prompt pairs x 24 tokens, batch 8) and prints each method's time over the plain
forward+backward pass next to the reference's same ratio (its published times are in
``REFERENCE_S``); the ratio, unlike seconds, carries over between machines.

What it does. Two randomly initialised GPT-2 models (``circuits.random_hf_model``):
``gpt2-small`` (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50257) and ``4L-256``
(4 layers, d_model 256, 4 heads, d_mlp 1024, vocab 50257); 8 random clean/corrupted prompt
pairs of 32 tokens with a random answer and distractor each, batch 8. For each model, in one
process: a deep copy of the Hugging Face model made *before* bridging is timed for a no-grad
forward pass and for forward+backward of ``-logit_diff`` at the last position into the
parameters (a training step without the optimiser), and, for information only, forward+backward
with frozen parameters (activation gradients only, as attribution does); then
``attribution.attribute(..., "logit_diff", batch_size=8)`` on the bridged model for ``eap``,
``eap-ig-inputs`` (5 and 20 steps) and ``eap-ig-activations`` (5 steps); then the plain
model again. ``--quick`` skips ``eap-ig-inputs`` (20 steps) and ``eap-ig-activations`` (125
gradient passes, about 4 minutes) on ``gpt2-small``.

IG stacks up to ``batch_size x steps`` rows into one pass; the library lowers that to what fits
its ``memory_budget_gb`` (default 4 GB). The note column gives the rows per pass it chose
(``max_rows``), which sets both the memory and, on CPU, the speed of the IG cases.

Times are wall-clock medians of ``n`` repeats after one untimed warm-up call (cases whose
estimated cost is above a limit skip the separate warm-up: the earlier cases on the same model
already ran the same code and kernel shapes). The number of repeats is chosen from the warm-up
time so each case fits a time budget. The plain model is timed before and after the attribution
cases and the repeats are pooled. Repeats during which other processes took the CPU (``wait%``
above 10, see below) are left out of the median (``n`` then reads ``used/run``); cheap cases
are repeated up to 3 more times if every repeat was contended.

Ratios. A method that needs ``k`` gradient evaluations of the metric cannot be faster than
``lower bound = k x T(frozen forward+backward) + 2 x T(plain forward)``: the two forwards read
the clean and corrupted activations, and each gradient evaluation is at least one forward and
backward pass of the model. ``k`` is 1 for ``eap``, ``steps`` for ``eap-ig-inputs`` and
``(2L+1) x steps`` for ``eap-ig-activations`` (one integral per writer site: the input, and
each layer's heads and MLP). ``ratio = time / lower bound``; the targets are ``eap <= 1.5`` and
``eap-ig-inputs <= 1.3`` (PASS/FAIL is printed; the script always exits 0, it is a
measurement). The frozen forward+backward (parameters' ``requires_grad`` off, the gradient
taken w.r.t. the input embeddings only) is what each gradient evaluation of attribution needs
at least; until issue #17 the bound used the plain training-step backward, which also computes
parameter gradients and so made the ratios look lower than they are. On a shared 2-core machine, medians move by 20-30% from one run to
the next even with ``wait%`` near 0, so a ratio within ~0.2 of its target can flip between runs.

Memory. ``peak MB`` is the kernel's RSS high-water mark (``VmHWM`` in ``/proc/self/status``)
during one call, after resetting it (``echo 5 > /proc/self/clear_refs``) just before the call;
``+MB`` is that peak minus the RSS right before the call, measured after ``gc.collect()`` and
``malloc_trim(0)`` so memory freed by earlier cases is given back to the OS and not silently
reused. The peak is exact (the kernel tracks it; no sampling), is taken on the first call of a
case (its warm-up), and covers the whole process (both copies of the model are resident).
``tracemalloc`` does not see torch's allocations, so it is not used. On systems without
``clear_refs`` the per-case peak is reported as n/a.
Allocator state moves these in-process peaks by a few hundred MB from one call to the next
(glibc's dynamic mmap threshold, raised to 32 MB once large blocks have been freed, serves later
tensors from a fragmented heap): compare them to about +-250 MB.

The scaling check runs ``eap-ig-inputs`` (5 steps) on ``4L-256`` with 8, 32 and 64 examples
(batch 8), each in a fresh process, so allocator state left by earlier cases cannot mask or fake
growth: the peak (as above) must not grow with the number of examples. ``ru_maxrss``
(``resource.getrusage``) is printed too, but in a fresh process it is set by building the
model, before the call, so it cannot show the call's peak. (Measured in one long-running
process after the 12-layer model, peaks moved by up to 250 MB with no trend in the number of
examples, e.g. +922, +1147, +933, +1148 MB for 8, 32, 64, 128 examples; with the gc disabled in
a fresh process they were flat, +906, +897, +902 MB for 8, 16, 32: nothing is kept per example.)

Contention. ``wait%`` is the time this process's threads spent runnable but waiting for a CPU
(``/proc/self/task/*/schedstat``) as a share of ``threads x wall time`` (the largest over the
repeats in the median): above a few percent, other processes were competing for the cores and
the times are inflated (torch's OpenMP threads slow down far more than the stolen share, since
they wait for each other at every parallel region). The load average is printed before and
after. Run it on an otherwise idle machine.

``--profile`` prints where the time of ``eap-ig-inputs`` (5 steps) on ``gpt2-small`` goes
(torch.profiler operator table and a cProfile of the Python side, top 15 each) instead of
running the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import glob
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

MODELS: dict[str, dict] = {
    "gpt2-small": dict(
        n_layers=12, d_model=768, n_heads=12, d_mlp=3072, vocab_size=50257, max_positions=1024
    ),
    "4L-256": dict(
        n_layers=4, d_model=256, n_heads=4, d_mlp=1024, vocab_size=50257, max_positions=1024
    ),
}
N_EXAMPLES, N_POS, BATCH = 8, 32, 8
#: The reference EAP-IG implementation, timed on a 2-core CPU on 16 prompts x 24 tokens, batch
#: 8 (../shared/reference.md): seconds per case, "hf forward+backward" its plain pass.
#: ``--reference`` reruns that workload here and compares time / (plain forward+backward),
#: which does not depend on the machine.
REFERENCE_WORKLOAD = (16, 24)
REFERENCE_S = {
    "4L-256": {"hf forward+backward": 0.11, "eap": 1.4, "eap-ig-inputs (5)": 4.4},
    "gpt2-small": {"hf forward+backward": 3.8, "eap": 71.0},
}
SCALING_EXAMPLES = (8, 32, 64)
TARGETS = {"eap": 1.5, "eap-ig-inputs": 1.3}  # over the true (frozen) bound, issue #17


# --------------------------------------------------------------------------- environment


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat: time the hypervisor gave away."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (values[7] if len(values) > 7 else 0), sum(values[:8])


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- memory


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def _meminfo_mb(key: str) -> float | None:
    try:
        with open("/proc/meminfo") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> float | None:
    """Free what can be freed, reset the kernel's RSS high-water mark; return the RSS (MB), or
    None when the high-water mark cannot be reset here."""
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def maxrss_mb() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def runqueue_wait_s() -> float | None:
    """Total time this process's threads have spent runnable but not running (seconds)."""
    total = 0
    paths = glob.glob("/proc/self/task/*/schedstat")
    if not paths:
        return None
    for path in paths:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(path) as f:
                total += int(f.read().split()[1])
    return total / 1e9


# --------------------------------------------------------------------------- models and data


def build(name: str):
    from circuits import random_hf_model

    return random_hf_model("GPT2LMHeadModel", seed=0, **MODELS[name])


def make_data(n: int, vocab: int, seed: int = 0, n_pos: int = N_POS):
    from attribution import PromptPairs

    g = torch.Generator().manual_seed(seed)
    return PromptPairs(
        clean=torch.randint(0, vocab, (n, n_pos), generator=g),
        corrupted=torch.randint(0, vocab, (n, n_pos), generator=g),
        answers=torch.randint(0, vocab, (n, 1), generator=g),
        distractors=torch.randint(0, vocab, (n, 1), generator=g),
    )


def _metric_logits(hf, inputs: dict, data) -> torch.Tensor:
    """Logits ``[n, vocab]`` at each row's metric position only: the base model, then the
    unembedding of those rows (what attribution's passes compute, see
    ``attribution.passes.unembed_at``)."""
    hidden = hf.base_model(**inputs, attention_mask=data.attention_mask).last_hidden_state
    return hf.get_output_embeddings()(hidden[torch.arange(len(data)), data.positions])


def plain_forward(hf, data, metric_only: bool = False):
    """A no-grad forward; ``metric_only``: unembedding the metric positions only."""

    def run():
        with torch.no_grad():
            if metric_only:
                _metric_logits(hf, {"input_ids": data.clean}, data)
            else:
                hf(input_ids=data.clean, attention_mask=data.attention_mask)

    return run


def plain_forward_backward(hf, data, frozen: bool = False, metric_only: bool = False):
    """A training step without the optimiser: -logit_diff at the last position, backward into
    the parameters, gradients dropped (``zero_grad(set_to_none=True)``) afterwards.

    ``frozen``: parameters frozen and the input embeddings made a leaf instead, so the backward
    computes activation gradients only (what attribution needs). ``metric_only``: only the
    metric positions are unembedded (the tight bound of ``bench_positions``)."""
    rows = torch.arange(len(data))

    def run():
        if frozen:
            hf.requires_grad_(False)
            embeds = hf.get_input_embeddings()(data.clean).detach().requires_grad_(True)
            inputs = {"inputs_embeds": embeds}
        else:
            inputs = {"input_ids": data.clean}
        if metric_only:
            last = _metric_logits(hf, inputs, data)
        else:
            last = hf(**inputs, attention_mask=data.attention_mask).logits[rows, data.positions]
        diff = last.gather(1, data.answers).squeeze(1) - last.gather(1, data.distractors).squeeze(1)
        (-diff.mean()).backward()
        hf.zero_grad(set_to_none=True)
        hf.requires_grad_(True)

    return run


def attribution_call(bridge, graph, data, method: str, steps: int, max_rows: int | None = None):
    from attribution import attribute

    def run():
        last["result"] = attribute(
            bridge,
            graph,
            data,
            "logit_diff",
            method=method,
            steps=steps,
            quiet=True,
            batch_size=BATCH,
            max_rows=max_rows,
        )

    last: dict = {}
    run.last = last  # the latest AttributionResult, under "result"
    return run


# --------------------------------------------------------------------------- measurement


@dataclass
class Row:
    model: str
    case: str
    method: str | None = None
    steps: int | None = None
    k: int | None = None
    times: list[float] = field(default_factory=list)
    waits: list[float | None] = field(default_factory=list)
    warmup_s: float | None = None
    median_s: float | None = None
    min_s: float | None = None
    n_used: int = 0
    lower_bound_s: float | None = None
    ratio: float | None = None
    target: float | None = None
    verdict: str | None = None
    peak_mb: float | None = None
    extra_mb: float | None = None
    wait_pct: float | None = None
    max_rows: int | None = None
    note: str = ""

    def add_note(self, text: str) -> None:
        if text not in self.note:
            self.note = "; ".join(filter(None, [self.note, text]))

    def summarise(self) -> None:
        """Median over the repeats that ran without contention (all of them if none did)."""
        runs = list(zip(self.times, self.waits, strict=True))
        quiet = [(t, w) for t, w in runs if w is None or w <= CONTENDED_PCT]
        used = quiet or runs
        self.median_s = statistics.median(t for t, _ in used)
        self.min_s = min(t for t, _ in used)
        self.n_used = len(used)
        waits = [w for _, w in used if w is not None]
        self.wait_pct = max(waits) if waits else None
        if not quiet:
            self.add_note("every repeat contended")


#: a repeat whose threads waited for a CPU more than this share of the time is left out
CONTENDED_PCT = 10.0


def measure(
    row: Row,
    fn,
    *,
    warmup: bool,
    max_repeats: int,
    budget_s: float,
    estimate_s: float,
    threads: int,
    retry_below_s: float = 20.0,
):
    """Time ``fn``: optional warm-up (which also gives the memory peak), then as many repeats as
    fit ``budget_s`` (at least 1, at most ``max_repeats``). Repeats during which other processes
    took the CPU (see ``wait%``) are left out of the median; for a cheap case (estimate below
    ``retry_below_s``) up to 3 more repeats are run if every repeat was contended."""
    record_memory = row.peak_mb is None

    def one() -> float:
        nonlocal record_memory
        base = reset_peak() if record_memory else None
        wait0 = runqueue_wait_s()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        wait1 = runqueue_wait_s()
        if record_memory:
            record_memory = False
            if base is not None:
                peak = _status_mb("VmHWM")
                row.peak_mb, row.extra_mb = peak, peak - base
        wait = None
        if wait0 is not None and wait1 is not None:
            wait = 100 * (wait1 - wait0) / (elapsed * threads)
        row.waits.append(wait)
        return elapsed

    if warmup:
        row.warmup_s = one()
        row.waits.pop()
        estimate_s = row.warmup_s
    elif row.warmup_s is None:
        row.add_note("no separate warm-up")
    repeats = max(1, min(max_repeats, int(budget_s // max(estimate_s, 1e-9))))
    for _ in range(repeats):
        row.times.append(one())
    retries = 3 if estimate_s < retry_below_s else 0
    while retries and all(w is not None and w > CONTENDED_PCT for w in row.waits):
        row.times.append(one())
        retries -= 1
    row.summarise()


def bench_model(
    name: str, quick: bool, threads: int, log, n_examples: int = N_EXAMPLES, n_pos: int = N_POS
) -> list[Row]:
    from circuits import load_model
    from graphs import Graph

    cfg = MODELS[name]
    n_layers = cfg["n_layers"]
    hf = build(name)
    plain = copy.deepcopy(hf)  # before bridging: load_model rewires hf in place
    bridge = load_model(hf)
    graph = Graph.from_model(bridge)
    data = make_data(n_examples, cfg["vocab_size"], n_pos=n_pos)
    log(
        f"\n[{name}] {n_layers} layers, d_model {cfg['d_model']}, {cfg['n_heads']} heads, "
        f"d_mlp {cfg['d_mlp']}, vocab {cfg['vocab_size']}; graph: {graph.n_forward} upstream "
        f"nodes, {graph.n_backward} ports, {graph.n_edges} edges"
    )
    scale = 3 if quick else 1
    rows: list[Row] = []

    def run_case(row: Row, fn, *, max_repeats: int, budget_s: float, estimate_s: float):
        warmup_limit = 20 if quick else 30
        measure(
            row,
            fn,
            warmup=row.warmup_s is None and estimate_s <= warmup_limit,
            max_repeats=max(1, max_repeats - (2 if quick else 0)),
            budget_s=budget_s / scale,
            estimate_s=estimate_s,
            threads=threads,
        )
        wait = f", wait {row.waits[-1]:.0f}%" if row.waits and row.waits[-1] is not None else ""
        log(
            f"  {row.case:<22} median {row.median_s:8.3f} s  (n={len(row.times)}"
            + (f", warm-up {row.warmup_s:.3f} s" if row.warmup_s is not None else "")
            + f"{wait})"
        )
        if row not in rows:
            rows.append(row)

    # the plain model is timed before and after the attribution cases (pooled, contended
    # repeats left out), so a burst of load elsewhere does not skew the bound
    fwd = Row(name, "hf forward (no grad)")
    fb = Row(name, "hf forward+backward")
    frozen = Row(name, "hf fwd+bwd (frozen)", note="no parameter grads; the bound's unit")
    plain_cases = [
        (fwd, plain_forward(plain, data), 10),
        (fb, plain_forward_backward(plain, data), 20),
        # informational: activation gradients only, as attribution does
        (frozen, plain_forward_backward(plain, data, frozen=True), 10),
    ]

    def time_plain():
        for row, fn, budget in plain_cases:
            run_case(
                row,
                fn,
                max_repeats=5 if row.warmup_s is None else 3,
                budget_s=budget,
                estimate_s=row.median_s or 0,
            )

    time_plain()

    attribution_rows = []
    cases = [("eap", 5), ("eap-ig-inputs", 5), ("eap-ig-inputs", 20), ("eap-ig-activations", 5)]
    for method, steps in cases:
        k = {
            "eap": 1,
            "eap-ig-inputs": steps,
            "eap-ig-activations": (2 * n_layers + 1) * steps,
        }[method]
        label = method if method == "eap" else f"{method} ({steps})"
        row = Row(name, label, method=method, steps=steps if method != "eap" else None, k=k)
        attribution_rows.append(row)
        estimate = k * frozen.median_s + 2 * fwd.median_s
        skip = quick and n_layers > 4 and (method == "eap-ig-activations" or steps > 5)
        if skip:
            row.note = "skipped (--quick)"
            log(f"  {label:<22} skipped (--quick)")
            rows.append(row)
            continue
        call = attribution_call(bridge, graph, data, method, steps)
        run_case(
            row,
            call,
            # the two cases with targets get more repeats
            max_repeats=5 if k <= 5 else 2,
            budget_s=60 if k <= 5 else 40,
            estimate_s=estimate,
        )
        if "ig" in method and "result" in call.last:
            # the library sizes IG chunks to a memory budget: say how many rows per pass it used
            row.max_rows = int(call.last["result"].settings["max_rows"])
            row.add_note(f"max_rows {row.max_rows} ({BATCH * steps} wanted)")
    del bridge, graph, hf
    gc.collect()

    log("  plain model again:")
    time_plain()
    del plain
    gc.collect()
    for row in attribution_rows:
        # the true bound: attribution needs activation gradients only, never parameter ones
        row.lower_bound_s = row.k * frozen.median_s + 2 * fwd.median_s
        if row.median_s is None:
            continue
        row.ratio = row.median_s / row.lower_bound_s
        row.target = TARGETS.get(row.method)
        if row.target is not None:
            row.verdict = "PASS" if row.ratio <= row.target else "FAIL"
    return [r for r in rows if r not in attribution_rows] + attribution_rows


def print_reference(rows: list[Row]) -> None:
    """Each case's time over the plain forward+backward, here and in the reference."""
    print(
        "\nAgainst the reference EAP-IG implementation (same workload; time / plain "
        "forward+backward, so machines compare):"
    )
    print(f"  {'model':<11} {'case':<20} {'here':>7} {'reference':>10} {'faster by':>10}")
    for model, published in REFERENCE_S.items():
        ours = {r.case: r.median_s for r in rows if r.model == model and r.median_s}
        plain, ref_plain = ours.get("hf forward+backward"), published["hf forward+backward"]
        for case, ref_s in published.items():
            if case == "hf forward+backward" or case not in ours or not plain:
                continue
            here, there = ours[case] / plain, ref_s / ref_plain
            print(f"  {model:<11} {case:<20} {here:6.1f}x {there:9.1f}x {there / here:9.1f}x")


def memory_probe(n_examples: int) -> dict:
    """Run in a fresh process: eap-ig-inputs (5 steps) on 4L-256 with ``n_examples``."""
    from circuits import load_model
    from graphs import Graph

    bridge = load_model(build("4L-256"))
    graph = Graph.from_model(bridge)
    data = make_data(n_examples, MODELS["4L-256"]["vocab_size"])
    base = reset_peak()
    before = maxrss_mb()
    start = time.perf_counter()
    attribution_call(bridge, graph, data, "eap-ig-inputs", 5)()
    return {
        "n_examples": n_examples,
        "seconds": time.perf_counter() - start,
        "rss_before_mb": base,
        "ru_maxrss_before_mb": before,
        "ru_maxrss_mb": maxrss_mb(),
        "vmhwm_mb": _status_mb("VmHWM"),
    }


def scaling_check(threads: int, log) -> list[dict]:
    """Peak memory of eap-ig-inputs (5 steps) on 4L-256 with 8, 32 and 64 examples (batch 8),
    each in a fresh process."""
    result = []
    for n in SCALING_EXAMPLES:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_attribution",
                "--threads",
                str(threads),
                "--memory-probe",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        if out.returncode != 0:
            log(f"  memory probe with {n} examples failed:\n{out.stderr[-2000:]}")
            continue
        result.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


# --------------------------------------------------------------------------- report


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _count(row: Row) -> str:
    """Repeats in the median, and of how many when contended ones were left out."""
    if not row.times:
        return "-"
    return str(len(row.times)) if row.n_used == len(row.times) else f"{row.n_used}/{len(row.times)}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'model':<11} {'case':<23} {'k':>4} {'n':>4} {'median s':>9} {'min s':>8} "
        f"{'bound s':>8} {'ratio':>6} {'target':>7} {'':4} {'peak MB':>8} {'+MB':>7} {'wait%':>6}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"<={r.target:g}" if r.target is not None else ""
        print(
            f"{r.model:<11} {r.case:<23} {_fmt(r.k, 'd'):>4} {_count(r):>4} "
            f"{_fmt(r.median_s, '.3f'):>9} {_fmt(r.min_s, '.3f'):>8} "
            f"{_fmt(r.lower_bound_s, '.3f'):>8} {_fmt(r.ratio, '.2f'):>6} {target:>7} "
            f"{r.verdict or '':4} {_fmt(r.peak_mb, '.0f', 'n/a'):>8} "
            f"{_fmt(r.extra_mb, '+.0f', 'n/a'):>7} {_fmt(r.wait_pct, '.1f'):>6}  {r.note}"
        )


def print_scaling(result: list[dict]) -> None:
    print(
        "\nPeak memory vs number of examples: eap-ig-inputs (5 steps), 4L-256, batch 8, "
        "each in a fresh process"
    )
    extras = {}
    for entry in result:
        extra = None
        if entry["vmhwm_mb"] is not None and entry["rss_before_mb"] is not None:
            extra = entry["vmhwm_mb"] - entry["rss_before_mb"]
        entry["extra_mb"] = extra
        # without a resettable high-water mark, fall back on the whole process's
        extras[entry["n_examples"]] = extra if extra is not None else entry["ru_maxrss_mb"]
        print(
            f"  {entry['n_examples']:>3} examples: peak {_fmt(entry['vmhwm_mb'], '.0f', 'n/a')} MB, "
            f"{_fmt(extra, '+.0f', 'n/a')} MB over the RSS before the call "
            f"({entry['seconds']:.1f} s); ru_maxrss {entry['ru_maxrss_mb']:.0f} MB "
            f"(already {entry['ru_maxrss_before_mb']:.0f} MB before the call: building the model)"
        )
    if N_EXAMPLES in extras and len(extras) > 1:
        ok = all(v <= extras[N_EXAMPLES] * 1.10 + 16 for v in extras.values())
        print(
            f"  more examples need no more memory than {N_EXAMPLES} (within 10% + 16 MB): "
            f"{'PASS' if ok else 'FAIL'}"
        )


# --------------------------------------------------------------------------- profile


def profile(threads: int) -> None:
    """Where the time of eap-ig-inputs (5 steps) on gpt2-small goes."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    from circuits import load_model
    from graphs import Graph

    # the package re-exports the function `attribute`, which hides the submodule of that name
    attribute_module = sys.modules["attribution.attribute"]
    bridge = load_model(build("gpt2-small"))
    graph = Graph.from_model(bridge)
    data = make_data(N_EXAMPLES, MODELS["gpt2-small"]["vocab_size"])
    run = attribution_call(bridge, graph, data, "eap-ig-inputs", 5)
    run()  # warm-up

    # phase labels (the library is not modified: its module-level names are wrapped here)
    def labelled(fn, label):
        def wrapper(*args, **kwargs):
            with record_function(label):
                return fn(*args, **kwargs)

        return wrapper

    originals = {
        name: getattr(attribute_module, name)
        for name in ("collect_writes", "metric_backward", "_integrate")
    }
    for name, fn in originals.items():
        setattr(attribute_module, name, labelled(fn, f"## {name}"))
    try:
        start = time.perf_counter()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        print(
            f"eap-ig-inputs (5 steps), gpt2-small, under torch.profiler: {time.perf_counter() - start:.2f} s"
        )
    finally:
        for name, fn in originals.items():
            setattr(attribute_module, name, fn)
    averages = prof.key_averages()
    print("\nPhases (record_function labels, CPU total):")
    for event in averages:
        if event.key.startswith("## "):
            print(f"  {event.key[3:]:<18} {event.cpu_time_total / 1e6:8.3f} s  x{event.count}")
    print("\ntorch.profiler, top 15 operators by self CPU time:")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    run()
    profiler.disable()
    print(f"cProfile run: {time.perf_counter() - start:.2f} s; top 15 by internal time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip slowest cases")
    parser.add_argument("--json", metavar="PATH", help="also write all measurements as JSON")
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}"
    )
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads")
    parser.add_argument("--profile", action="store_true", help="profile eap-ig-inputs and exit")
    parser.add_argument("--examples", type=int, default=N_EXAMPLES, help="prompt pairs")
    parser.add_argument("--tokens", type=int, default=N_POS, help="tokens per prompt")
    parser.add_argument(
        "--reference",
        action="store_true",
        help=f"the reference implementation's workload ({REFERENCE_WORKLOAD[0]} prompts x "
        f"{REFERENCE_WORKLOAD[1]} tokens) and a comparison with its published times",
    )
    parser.add_argument("--memory-probe", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference:
        args.examples, args.tokens = REFERENCE_WORKLOAD
    if args.examples < 1 or args.tokens < 2:
        parser.error("--examples must be at least 1 and --tokens at least 2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args.memory_probe)))
        return 0

    import transformers

    env = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_before": loadavg(),
        "mem_available_gb": (_meminfo_mb("MemAvailable") or 0) / 1024,
    }
    ticks_before = cpu_ticks()
    print(
        f"torch {env['torch']}, transformers {env['transformers']}, python {env['python']}; "
        f"torch threads {env['threads']} (cpu_count {env['cpu_count']}); CPU: {env['cpu']}"
    )
    print(f"load average before: {env['load_before']}; {env['mem_available_gb']:.1f} GB available")
    if args.profile:
        profile(args.threads)
        return 0

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    data_desc = f"{args.examples} examples x {args.tokens} tokens, batch {BATCH}, metric logit_diff"
    print(f"data: {data_desc}{'; --quick' if args.quick else ''}")

    start = time.perf_counter()
    rows: list[Row] = []
    for name in names:
        rows += bench_model(
            name,
            args.quick,
            args.threads,
            lambda s: print(s, flush=True),
            args.examples,
            args.tokens,
        )
    print("\nmeasuring peak memory vs number of examples ...", flush=True)
    scaling = scaling_check(args.threads, print)
    env["load_after"] = loadavg()
    ticks_after = cpu_ticks()
    env["steal_pct"] = None
    if ticks_before and ticks_after and ticks_after[1] > ticks_before[1]:
        steal = ticks_after[0] - ticks_before[0]
        env["steal_pct"] = 100 * steal / (ticks_after[1] - ticks_before[1])
    env["total_s"] = time.perf_counter() - start

    print(
        f"\nAttribution vs plain Hugging Face GPT-2 ({data_desc}); "
        f"torch {env['torch']}, {env['threads']} threads, {env['cpu']}"
    )
    print(
        "bound = k x (hf forward+backward) + 2 x (hf forward); ratio = median / bound; "
        "peak = RSS high-water mark during the first call; +MB = peak - RSS before it;\n"
        f"n = repeats in the median (used/run when repeats with wait% > {CONTENDED_PCT:g} "
        "were left out); wait% = share of time the threads waited for a CPU"
    )
    print_table(rows)
    if args.reference:
        print_reference(rows)
    print_scaling(scaling)
    print(
        f"\nload average before: {env['load_before']}, after: {env['load_after']} "
        f"(this benchmark itself adds about {args.threads}); CPU time stolen by the hypervisor "
        f"{_fmt(env['steal_pct'], '.1f', 'n/a')}%; total {env['total_s']:.0f} s"
    )
    dropped = sum(len(r.times) - r.n_used for r in rows)
    waits = [r.wait_pct for r in rows if r.wait_pct is not None]
    if dropped or (waits and max(waits) > 5):
        print(
            "warning: other processes competed for the cores during some repeats "
            f"({dropped} left out of the medians; largest wait% among those kept "
            f"{max(waits or [0]):.0f}%): compare ratios, not absolute times, with other runs"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"env": env, "rows": [asdict(r) for r in rows], "memory_scaling": scaling},
                f,
                indent=2,
            )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
