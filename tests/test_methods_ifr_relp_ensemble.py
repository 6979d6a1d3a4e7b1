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


# --------------------------------------------------------------------------- RelP


def _constant_scale(t, hook):
    return torch.full_like(t, 1.7)


def test_relp_equals_eap_and_exact_where_the_model_is_linear_in_the_patch():
    """With ``ln_final``'s scale replaced by a constant, the metric is affine in the logits
    port's input, so for edges into it RelP = EAP = exact; elsewhere RelP's rules change the
    backward pass (it differs from EAP) but not the forward values (same clean metric)."""
    model, graph = _case()
    data = _data()
    col = graph.layout.logits_port
    with model.hooks(fwd_hooks=[("ln_final.hook_scale", _constant_scale)]):
        res = {
            m: attribute(model, graph, data, method=m, quiet=True, max_rows=10_000)
            for m in ("exact", "eap", "relp")
        }
    exact = res["exact"].scores[:, col]
    assert exact.abs().max() > 1e-3
    torch.testing.assert_close(res["relp"].scores[:, col], exact, rtol=0, atol=1e-12)
    torch.testing.assert_close(res["eap"].scores[:, col], exact, rtol=0, atol=1e-12)
    relp = attribute(model, graph, data, method="relp", quiet=True)
    eap = attribute(model, graph, data, method="eap", quiet=True)
    assert (relp.scores - eap.scores).abs().max() > 1e-4
    assert relp.diagnostics["metric_clean"] == eap.diagnostics["metric_clean"]


def test_relp_rules_by_hand_on_one_mlp():
    """GPT-2, final norm scale made constant: RelP's score of ``m0 -> m1`` (layer 0's MLP into
    layer 1's MLP port) is Δ_m0 · J^T g, with g the (exact, linear) gradient of logit_diff at the
    final residual and J the Jacobian of layer 1's MLP under the rules: ln_2 with its scale
    frozen, GELU as pre · (gelu(pre)/pre) with the ratio frozen. Built here from the HF
    weights directly."""
    model, graph = _case()
    data = _data(n=1)
    store = {}

    def save(key):
        def fn(t, hook):
            store[key] = t.detach().clone()

        return fn

    with torch.no_grad():
        model.run_with_hooks(
            data.clean,
            fwd_hooks=[("blocks.1.hook_mlp_in", save("x")), ("blocks.0.hook_mlp_out", save("w0"))],
        )
        model.run_with_hooks(data.corrupted, fwd_hooks=[("blocks.0.hook_mlp_out", save("w0c"))])
    hf = model.original_model
    block = hf.transformer.h[1]
    ln2, fc, proj = block.ln_2, block.mlp.c_fc, block.mlp.c_proj
    w = {k: v.detach() for k, v in dict(
        g2=ln2.weight, b2=ln2.bias, wf=fc.weight, bf=fc.bias, wp=proj.weight, bp=proj.bias,
        gf=hf.transformer.ln_f.weight, wu=hf.lm_head.weight,
    ).items()}  # fmt: skip
    x = store["x"][0]  # [p, d]
    scale = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + ln2.eps)
    with torch.no_grad():
        pre0 = ((x - x.mean(-1, keepdim=True)) / scale * w["g2"] + w["b2"]) @ w["wf"] + w["bf"]
        ratio = torch.nn.functional.gelu(pre0, approximate="tanh") / pre0

    def mlp_under_rules(z):
        pre = ((z - z.mean(-1, keepdim=True)) / scale * w["g2"] + w["b2"]) @ w["wf"] + w["bf"]
        return (pre * ratio) @ w["wp"] + w["bp"]

    a, b = int(data.answers[0, 0]), int(data.distractors[0, 0])
    direction = (w["wu"][a] - w["wu"][b]) * w["gf"] / 1.7
    g = torch.zeros_like(x)
    g[-1] = direction - direction.mean()  # ln_final's centering, its scale constant 1.7
    z = x.clone().requires_grad_(True)
    (mlp_under_rules(z) * g).sum().backward()
    expected = float(((store["w0c"] - store["w0"])[0] * z.grad).sum())

    with model.hooks(fwd_hooks=[("ln_final.hook_scale", _constant_scale)]):
        relp = attribute(model, graph, data, method="relp", quiet=True).scores
        eap = attribute(model, graph, data, method="eap", quiet=True).scores
    index = graph.layout.mlp_index(0), graph.layout.mlp_port(1)
    print("relp", float(relp[index]), "hand", expected, "eap", float(eap[index]))
    assert abs(expected) > 1e-6
    assert float(relp[index]) == pytest.approx(expected, rel=1e-8)
    assert float(eap[index]) != pytest.approx(expected, rel=1e-3)  # the rules took effect


def test_relp_tracks_exact_patching_on_a_nonlinear_model():
    """Correlation over edges with exact patching (docs/attribution.md lists the measured values
    for every architecture): RelP must track it about as well as EAP does."""
    model, graph = _case()
    data = _data()
    real = graph.real_edges
    exact = attribute(model, graph, data, method="exact", quiet=True, max_rows=10_000).scores
    corr = {}
    for method in ("eap", "relp"):
        scores = attribute(model, graph, data, method=method, quiet=True).scores
        corr[method] = float(torch.corrcoef(torch.stack([scores[real], exact[real]]))[0, 1])
    print(corr)
    assert corr["relp"] > 0.95 and corr["relp"] > corr["eap"] - 0.05


# --------------------------------------------------------------------------- ensembles


def _hand_ranks(values: list[float]) -> list[float]:
    n = len(values)
    return [
        (1 + sum(v < x for v in values) + (sum(v == x for v in values) - 1) / 2) / n for x in values
    ]


@pytest.mark.parametrize("spec", ["ensemble:eap,ifr", ["eap", "ifr"]], ids=["string", "list"])
def test_ensemble_averages_normalised_ranks(spec):
    model, graph = _case()
    data = _data()
    real = graph.real_edges
    eap = attribute(model, graph, data, method="eap", quiet=True).scores[real].abs().tolist()
    ifr = attribute(model, graph, data, method="ifr", quiet=True).scores[real].abs().tolist()
    result = attribute(model, graph, data, method=spec, quiet=True)
    expected = [(a + b) / 2 for a, b in zip(_hand_ranks(eap), _hand_ranks(ifr), strict=True)]
    torch.testing.assert_close(result.scores[real], torch.tensor(expected, dtype=F64))
    assert result.method == "ensemble:eap,ifr"
    assert torch.all(result.scores[~real] == 0) and (result.scores[real] > 0).all()
    assert torch.equal(graph.scores, result.scores.float())
    # IFR has ties (layer-0 ports read only the input); they share their average rank
    assert len(set(ifr)) < len(ifr)


def test_ensemble_z_scores():
    model, graph = _case()
    data = _data()
    real = graph.real_edges
    parts = []
    for m in ("eap", "relp"):
        s = attribute(model, graph, data, method=m, quiet=True).scores[real].abs()
        parts.append((s - s.mean()) / s.std(unbiased=False))
    result = attribute(model, graph, data, method="ensemble-z:eap,relp", quiet=True)
    torch.testing.assert_close(result.scores[real], (parts[0] + parts[1]) / 2)


def test_bad_ensembles_and_missing_counterfactuals_are_refused_before_work():
    model, graph = _case()
    calls = []
    hook = [("blocks.0.hook_resid_pre", lambda t, hook: calls.append(1))]
    with model.hooks(fwd_hooks=hook):
        with pytest.raises(ValueError, match=r"unknown ensemble member 'nope'.*eap, "):
            attribute(model, graph, _data(), method="ensemble:eap,nope", quiet=True)
        with pytest.raises(DataError, match="ensemble member 'eap'"):
            attribute(model, graph, _data(corrupted=False), method="ensemble:ifr,eap", quiet=True)
    assert not calls
    from circuits.app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["discover", "--method", "ensemble:eap,bogus", "--out", "/nonexistent/x"])
    assert exit_info.value.code == 2


def test_faithfulness_with_patching_refuses_data_without_counterfactuals():
    from circuits import evaluate

    model, graph = _case()
    attribute(model, graph, _data(), method="eap", quiet=True)
    with pytest.raises(DataError, match="ablation='patching' needs corrupted"):
        evaluate(model, graph, _data(corrupted=False), bootstrap=0)


def test_a_method_declaring_other_architectures_is_refused_before_work():
    from attribution.methods import EAP
    from attribution.methods.base import MethodArchitectureError

    class LlamaOnly(EAP):
        name = "llama-only-test"
        supported_architectures = ("LlamaForCausalLM",)

    model, graph = _case()
    calls = []
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda t, hook: calls.append(1))]):
        with pytest.raises(MethodArchitectureError, match="LlamaForCausalLM only, not GPT2"):
            attribute(model, graph, _data(), method=LlamaOnly(), quiet=True)
    assert not calls
