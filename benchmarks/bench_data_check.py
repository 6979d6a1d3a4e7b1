"""``circuits data check`` on a large prompt file: the batched validation pass against the old
per-row path, measured in the same run.

    python -m benchmarks.bench_data_check [--rows 200000] [--old-rows 20000] [--baseline c0e4a2c]

Writes ``--rows`` distinct IOI rows (``clean``, ``corrupted``, ``answer``, ``distractor``; about
40 MB at 200,000 rows) to a temporary folder and times ``circuits data check FILE --model
toy-gpt2`` as a fresh process each time (interpreter start and imports included: what a user
waits for), wall-clock and CPU seconds (the CPU time of the child, which a loaded machine
disturbs less):

- ``new``: this source tree, on all rows and on the first ``--old-rows``;
- ``old``: the tree of commit ``--baseline`` (before the batched pass: the prompt file
  validated with a ``transformers`` call converting every row, then encoded again row by row
  for the summary), extracted with ``git archive``, on the first ``--old-rows`` rows; the old
  path takes minutes on 200,000 rows, so by default it runs on a subset and its time on all
  rows is extrapolated linearly from its time per row (its time on 10 rows, start-up and
  imports, is not scaled; ``--old-rows 0`` runs it on every row instead).

Prints both ratios old/new: on the same subset, and on all rows (extrapolated where the old
path ran on a subset), and, for reference, the CPU time of the toy tokenizer's Rust pipeline run
on every text the check needs whole (four a row: the clean and the corrupted prompt, prompt +
answer, prompt + distractor), which the new path avoids by tokenising each distinct
whitespace piece once (:mod:`circuits.tasks.pieces`). A measurement, not a test: it exits 0
unless a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """``n`` IOI prompt pairs as JSONL (the bundled task's train split: distinct rows)."""
    from circuits.tasks import get_task

    with path.open("w", encoding="utf-8") as f:
        for e in get_task("ioi").examples(n, seed=seed, split="train"):
            row = {"clean": e.clean, "corrupted": e.corrupted, "answer": e.answers[0],
                   "distractor": e.distractors[0]}  # fmt: skip
            f.write(json.dumps(row) + "\n")


def old_tree(commit: str, into: Path) -> Path:
    """The packages of ``commit``, extracted from git into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "circuits", "attribution", "graphs"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def time_check(tree: Path, path: Path) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of ``circuits data check path`` run from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "circuits", "data", "check", str(path), "--model", "toy-gpt2"],
        env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"data check failed from {tree}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def tokenizer_alone(path: Path) -> float:
    """CPU seconds the toy tokenizer's pipeline takes for every text the check needs, whole: each
    row's clean and corrupted prompt and its prompt + answer, prompt + distractor (one batch
    each, no Python per text): what tokenising whole texts would cost at best."""
    from circuits.app.prompts import load_tokenizer

    backend = load_tokenizer("toy-gpt2").backend_tokenizer
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    batches = [[r["clean"] for r in rows], [r["corrupted"] for r in rows],
               [r["clean"] + r[k] for r in rows for k in ("answer", "distractor")]]  # fmt: skip
    start = time.process_time()
    for texts in batches:
        backend.encode_batch_fast(texts, add_special_tokens=True)
    return time.process_time() - start


def head(path: Path, n: int, out: Path) -> Path:
    with path.open(encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        for _, line in zip(range(n), f, strict=False):
            g.write(line)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--old-rows", type=int, default=20_000, help="0: the old path on every row")
    p.add_argument("--baseline", default="c0e4a2c", help="commit of the old per-row path")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full = tmp / "prompts.jsonl"
        t = time.perf_counter()
        write_rows(full, args.rows)
        print(f"{args.rows} rows, {full.stat().st_size / 1e6:.1f} MB, written in "
              f"{time.perf_counter() - t:.1f}s")  # fmt: skip
        n_old = args.old_rows or args.rows
        subset = full if n_old >= args.rows else head(full, n_old, tmp / "subset.jsonl")
        old = old_tree(args.baseline, tmp / "old")
        old_sub = time_check(old, subset)
        new_sub = time_check(ROOT, subset)
        new_full = time_check(ROOT, full) if subset != full else new_sub
        scale = args.rows / n_old
        # only the per-row part scales: start-up and imports (timed on 10 rows) do not
        fixed = time_check(old, head(full, 10, tmp / "ten.jsonl")) if scale > 1 else (0.0, 0.0)
        old_full = tuple(f + (s - f) * scale for f, s in zip(fixed, old_sub, strict=True))
        print(f"{'':24}{'wall s':>10}{'cpu s':>10}")
        for name, (wall, cpu) in (
            (f"old, {n_old} rows", old_sub),
            (f"new, {n_old} rows", new_sub),
            (f"new, {args.rows} rows", new_full),
        ):
            print(f"{name:24}{wall:10.1f}{cpu:10.1f}")
        floor = tokenizer_alone(full)
        print(f"{'whole texts, tokenizer':24}{'':10}{floor:10.1f}")
        print(f"ratio old/new on {n_old} rows: wall {old_sub[0] / new_sub[0]:.1f}x, "
              f"cpu {old_sub[1] / new_sub[1]:.1f}x")  # fmt: skip
        how = "measured" if subset == full else f"old extrapolated x{scale:g} from {n_old} rows"
        print(f"ratio old/new on {args.rows} rows ({how}): wall "
              f"{old_full[0] / new_full[0]:.1f}x, cpu {old_full[1] / new_full[1]:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
