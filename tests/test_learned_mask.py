"""Learned edge masks (method ``mask``): the masked model is the faithfulness evaluator's run
at gates 0 and 1 (float64, exactly), training from a random start recovers the planted circuit
of compiled ground-truth models over three seeds, it is deterministic, and bad targets fail
before any work."""

from __future__ import annotations

import pytest
import torch

from attribution import attribute
from attribution.mask_training import MaskBatch, MaskTrainingError, masked_metric
from attribution.metrics import get_metric
from circuits import load_model
from circuits.groundtruth import registry
from circuits.search.faithfulness import CircuitEvaluator
from graphs import Graph


def _loaded(name: str, dtype=torch.float32):
    truth = registry.build(name)
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=dtype)
    return truth, bridge, Graph.from_model(bridge)


@pytest.mark.parametrize("ablation", ["patching", "zero"])
def test_masked_model_at_gates_one_and_zero_is_the_evaluators_full_and_empty_circuit(ablation):
    truth, bridge, graph = _loaded("gt-ioi", torch.float64)
    evaluator = CircuitEvaluator(bridge, graph, truth.data, truth.metric, ablation=ablation)
    metric = get_metric(truth.metric)
    random_keep = torch.rand(graph.real_edges.shape, generator=torch.Generator().manual_seed(0))
    random_keep = (random_keep < 0.5) & graph.real_edges
    (expected_random,) = evaluator.metrics([random_keep])
    got = {"full": [], "empty": [], "random": []}
    for batch, clean_logits, ablated in evaluator._batches:
        m_clean = metric(clean_logits, clean_logits, batch)
        mb = MaskBatch(batch, clean_logits, m_clean, ablated)
        ones = torch.ones(graph.real_edges.shape, dtype=torch.float64)
        with torch.no_grad():
            got["full"].append(masked_metric(bridge, graph, mb, metric, ones))
            got["empty"].append(masked_metric(bridge, graph, mb, metric, 0 * ones))
            got["random"].append(masked_metric(bridge, graph, mb, metric, random_keep.double()))
    assert torch.equal(torch.cat(got["full"]), evaluator.m_full)
    assert torch.equal(torch.cat(got["empty"]), evaluator.m_empty)
    assert torch.equal(torch.cat(got["random"]), expected_random)
    assert (evaluator.m_full - evaluator.m_empty).abs().min() > 1.0  # the runs differ


@pytest.mark.parametrize("name", ["gt-prev-token", "gt-mlp-lookup", "gt-gqa"])
def test_mask_from_a_random_start_recovers_the_planted_circuit_over_three_seeds(name):
    truth, bridge, graph = _loaded(name)
    inside = truth.mask(graph)
    outside = graph.real_edges & ~inside
    for seed in range(3):
        result = attribute(
            bridge, graph, truth.data, truth.metric, method="mask", batch_size=16, quiet=True,
            method_options={"train_steps": 100, "seed": seed},
        )  # fmt: skip
        scores = result.scores
        assert scores.min() >= 0 and scores.max() <= 1
        assert scores[inside].min() > 0.9, (name, seed)
        assert scores[outside].max() < 0.1, (name, seed)
        assert result.diagnostics["mask_open_gates"] == int(inside.sum())


def test_mask_is_deterministic_given_its_seed():
    truth, bridge, graph = _loaded("gt-prev-token")

    def run(seed):
        return attribute(
            bridge, graph, truth.data, truth.metric, method="mask", quiet=True,
            method_options={"train_steps": 15, "seed": seed, "target_edges": 2},
        ).scores  # fmt: skip

    first = run(3)
    assert torch.equal(first, run(3))
    assert not torch.equal(first, run(4))


def test_mask_warm_start_from_eap_ig_ranks_by_eap_ig_before_training():
    truth, bridge, graph = _loaded("gt-prev-token")
    ig = attribute(bridge, graph, truth.data, truth.metric, method="eap-ig-inputs", quiet=True)
    warm = attribute(
        bridge, graph, truth.data, truth.metric, method="mask", quiet=True,
        method_options={"train_steps": 1, "lr": 1e-6, "warm_start": "eap-ig-inputs"},
    ).scores  # fmt: skip
    real = graph.real_edges
    order_ig = ig.scores.abs()[real].argsort(stable=True)
    assert torch.equal(warm[real][order_ig].argsort(stable=True), torch.arange(int(real.sum())))


@pytest.mark.parametrize("target", [0, -1, 10_000, 2.5])
def test_bad_mask_target_fails_before_any_work(target):
    truth, bridge, graph = _loaded("gt-prev-token")
    with pytest.raises(MaskTrainingError, match="target_edges"):
        attribute(
            bridge, graph, truth.data, truth.metric, method="mask", quiet=True,
            method_options={"target_edges": target},
        )  # fmt: skip


def test_the_mask_declares_its_settings_once():
    from attribution.methods.learned_mask import LearnedMask

    # the options tuple is the one declaration: constructor and recorded settings follow it
    assert "__init__" not in vars(LearnedMask)
    own = [o for o in LearnedMask.options if o.name not in ("steps", "quadrature_rule")]
    assert LearnedMask().settings() == {o.name: o.default for o in own}
    mask = LearnedMask(train_steps=7, warm_start="eap-ig-inputs", steps=3)
    assert mask.settings()["train_steps"] == 7 and mask.settings()["warm_start"] == "eap-ig-inputs"
    assert mask.steps == 3 and "steps" not in mask.settings()
    with pytest.raises(MaskTrainingError, match="train_steps must be >= 1"):
        LearnedMask(train_steps=0)


def test_unknown_mask_option_is_named():
    truth, bridge, graph = _loaded("gt-prev-token")
    with pytest.raises(ValueError, match="bad options for method 'mask'"):
        attribute(bridge, graph, truth.data, truth.metric, method="mask", method_options={"x": 1})


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "eap", "--mask-steps", "5"], "go with --method mask"),
        (["--method", "mask", "--mask-target-edges", "0"], "target_edges must be"),
        (["--method", "mask", "--mask-steps", "0"], "train_steps must be >= 1"),
    ],
)
def test_bad_mask_flags_exit_2_before_the_model_loads(
    flags, message, tmp_path, capsys, monkeypatch
):
    import circuits.app.discovery as discovery
    from circuits.app.cli import main

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(discovery.job, "load_for_task", no_loading)
    assert main(["discover", *flags, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_discover_trains_a_mask_from_the_command_line(tmp_path):
    import json

    from circuits.app.cli import main

    out = tmp_path / "run"
    args = ["discover", "--model", "toy-gpt2", "--method", "mask", "--mask-steps", "10",
            "--mask-target-edges", "20", "--n-examples", "8", "--n-eval", "8", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["method"] == "mask"
    assert settings["method_options"]["train_steps"] == 10
    assert settings["method_options"]["target_edges"] == 20


def test_gate_gradient_at_the_full_model_is_minus_the_eap_score():
    """d m / d z_uv at z = 1 is −Δ_u · ∂m/∂x_v (amount 1 − z moves x_v by Δ_u): the gradient
    the mask trains with, checked against EAP's scores (float64)."""
    truth, bridge, graph = _loaded("gt-ioi", torch.float64)
    eap = attribute(bridge, graph, truth.data, truth.metric, method="eap", quiet=True).scores
    evaluator = CircuitEvaluator(bridge, graph, truth.data, truth.metric)
    metric = get_metric(truth.metric)
    gates = torch.ones(graph.real_edges.shape, dtype=torch.float64, requires_grad=True)
    for batch, clean_logits, ablated in evaluator._batches:
        mb = MaskBatch(batch, clean_logits, metric(clean_logits, clean_logits, batch), ablated)
        masked_metric(bridge, graph, mb, metric, gates).sum().backward()
    grad = gates.grad / len(truth.data)
    real = graph.real_edges
    torch.testing.assert_close(grad[real], -eap[real], rtol=1e-9, atol=1e-9)
    assert eap.abs().max() > 0.1
