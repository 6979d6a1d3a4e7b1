"""Memory-bounded attribution: node chunks give the same scores, cost less memory, and the
predicted peak agrees with the measured one."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import random_pairs, randomized_bridge

from attribution import attribute
from attribution.memory import attribution_peak_bytes, node_chunk_within
from graphs import Graph

CASES = [(m, a) for m in ("eap", "eap-ig-inputs") for a in ("patching", "mean", "zero")]


@pytest.mark.parametrize("method,ablation", [*CASES, ("clean-corrupted", "patching")])
def test_node_chunks_give_the_same_scores(method, ablation):
    model = randomized_bridge("GPT2LMHeadModel", seed=1, scale=2.0)
    data = random_pairs(5, 6, seed=0, padded=True)
    kwargs = dict(
        method=method, steps=3, ablation=ablation, mean_data=data, batch_size=2, quiet=True
    )
    whole = attribute(model, Graph.from_model(model), data, **kwargs)
    assert whole.settings["node_chunk"] is None
    for chunk in (1, 4):
        part = attribute(model, Graph.from_model(model), data, node_chunk=chunk, **kwargs)
        assert part.settings["node_chunk"] == chunk
        assert torch.allclose(part.scores, whole.scores, rtol=1e-10, atol=1e-13)
        assert part.diagnostics == pytest.approx(whole.diagnostics, rel=1e-10, abs=1e-13)
    assert (whole.scores != 0).sum() > 50


def test_gqa_model_chunks_match():
    model = randomized_bridge("LlamaForCausalLM", seed=2)
    data = random_pairs(5, 6, seed=1, padded=True)
    whole = attribute(model, Graph.from_model(model), data, method="eap", batch_size=3, quiet=True)
    part = attribute(
        model, Graph.from_model(model), data, method="eap", batch_size=3, node_chunk=3, quiet=True
    )
    assert torch.allclose(part.scores, whole.scores, rtol=1e-10, atol=1e-13)


def test_budget_chooses_a_chunk_that_fits_and_the_prediction_is_printed(capsys):
    model = randomized_bridge("GPT2LMHeadModel", seed=1)
    graph = Graph.from_model(model)
    sizes = dict(batch_size=4, n_pos=6, rows=4, method="eap")
    full = attribution_peak_bytes(model, graph, **sizes)["total"]
    peaks = [
        attribution_peak_bytes(model, graph, node_chunk=c, **sizes)["total"] for c in (1, 2, 4, 8)
    ]
    assert peaks == sorted(peaks) and peaks[-1] < full
    assert node_chunk_within(model, graph, full, **sizes) is None
    budget = (peaks[1] + peaks[2]) / 2  # fits a chunk of 2 but not of 4
    chunk = node_chunk_within(model, graph, budget, **sizes)
    assert chunk in (2, 3)
    result = attribute(
        model,
        graph,
        random_pairs(4, 6, seed=0),
        method="eap",
        batch_size=4,
        memory_budget_gb=budget / 2**30,
    )
    assert result.settings["node_chunk"] == chunk
    assert result.settings["predicted_peak_bytes"] <= budget
    err = capsys.readouterr().err
    assert "predicted peak memory" in err and f"{chunk} nodes at a time" in err
    with pytest.raises(ValueError, match="node_chunk must be >= 1"):
        attribute(model, graph, random_pairs(4, 6, seed=0), method="eap", node_chunk=0, quiet=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures RSS through /proc")
def test_measured_peak_falls_with_the_chunk_and_matches_the_prediction():
    from benchmarks.bench_memory import run_isolated

    whole, chunked = run_isolated(None, "eap"), run_isolated(8, "eap")
    for row in (whole, chunked):
        assert 0.7 < row["measured_bytes"] / row["predicted_bytes"] < 1.4, row
    saved = whole["predicted_bytes"] - chunked["predicted_bytes"]
    assert saved > 100 * 2**20
    assert whole["measured_bytes"] - chunked["measured_bytes"] > 0.5 * saved
