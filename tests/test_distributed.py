"""Data-parallel attribution and faithfulness: two gloo processes give the one-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attribution import distributed
from graphs import load_graph


def test_without_a_process_group_everything_is_local():
    assert not distributed.is_distributed() and distributed.is_main_process()
    assert distributed.shard_range(5) == range(5)
    x = torch.arange(3.0)
    assert distributed.all_reduce_sum(x) is x and distributed.all_gather_rows(x) is x


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from distributed_worker import run
    finally:
        sys.path.pop(0)

    single = run(None)
    out = tmp_path / "two.safetensors"
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(root / "tests" / "distributed_worker.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    from safetensors.torch import load_file

    two = load_file(out)
    # float64 model: only the summation order differs between one and two processes
    assert torch.allclose(two["scores"], single["scores"], rtol=1e-9, atol=1e-12)
    assert (two["scores"] != 0).sum() > 100
    assert torch.allclose(two["metric"], single["metric"], rtol=1e-9, atol=1e-9)
    assert torch.allclose(two["per_example"], single["per_example"], rtol=1e-9, atol=1e-9)
    # f, m(M), m(C), m(∅), CI (same bootstrap seed over the same gathered examples), random f
    assert torch.allclose(two["faithfulness"], single["faithfulness"], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cuda", [True, False])
def test_backend_choice_under_torchrun(monkeypatch, cuda):
    """NCCL, with each rank on the GPU of its LOCAL_RANK, when CUDA is there; gloo otherwise.
    (No GPU in tests: the CUDA calls are recorded, not made.)"""
    import torch.distributed as dist

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(calls and calls[-1][0] == "init"))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert distributed.init_from_environment()
    expected = [("set_device", 1), ("init", "nccl")] if cuda else [("init", "gloo")]
    assert calls == expected
    # collectives run where the backend can reduce: the rank's GPU for NCCL, the CPU for gloo
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl" if cuda else "gloo")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    where = distributed._device_for_collectives(torch.zeros(2))
    assert where == (torch.device("cuda", 1) if cuda else torch.device("cpu"))


@pytest.mark.slow
def test_circuits_discover_under_torchrun_writes_once_and_matches_one_process(tmp_path):
    """`torchrun -m circuits discover` with 2 gloo processes: one run folder (rank 0), one
    summary line, and the same scores, circuit and held-out faithfulness as one process
    (float64, so only summation order differs)."""
    from circuits.app.cli import main

    args = ["discover", "--task", "ioi", "--n-examples", "8", "--n-eval", "8", "--seed", "2"]
    args += ["--steps", "2", "--dtype", "float64", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "circuits", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1, proc.stdout  # rank 1's output is silenced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no temporary folders
    one, two = (load_graph(tmp_path / name / "scores.safetensors") for name in ("one", "two"))
    assert torch.allclose(two.scores, one.scores, rtol=1e-9, atol=1e-12)
    assert torch.equal(two.in_graph, one.in_graph) and one.count_included_edges() > 0
    m1, m2 = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    for key in ("f", "m_full", "m_circuit", "m_empty", "random_f"):
        assert m2["faithfulness"][key] == pytest.approx(m1["faithfulness"][key], rel=1e-6), key
    assert m2["faithfulness"]["n_examples"] == m1["faithfulness"]["n_examples"] == 8
