"""Minimal faithful circuits (circuits.search.minimal): the result meets its target when evaluated
again from scratch, refinement leaves a circuit from which no single edge can be dropped, every
evaluation is recorded, and bad targets or scores are rejected with clear messages.

Models are tiny random float64 Llamas (grouped-query) / GPT-2s with random biases and norm
weights and sharpened weight matrices, chosen so the search is not trivial: one edge keeps
none of the behaviour.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import randomized_bridge

from attribution import PromptPairs, attribute
from circuits.search.faithfulness import (
    CircuitEvaluator,
    FaithfulnessError,
    evaluate,
    faithfulness_from_metrics,
    top_edges_mask,
)
from circuits.search.minimal import MinimalCircuit, minimal_circuit, parse_target
from graphs import Graph

VOCAB = 128


# ----------------------------------------------------------------------------- helpers
def bridge(architecture: str, seed: int = 0, *, scale: float = 5.0, **overrides):
    return randomized_bridge(architecture, seed, scale=scale, **overrides)


def task(model, n: int, pos: int = 6, seed: int = 0) -> PromptPairs:
    """Random prompts, corrupted = all but the last token redrawn; answer = the clean run's top
    token, distractor = the corrupted run's, so m(M) > m(∅) on every example."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, VOCAB, (n, pos), generator=gen)
    corrupted = clean.clone()
    corrupted[:, : pos - 1] = torch.randint(0, VOCAB, (n, pos - 1), generator=gen)
    with torch.no_grad():
        clean_top = model(clean)[:, -1].argmax(-1)
        top2 = model(corrupted)[:, -1].topk(2).indices
    distractors = torch.where(top2[:, 0] == clean_top, top2[:, 1], top2[:, 0])
    return PromptPairs(clean, corrupted, clean_top, distractors)


def scored(architecture: str, seed: int, n: int, **overrides):
    model = bridge(architecture, seed=seed, **overrides)
    data = task(model, n=n, seed=seed)
    graph = Graph.from_model(model)
    attribute(model, graph, data, method="eap-ig-inputs", quiet=True)
    return model, graph, data


def prefix_sizes_are_consistent(result: MinimalCircuit, total: int) -> None:
    """Exponential sizes 1, 2, 4, … (capped at total), binary sizes between the last failing
    and the first passing one; meets_target agrees with f."""
    lo, hi = result.target
    phases = [e.phase for e in result.evaluations]
    assert phases == sorted(phases, key=["exponential", "binary", "refine"].index)
    exponential = [e.n_edges for e in result.evaluations if e.phase == "exponential"]
    assert exponential == [min(2**i, total) for i in range(len(exponential))]
    for e in result.evaluations:
        assert e.meets_target == (lo <= e.f <= hi)
    exp_passed = [e.meets_target for e in result.evaluations if e.phase == "exponential"]
    assert not any(exp_passed[:-1]) and exp_passed[-1] == result.reached
    binary = [e for e in result.evaluations if e.phase == "binary"]
    if binary:  # sizes strictly between the last failing and the first passing exponential size
        assert all(exponential[-2] < e.n_edges < exponential[-1] for e in binary)


@pytest.fixture(scope="module")
def llama2():
    """2-layer grouped-query Llama, 8 examples: the search needs tens of edges."""
    return scored("LlamaForCausalLM", seed=0, n=8)


@pytest.fixture(scope="module")
def llama1():
    """1-layer grouped-query Llama, 4 examples: small enough to refine and check every edge."""
    return scored("LlamaForCausalLM", seed=2, n=4, n_layers=1)


# ----------------------------------------------------------------------------- 1. target met
@pytest.mark.parametrize("target", [0.9, (0.8, 1.2)], ids=["at-least-0.9", "band"])
def test_minimal_circuit_meets_target_when_evaluated_again(llama2, target):
    model, graph, data = llama2
    graph.set_in_graph(torch.zeros_like(graph.real_edges))
    result = minimal_circuit(model, graph, data, target=target)
    lo, hi = parse_target(target)
    assert result.reached and result.target == (lo, hi)
    assert result.evaluations[0].n_edges == 1 and not result.evaluations[0].meets_target
    assert 1 < result.n_edges < graph.n_edges
    assert not graph.in_graph.any()  # the search leaves the graph as it was
    graph.set_in_graph(result.mask)
    assert torch.equal(result.mask, top_edges_mask(graph, result.n_edges))  # a ranked prefix
    assert lo <= result.f <= hi

    # from scratch: a new evaluator (other batch size) and evaluate() on graph.in_graph
    fresh = evaluate(model, graph, data, bootstrap=0, random_baseline=False, batch_size=3)
    assert fresh.n_edges == result.n_edges
    assert lo <= fresh.f <= hi
    assert fresh.f == pytest.approx(result.f, abs=1e-10)
    assert fresh.m_full == pytest.approx(result.m_full, abs=1e-10)
    assert fresh.m_empty == pytest.approx(result.m_empty, abs=1e-10)

    # binary search boundary: one edge fewer was evaluated and failed
    smaller = [e for e in result.evaluations if e.n_edges == result.n_edges - 1]
    assert smaller and not any(e.meets_target for e in smaller)
    ev = CircuitEvaluator(model, graph, data, batch_size=5)
    assert not lo <= ev.faithfulness(top_edges_mask(graph, result.n_edges - 1)) <= hi
    prefix_sizes_are_consistent(result, graph.n_edges)


# ----------------------------------------------------------------------------- 2. refinement
@pytest.mark.parametrize("target", [0.9, (0.8, 1.2)], ids=["at-least-0.9", "band"])
def test_refined_circuit_is_locally_minimal(llama1, target):
    model, graph, data = llama1
    lo, hi = parse_target(target)
    plain = minimal_circuit(model, graph, data, target=target)
    refined = minimal_circuit(model, graph, data, target=target, refine=True)
    assert plain.reached and refined.reached
    assert plain.evaluations[0].n_edges == 1 and not plain.evaluations[0].meets_target
    assert refined.n_edges < plain.n_edges  # refinement did something on this case
    assert not (refined.mask & ~plain.mask).any()  # it only removes edges
    assert not graph.in_graph.any()  # neither search wrote into the graph
    assert [e for e in refined.evaluations if e.phase != "refine"] == plain.evaluations

    ev = CircuitEvaluator(model, graph, data, batch_size=1)
    assert ev.faithfulness(refined.mask) == pytest.approx(refined.f, abs=1e-10)
    assert lo <= refined.f <= hi
    kept = refined.mask.nonzero().tolist()
    trials = []
    for up, port in kept:
        trial = refined.mask.clone()
        trial[up, port] = False
        trials.append(trial)
    m = ev.metrics(trials).mean(1).tolist()
    m_full, m_empty = float(ev.m_full.mean()), float(ev.m_empty.mean())
    for (up, port), value in zip(kept, m, strict=True):
        f = faithfulness_from_metrics(m_full, value, m_empty)
        assert not lo <= f <= hi, f"{graph.layout.edge_name(up, port)} can be dropped (f={f})"


# ----------------------------------------------------------------------------- 3. records
def test_every_evaluation_is_recorded_and_results_are_deterministic(llama1):
    model, graph, data = llama1
    ev = CircuitEvaluator(model, graph, data)
    result = minimal_circuit(model, graph, data, target=0.9, refine=True, evaluator=ev)
    assert ev.n_evaluations == len(result.evaluations)  # one record per evaluation
    phases = {e.phase for e in result.evaluations}
    assert phases == {"exponential", "binary", "refine"}
    prefix_sizes_are_consistent(result, graph.n_edges)
    assert any(
        e.n_edges == result.n_edges and e.f == result.f and e.meets_target
        for e in result.evaluations
    )
    # the recorded f of each prefix is that prefix's faithfulness
    for e in result.evaluations:
        if e.phase != "refine":
            assert ev.faithfulness(top_edges_mask(graph, e.n_edges)) == pytest.approx(
                e.f, abs=1e-12
            )
    # refinement tries the current circuit less one edge, one edge at a time; its last pass
    # tries every edge of the result and none can go
    searched = min(e.n_edges for e in result.evaluations if e.phase != "refine" and e.meets_target)
    sizes = [e.n_edges for e in result.evaluations if e.phase == "refine"]
    assert sizes[0] == searched - 1 and sizes == sorted(sizes, reverse=True)
    assert result.n_edges < searched
    last_pass = result.evaluations[-result.n_edges :]
    assert all(e.n_edges == result.n_edges - 1 and not e.meets_target for e in last_pass)

    again = minimal_circuit(model, graph, data, target=0.9, refine=True)
    assert again.to_dict() == result.to_dict() and torch.equal(again.mask, result.mask)
    report = result.to_dict()
    assert "mask" not in report and len(report["evaluations"]) == len(result.evaluations)
    assert report["evaluations"][0] == {
        "phase": "exponential",
        "n_edges": 1,
        "f": result.evaluations[0].f,
        "meets_target": False,
    }


# ----------------------------------------------------------------------------- 4. bad targets
@pytest.mark.parametrize(
    "target", [0, -1, 0.0, math.inf, math.nan, (1.1, 0.9), (0.9, 0.9), (0.0, 1.0), (math.nan, 1.0)]
)
def test_bad_targets(target):
    with pytest.raises(ValueError, match=r"target must lie in \(0, ∞\) with low < high"):
        parse_target(target)


@pytest.mark.parametrize("target", ["abc", "0.9", (0.9,), (0.1, 0.5, 0.9), None, ("a", 1.0)])
def test_malformed_targets(target):
    with pytest.raises(ValueError, match="target must be a number or a \\(low, high\\) pair"):
        parse_target(target)


def test_good_targets():
    assert parse_target(0.9) == (0.9, math.inf)
    assert parse_target(1) == (1.0, math.inf)
    assert parse_target((0.8, 1.2)) == (0.8, 1.2)
    assert parse_target([0.8, math.inf]) == (0.8, math.inf)
    assert parse_target(np.float32(0.5)) == (0.5, math.inf)
    assert parse_target(np.array([0.8, 1.2])) == (0.8, 1.2)


def test_unreachable_target_returns_full_graph(llama1):
    model, graph, data = llama1
    result = minimal_circuit(model, graph, data, target=(5.0, 6.0), refine=True)
    assert not result.reached
    assert torch.equal(result.mask, graph.real_edges) and result.n_edges == graph.n_edges
    assert result.f == 1.0  # the full graph is the model
    assert {e.phase for e in result.evaluations} == {"exponential"}
    assert result.evaluations[-1].n_edges == graph.n_edges
    assert not any(e.meets_target for e in result.evaluations)
    assert "reached=False" in minimal_circuit.__doc__  # the behaviour is documented


def test_bad_scores_and_undefined_faithfulness(llama1):
    model, graph, data = llama1
    broken = graph.copy()
    up, port = broken.real_edges.nonzero()[3].tolist()
    broken.scores[up, port] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        minimal_circuit(model, broken, data)
    broken.scores[up, port] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinity"):
        minimal_circuit(model, broken, data)
    with pytest.raises(ValueError, match="target must lie"):
        minimal_circuit(model, graph, data, target=-1)
    same = PromptPairs(data.clean, data.clean.clone(), data.answers, data.distractors)
    with pytest.raises(FaithfulnessError, match="undefined"):
        minimal_circuit(model, graph, same)


def test_unattributed_graph_warns(llama1):
    model, graph, data = llama1
    bare = Graph.from_model(model)  # every score 0: the ranking would be index order
    with pytest.warns(UserWarning, match="minimal_circuit: every edge score of the graph is 0"):
        minimal_circuit(model, bare, data, target=0.5)
