"""A new ablation is one class and one ``register(...)`` line: ablations registered from outside
the package (here, in this test file) are ``--ablation`` choices, run end to end through
``discover``, ``circuits evaluate`` and ``circuits serve``'s live evaluator, are saved into and
restored from the run record, and give the f a by-hand computation predicts (zero and mean
ablation written again by hand under other names give zero and mean ablation's f); once
unregistered, the same name is refused everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from conftest import random_pairs, randomized_bridge
from safetensors.torch import load_file

from attribution import ablations, attribute
from attribution.ablations import Ablation, AblationError, MeanAblation, Patching, ZeroAblation
from attribution.data import DataError, PromptPairs
from attribution.methods import get_method
from attribution.passes import collect_writes
from circuits.app.cli import main
from circuits.app.discovery import DiscoverySettings, RunError, discover
from circuits.app.explorer import load_run_graph
from circuits.app.serve import LiveEvaluator
from circuits.search.faithfulness import evaluate
from graphs import Graph


class HandZero(Ablation):
    """Zero ablation again, written by hand under another name."""

    name = "hand-zero-test"
    description = "zero, written again"

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        return torch.zeros_like(clean_writes), None


@dataclass(frozen=True, repr=False)
class HandMean(Ablation):
    """Mean ablation again: takes reference prompts, so a run saves their number."""

    reference: PromptPairs
    name: ClassVar[str] = "hand-mean-test"
    description: ClassVar[str] = "the mean write, written again"
    needs_reference: ClassVar[bool] = True

    @classmethod
    def build(cls, reference, *, metric="logit_diff", seed=0, quiet=True):
        return cls(reference)

    @property
    def reference_data(self) -> PromptPairs:
        return self.reference

    def means(self, model, graph, batch_size, dtype, device):
        # in one pass: each node's write averaged over every real clean token
        ref = self.reference.to(device)
        writes, _ = collect_writes(model, graph, ref.clean, ref.attention_mask, torch.float64)
        return writes[ref.attention_mask.bool()].mean(0).to(dtype)

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        ref = means if nodes is None else means[nodes.start : nodes.stop]
        return ref.expand_as(clean_writes).clone(), None


class HalfPatching(Patching):
    """Half the patched difference (docs/architecture.md's worked example)."""

    name: ClassVar[str] = "half-test"
    description: ClassVar[str] = "halfway between the clean and the corrupted prompt's write"
    corrupted_run: ClassVar[bool] = False

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        corrupted, _ = super().writes(model, graph, batch, means, clean_writes, nodes)
        return (clean_writes + corrupted) / 2, None


N_TRAIN, N_EVAL = 4, 6


@pytest.fixture(scope="module")
def registered():
    for cls in (HandZero, HandMean, HalfPatching):
        ablations.register(cls)
    yield
    for cls in (HandZero, HandMean, HalfPatching):
        ablations.REGISTRY.pop(cls.name, None)


def _discover(root, name: str):
    out = root / name
    settings = DiscoverySettings(
        method="eap", n_examples=N_TRAIN, n_eval=N_EVAL, bootstrap=0, seed=1, batch_size=4,
        ablation=name,
    )  # fmt: skip
    discover(settings, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(registered, tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation-registry")
    return {name: _discover(root, name) for name in ("zero", "hand-zero-test", "hand-mean-test")}


def _evaluated(run, capsys, *extra: str) -> dict:
    args = [str(run / "graph.json"), "--n-examples", str(N_EVAL), "--batch-size", "4"]
    assert main(["evaluate", *args, "--bootstrap", "0", "--json", "--quiet", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _served(run) -> tuple[LiveEvaluator, dict, torch.Tensor]:
    """The live evaluator of ``run``, its answer for the run's circuit, and that circuit."""
    live = LiveEvaluator(run, bootstrap=0)
    circuit = [e.name for e in load_run_graph(run).edges_in_graph.values()]
    return live, live.faithfulness(circuit), live.edge_mask(circuit)


def _by_hand(live: LiveEvaluator, mask: torch.Tensor, ablation: Ablation):
    """The circuit's faithfulness on the server's model and prompts with ``ablation``."""
    return evaluate(
        live.model, live.graph, live.data, live.metric, circuit=mask, ablation=ablation,
        batch_size=live.settings.batch_size, bootstrap=0, random_baseline=False,
    )  # fmt: skip


def _evaluate_usage(capsys, *args: str) -> str:
    """What ``circuits evaluate ARGS`` prints when argparse stops it (help or a usage error)."""
    with pytest.raises(SystemExit):
        main(["evaluate", *args])
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_a_registered_ablation_is_a_choice_at_parser_build_time(registered, capsys):
    shown = _evaluate_usage(capsys, "--help")
    assert "{patching,mean,zero,optimal,hand-zero-test,hand-mean-test,half-test}" in shown
    assert "hand-mean-test: the mean write, written again" in shown
    assert ablations.get("hand-mean-test") is HandMean
    DiscoverySettings(ablation="hand-mean-test").check()
    with pytest.raises(AblationError, match="already registered"):
        ablations.register(HandZero)


def test_an_unregistered_ablation_is_refused_everywhere(capsys):
    shown = _evaluate_usage(capsys, "g.json", "--ablation", "no-such-ablation")
    assert "invalid choice: 'no-such-ablation'" in shown
    with pytest.raises(RunError, match="unknown ablation 'no-such-ablation'; choose one of"):
        DiscoverySettings(ablation="no-such-ablation").check()
    with pytest.raises(AblationError, match="unknown ablation"):
        ablations.restore_ablation({"ablation": "no-such-ablation"}, lambda n: None)


def test_half_the_patched_difference_halves_eap_scores(registered):
    """EAP scores Δ_u · ∂m/∂x_v at the clean run, so halving every Δ halves every score; the
    half ablation reads the corrupted prompts but is not their run, which the methods that
    need that run refuse (asked of the object, not its name)."""
    model = randomized_bridge("GPT2LMHeadModel", seed=3, scale=2.0)
    data = random_pairs(6, 5, seed=4)
    half = attribute(
        model, Graph.from_model(model), data, method="eap", ablation="half-test", quiet=True
    )
    full = attribute(model, Graph.from_model(model), data, method="eap", quiet=True)
    assert half.settings["ablation"] == "half-test"
    torch.testing.assert_close(half.scores, full.scores / 2, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="supports ablation='patching' only"):
        attribute(
            model,
            Graph.from_model(model),
            data,
            method="clean-corrupted",
            ablation="half-test",
            quiet=True,
        )
    no_corrupted = PromptPairs(data.clean, None, data.answers, data.distractors)
    with pytest.raises(DataError, match="needs corrupted"):
        attribute(
            model,
            Graph.from_model(model),
            no_corrupted,
            method="eap",
            ablation="half-test",
            quiet=True,
        )
    gemma = Graph.from_model(randomized_bridge("Gemma2ForCausalLM", seed=0))
    get_method("eap-ig-activations").check(gemma, Patching())
    with pytest.raises(ValueError, match="Gemma-2 supports ablation='patching' only"):
        get_method("eap-ig-activations").check(gemma, HalfPatching())


def test_zero_written_again_gives_zero_ablations_run_exactly(runs, capsys):
    """discover: the same scores and f as with zero; evaluate: zero's f on the same circuit;
    serve: the f of a by-hand evaluation with ZeroAblation."""
    hand, zero = runs["hand-zero-test"], runs["zero"]
    a, b = (load_file(str(run / "scores.safetensors")) for run in (hand, zero))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = json.loads((hand / "metrics.json").read_text())
    assert metrics["settings"]["ablation"] == "hand-zero-test"
    recorded = metrics["faithfulness"]["f"]
    assert recorded == json.loads((zero / "metrics.json").read_text())["faithfulness"]["f"]
    assert load_run_graph(hand).metadata["ablation"] == "hand-zero-test"
    assert "n_reference" not in load_run_graph(hand).metadata  # it takes no reference prompts

    evaluated = _evaluated(hand, capsys)
    as_zero = _evaluated(hand, capsys, "--ablation", "zero", "--allow-mismatch")
    assert evaluated["ablation"] == "hand-zero-test" and as_zero["ablation"] == "zero"
    assert evaluated["f"] == as_zero["f"] and evaluated["m_empty"] == as_zero["m_empty"]
    assert evaluated["f"] == pytest.approx(recorded, rel=1e-4, abs=1e-5)

    live, served, mask = _served(hand)
    assert isinstance(live.ablation, HandZero)
    by_hand = _by_hand(live, mask, ZeroAblation())
    assert served["f"] == by_hand.f and served["m_empty"] == by_hand.m_empty
    assert served["f"] == pytest.approx(evaluated["f"], rel=1e-6, abs=1e-9)


def test_a_reference_taking_ablation_is_saved_and_restored_with_its_prompts(runs, capsys):
    """The run saves how many reference prompts the ablation took; evaluate and serve restore
    it on as many, and give mean ablation's f there."""
    run = runs["hand-mean-test"]
    assert load_run_graph(run).metadata["n_reference"] == N_TRAIN
    evaluated = _evaluated(run, capsys)
    as_mean = _evaluated(run, capsys, "--ablation", "mean", "--allow-mismatch")
    assert evaluated["f"] == pytest.approx(as_mean["f"], rel=1e-6, abs=1e-9)
    assert evaluated["m_empty"] == pytest.approx(as_mean["m_empty"], rel=1e-6, abs=1e-9)
    recorded = json.loads((run / "metrics.json").read_text())["faithfulness"]["f"]
    assert evaluated["f"] == pytest.approx(recorded, rel=1e-4, abs=1e-5)

    live, served, mask = _served(run)
    assert isinstance(live.ablation, HandMean) and len(live.ablation.reference) == N_TRAIN
    by_hand = _by_hand(live, mask, MeanAblation(live.ablation.reference))
    assert served["f"] == pytest.approx(by_hand.f, rel=1e-6, abs=1e-9)
    assert served["m_empty"] == pytest.approx(by_hand.m_empty, rel=1e-6, abs=1e-9)


def test_a_run_with_an_ablation_no_longer_registered_is_refused(runs):
    """The deliberate violation: the registry, not a list of names, decides what restores."""
    ablations.REGISTRY.pop("hand-zero-test")
    try:
        with pytest.raises(RunError, match="unknown ablation 'hand-zero-test'"):
            LiveEvaluator(runs["hand-zero-test"])
    finally:
        ablations.register(HandZero)
