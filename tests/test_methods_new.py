"""IFR, data without counterfactuals and ensembles, checked against independent computations
on tiny float64 models (biases and norm gains randomised)."""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import randomize_weights

from attribution import DataError, PromptPairs, attribute
from circuits import load_model, random_hf_model
from graphs import Graph

F64 = torch.float64


@functools.cache
def _case(arch="GPT2LMHeadModel"):
    hf = random_hf_model(arch, seed=0, dtype=F64)
    randomize_weights(hf, 1000, scale=2.0, scale_embeddings=True)
    model = load_model(hf)
    return model, Graph.from_model(model)


def _data(n=3, pos=6, seed=0, corrupted=True) -> PromptPairs:
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 128, (n, pos), generator=gen)
    other = torch.randint(0, 128, (n, pos), generator=gen)
    answers = torch.randint(0, 128, (n,), generator=gen)
    distractors = torch.randint(0, 128, (n,), generator=gen)
    return PromptPairs(clean, other if corrupted else None, answers, distractors)


def _hand_ifr(model, data, layer: int, head: int | None):
    """IFR importances into layer ``layer``'s q port of ``head`` (MLP port when None), by hand:
    read the port input and every upstream write off hook points, then apply
    max(0, |y|₁ − |y − c|₁) / Σ per position, in plain Python loops."""
    store = {}

    def save(key):
        def fn(t, hook):
            store[key] = t.detach().clone()

        return fn

    hooks = [("blocks.0.hook_resid_pre", save("input"))]
    for k in range(layer + 1):
        hooks.append((f"blocks.{k}.attn.hook_result", save(("a", k))))
        hooks.append((f"blocks.{k}.hook_mlp_out", save(("m", k))))
    port = f"blocks.{layer}.hook_q_input" if head is not None else f"blocks.{layer}.hook_mlp_in"
    hooks.append((port, save("y")))
    with torch.no_grad():
        model.run_with_hooks(data.clean, fwd_hooks=hooks)
    n_heads = store[("a", 0)].shape[2]
    y = store["y"][:, :, head] if head is not None else store["y"]
    names = ["input"] + [(k, h) for k in range(layer) for h in range(n_heads)]
    names += [("m", k) for k in range(layer)]
    if head is None:  # the MLP port of a sequential block also reads this layer's heads
        names += [(layer, h) for h in range(n_heads)]

    def write(name):
        if name == "input":
            return store["input"]
        if name[0] == "m":
            return store[name]
        return store[("a", name[0])][:, :, name[1]]

    totals = {name: 0.0 for name in names}
    for b in range(y.shape[0]):
        for p in range(y.shape[1]):
            contribs = [write(name)[b, p] for name in names]
            contribs.append(y[b, p] - sum(contribs))
            prox = [
                max(0.0, float(y[b, p].abs().sum() - (y[b, p] - c).abs().sum())) for c in contribs
            ]
            for name, value in zip(names, prox[:-1], strict=True):
                totals[name] += value / sum(prox) / y.shape[0]
    return totals


@pytest.mark.parametrize("head", [2, None], ids=["q-port", "mlp-port"])
def test_ifr_equals_the_contribution_norms_by_hand(head):
    model, graph = _case()
    data = _data()
    scores = attribute(model, graph, data, method="ifr", quiet=True).scores
    layout = graph.layout
    port = layout.q_port(1, head) if head is not None else layout.mlp_port(1)
    hand = _hand_ifr(model, data, 1, head)
    for name, expected in hand.items():
        if name == "input":
            row = 0
        elif name[0] == "m":
            row = layout.mlp_index(name[1])
        else:
            row = layout.head_index(*name)
        assert float(scores[row, port]) == pytest.approx(expected, abs=1e-10), name
    assert max(hand.values()) > 0.1 and min(hand.values()) < max(hand.values()) - 0.05
    assert (scores >= 0).all()
    # the q, k and v ports of one layer read the same residual, so they score alike
    torch.testing.assert_close(scores[:, layout.q_port(1, 0)], scores[:, layout.v_port(1, 0)])


def test_ifr_needs_no_corrupted_prompts_and_ignores_them():
    model, graph = _case()
    with_cf = attribute(model, graph, _data(), method="ifr", quiet=True)
    without = attribute(model, graph, _data(corrupted=False), method="ifr", quiet=True)
    assert torch.equal(with_cf.scores, without.scores)
    assert without.diagnostics["metric_clean"] == pytest.approx(with_cf.diagnostics["metric_clean"])


@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs", "clean-corrupted", "exact"])
def test_methods_needing_corrupted_prompts_refuse_data_without_them(method):
    model, graph = _case()
    calls = []
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda t, hook: calls.append(1))]):
        with pytest.raises(DataError, match="corrupted .*prompts.*method='ifr'"):
            attribute(model, graph, _data(corrupted=False), method=method, quiet=True)
    assert not calls  # refused before any model work
    if method != "clean-corrupted":  # mean/zero ablations need no corrupted prompts
        zero = attribute(
            model, graph, _data(corrupted=False), method=method, ablation="zero", quiet=True,
            max_rows=10_000,
        )  # fmt: skip
        ref = attribute(
            model, graph, _data(), method=method, ablation="zero", quiet=True, max_rows=10_000
        )
        assert torch.equal(zero.scores, ref.scores)
