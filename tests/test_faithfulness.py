"""Faithfulness (circuits.search.faithfulness): the patched single-pass evaluation against the
unpatched and corrupted runs, against an independent brute-force re-computation of every
downstream input, curves, evaluate(), batching/caching invariance and bad input.

Models are tiny random float64 models whose biases and norm weights are randomised (HF
initialises them to 0 and 1, which would let a dropped bias or norm go unnoticed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import ARCH_IDS, ARCHITECTURES, random_pairs, randomized_bridge

from attribution import PromptPairs, attribute
from attribution.data import DataError
from circuits.search.areas import area_under
from circuits.search.faithfulness import (
    DEFAULT_FRACTIONS,
    CircuitEvaluator,
    FaithfulnessError,
    bootstrap_ci,
    circuit_metrics,
    evaluate,
    faithfulness_curve,
    random_circuit,
    top_edges_mask,
)
from graphs import Graph
from graphs.errors import GraphMismatchError

VOCAB = 128


# ----------------------------------------------------------------------------- helpers
def bridge(architecture: str, seed: int = 0, *, scale: float = 1.0, **overrides):
    return randomized_bridge(architecture, seed, scale=scale, **overrides)


def task(model, n: int = 8, pos: int = 6, seed: int = 0) -> PromptPairs:
    """Prompt pairs where the answer is the clean run's top token and the distractor the
    corrupted run's, so m(M) > m(∅) on every example: a well-behaved faithfulness task."""
    data = random_pairs(n, pos, seed)
    with torch.no_grad():
        clean = model(data.clean)[:, -1]
        corrupted = model(data.corrupted)[:, -1]
    answers = clean.argmax(-1)
    top2 = corrupted.topk(2).indices
    distractors = torch.where(top2[:, 0] == answers, top2[:, 1], top2[:, 0])
    return PromptPairs(data.clean, data.corrupted, answers, distractors)


def logit_diff_by_hand(logits: torch.Tensor, data: PromptPairs) -> torch.Tensor:
    rows = torch.arange(len(data))
    at = logits[rows, data.positions]
    return at[rows, data.answers[:, 0]] - at[rows, data.distractors[:, 0]]


def trapezoid(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1)))


@pytest.fixture(scope="module")
def llama():
    """A 2-layer grouped-query Llama with sharpened weights, its task and attributed graph:
    a non-trivial case (a single edge keeps none of the behaviour)."""
    model = bridge("LlamaForCausalLM", seed=0, scale=5.0)
    data = task(model, n=8, pos=6, seed=0)
    graph = Graph.from_model(model)
    attribute(model, graph, data, method="eap-ig-inputs", quiet=True)
    return model, graph, data


# ----------------------------------------------------------------------------- 1. full / empty
@pytest.mark.parametrize(("architecture", "overrides"), ARCHITECTURES, ids=ARCH_IDS)
def test_full_graph_is_the_model_and_empty_graph_the_corrupted_run(architecture, overrides):
    model = bridge(architecture, seed=1, **overrides)
    graph = Graph.from_model(model)
    data = random_pairs(5, 7, seed=2)
    with torch.no_grad():
        clean = logit_diff_by_hand(model(data.clean), data)
        corrupted = logit_diff_by_hand(model(data.corrupted), data)
    assert (clean - corrupted).abs().max() > 1e-3  # the two runs differ: the test has teeth

    full, empty = graph.real_edges.clone(), torch.zeros_like(graph.real_edges)
    m_full, m_empty, m_circ = circuit_metrics(model, graph, data, [full, empty], batch_size=3)
    torch.testing.assert_close(m_full, clean, rtol=0, atol=1e-12)
    torch.testing.assert_close(m_circ[0], clean, rtol=0, atol=1e-12)
    torch.testing.assert_close(m_empty, corrupted, rtol=0, atol=1e-10)
    torch.testing.assert_close(m_circ[1], corrupted, rtol=0, atol=1e-10)

    ev = CircuitEvaluator(model, graph, data)
    assert ev.faithfulness(full) == pytest.approx(1.0, abs=1e-12)
    assert ev.faithfulness(empty) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- 2. brute force
def _brute_force_metric(model, graph: Graph, data: PromptPairs, keep: torch.Tensor, parallel):
    """m(C) per example, computed without attribution.edge_ablation or attribution.sites.

    Every port input of the circuit run is *replaced* by
        x_v(C) = c_v + Σ_{u -> v} [kept ? a_u(C) : a_u(corrupted)],
    c_v = x_v(clean) − Σ_u a_u(clean) being the run-independent part (biases...). The writes
    a_u(C) of the circuit run depend on its own port inputs, so the runs are iterated to a
    fixed point: each pass uses the writes of the previous pass (starting from the clean
    writes), and after one pass per sub-layer (input, heads, MLP per layer) nothing changes."""
    L, H, K = model.cfg.n_layers, model.cfg.n_heads, graph.spec.n_kv_heads
    layout = graph.layout

    # upstream nodes of each port, by the architecture's wiring (not graph.real_edges)
    def upstream(layer: int, mlp: bool) -> list[int]:
        nodes = [0]
        for lower in range(layer):
            nodes += [layout.head_index(lower, h) for h in range(H)] + [layout.mlp_index(lower)]
        if mlp and not parallel:
            nodes += [layout.head_index(layer, h) for h in range(H)]
        return nodes

    ports = []  # (hook, slot or None, port index, upstream forward indices)
    for layer in range(L):
        for hook, n_slots, port_of in (
            ("q", H, layout.q_port),
            ("k", K, layout.k_port),
            ("v", K, layout.v_port),
        ):
            for slot in range(n_slots):
                ports.append(
                    (
                        f"blocks.{layer}.hook_{hook}_input",
                        slot,
                        port_of(layer, slot),
                        upstream(layer, False),
                    )
                )
        ports.append(
            (f"blocks.{layer}.hook_mlp_in", None, layout.mlp_port(layer), upstream(layer, True))
        )
    ports.append(("ln_final.hook_in", None, layout.logits_port, upstream(L, False)))

    expected_edges = torch.zeros_like(graph.real_edges)
    for _, _, port, ups in ports:
        expected_edges[ups, port] = True
    assert torch.equal(expected_edges, graph.real_edges)

    def run(tokens, replace=None):
        writes, inputs = {}, {}

        def write(index):
            def fn(t, hook):
                if t.dim() == 4:  # per-head results
                    for h in range(H):
                        writes[layout.head_index(index, h)] = t[:, :, h].detach().clone()
                else:
                    writes[index] = t.detach().clone()
                return t

            return fn

        def read(name):
            def fn(t, hook):
                inputs[name] = t.detach().clone()
                return t if replace is None else replace[name].to(t.dtype)

            return fn

        hooks = [("blocks.0.hook_resid_pre", write(0))]
        for layer in range(L):
            hooks.append((f"blocks.{layer}.attn.hook_result", write(layer)))
            hooks.append((f"blocks.{layer}.hook_mlp_out", write(layout.mlp_index(layer))))
        hooks += [(name, read(name)) for name in dict.fromkeys(p[0] for p in ports)]
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(tokens, attention_mask=data.attention_mask)
        return logits, writes, inputs

    def port_value(inputs, hook, slot):
        return inputs[hook] if slot is None else inputs[hook][:, :, slot]

    _, clean_w, clean_x = run(data.clean)
    _, corrupted_w, corrupted_x = run(data.corrupted)
    const = {}
    for hook, slot, _, ups in ports:
        c = port_value(clean_x, hook, slot) - sum(clean_w[u] for u in ups)
        # the constant part really is run-independent
        c_corrupted = port_value(corrupted_x, hook, slot) - sum(corrupted_w[u] for u in ups)
        torch.testing.assert_close(c, c_corrupted, rtol=0, atol=1e-9)
        const[(hook, slot)] = c

    current = clean_w
    for _ in range(2 * L + 3):
        values: dict[str, list] = {}
        for hook, slot, port, ups in ports:
            x = const[(hook, slot)] + sum(
                current[u] if keep[u, port] else corrupted_w[u] for u in ups
            )
            values.setdefault(hook, []).append(x)
        replace = {
            hook: xs[0] if not hook.endswith("_input") else torch.stack(xs, dim=2)
            for hook, xs in values.items()
        }
        logits, new_w, _ = run(data.clean, replace)
        change = max(float((new_w[u] - current[u]).abs().max()) for u in new_w)
        current = new_w
        if change == 0.0:
            break
    assert change == 0.0, f"fixed-point iteration did not converge ({change})"
    return logit_diff_by_hand(logits, data)


BRUTE_CASES = [
    ("GPT2LMHeadModel", {}),
    ("LlamaForCausalLM", {}),
    ("GPTNeoXForCausalLM", {"parallel": True}),
]


@pytest.mark.parametrize(
    ("architecture", "overrides"), BRUTE_CASES, ids=["gpt2", "llama-gqa", "neox-parallel"]
)
def test_single_pass_matches_brute_force_recomputation(architecture, overrides):
    model = bridge(architecture, seed=3, scale=3.0, **overrides)
    graph = Graph.from_model(model)
    data = random_pairs(4, 7, seed=4, padded=True)
    parallel = overrides.get("parallel", False)
    gen = torch.Generator().manual_seed(5)
    circuits = [graph.real_edges.clone(), torch.zeros_like(graph.real_edges)]
    for density in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95):
        circuits.append(
            (torch.rand(graph.real_edges.shape, generator=gen) < density) & graph.real_edges
        )
    no_logits = graph.real_edges.clone()  # everything but the edges into the logits
    no_logits[:, graph.layout.logits_port] = False
    circuits.append(no_logits)

    m_full, m_empty, m_circ = circuit_metrics(model, graph, data, circuits, batch_size=3)
    brute = torch.stack([_brute_force_metric(model, graph, data, c, parallel) for c in circuits])
    torch.testing.assert_close(m_circ, brute, rtol=0, atol=1e-9)
    torch.testing.assert_close(brute[0], m_full, rtol=0, atol=1e-10)
    torch.testing.assert_close(brute[1], m_empty, rtol=0, atol=1e-9)
    # the circuits really behave differently, so agreement is not vacuous
    assert m_circ.mean(1).std() > 1e-2 * m_circ.abs().max()


# ----------------------------------------------------------------------------- 3. curves
def test_faithfulness_curve(llama):
    model, graph, data = llama
    curve = faithfulness_curve(model, graph, data, random_baseline=True, seed=7)
    assert curve.fractions == list(DEFAULT_FRACTIONS) and len(curve.f) == 10
    # MIB's evaluator's sizes, int(x · n) (was max(1, round(x · n)): more edges than MIB keeps)
    assert curve.n_edges == [int(x * graph.n_edges) for x in DEFAULT_FRACTIONS]
    assert curve.n_edges[-1] == graph.n_edges
    assert curve.f[-1] == 1.0  # 100 % of the edges is the model itself
    assert curve.f[0] < 0.5, "single-edge circuit already faithful: the case is trivial"
    assert curve.cpr == pytest.approx(trapezoid(curve.fractions, curve.f), abs=1e-12)
    assert curve.cmd == pytest.approx(
        trapezoid(curve.fractions, [abs(1 - v) for v in curve.f]), abs=1e-12
    )
    # each point is the top-k circuit's faithfulness, evaluated on its own
    ev = CircuitEvaluator(model, graph, data)
    sizes = sorted(set(curve.n_edges))
    m_of = ev.metrics([top_edges_mask(graph, k) for k in sizes]).mean(1).tolist()
    f_of = dict(zip(sizes, m_of, strict=True))
    for k, f, m in zip(curve.n_edges, curve.f, curve.m_circuits, strict=True):
        assert float(f_of[k]) == pytest.approx(m, abs=1e-12)
        assert (m - curve.m_empty) / (curve.m_full - curve.m_empty) == pytest.approx(f, abs=1e-12)
    # random baseline: per size the mean and spread of 10 draws, draw j of size i seeded
    # seed + i + 10 j
    assert curve.random_f is not None and len(curve.random_f) == 10
    assert curve.random_f[-1] == 1.0 and curve.random_f_std[-1] == 0.0
    assert curve.random_draws == 10
    for i in (0, 6, 8):
        draws = [
            ev.faithfulness(random_circuit(graph, curve.n_edges[i], seed=7 + i + 10 * j))
            for j in range(10)
        ]
        assert curve.random_f[i] == pytest.approx(np.mean(draws), abs=1e-12)
        assert curve.random_f_std[i] == pytest.approx(np.std(draws), abs=1e-12)
    assert curve.random_f_std[6] > 0  # the draws differ: one draw alone would be noise
    one = faithfulness_curve(model, graph, data, random_baseline=True, random_draws=1, seed=7)
    expected = ev.faithfulness(random_circuit(graph, curve.n_edges[6], seed=13))
    assert one.random_f[6] == pytest.approx(expected, abs=1e-12) and one.random_f_std[6] == 0

    # one curve carries both pairs of areas, each by hand: MIB's over the edge fraction
    # (above) and the log-axis pair over log10(fraction) rescaled to [0, 1]
    x = np.log10(curve.fractions)
    x = (x - x[0]) / (x[-1] - x[0])
    assert x[0] == 0 and x[-1] == 1
    assert curve.cpr_log == pytest.approx(trapezoid(x, curve.f), abs=1e-12)
    assert curve.cmd_log == pytest.approx(trapezoid(x, [abs(1 - v) for v in curve.f]), abs=1e-12)
    assert abs(curve.cpr - curve.cpr_log) > 1e-3  # two different numbers, two names
    assert curve.areas() == {k: getattr(curve, k) for k in ("cpr", "cmd", "cpr_log", "cmd_log")}
    assert area_under([0.5], [0.3], log_x=True) == 0.0  # one point: no area, no division by 0


def test_curve_custom_fractions_and_signed_ranking(llama):
    model, graph, data = llama
    curve = faithfulness_curve(model, graph, data, fractions=(0.25, 1.0), absolute=False)
    assert curve.n_edges == [round(0.25 * graph.n_edges), graph.n_edges]
    ev = CircuitEvaluator(model, graph, data)
    mask = top_edges_mask(graph, curve.n_edges[0], absolute=False)
    assert ev.faithfulness(mask) == pytest.approx(curve.f[0], abs=1e-12)
    assert curve.cpr == pytest.approx(0.75 * (curve.f[0] + 1) / 2, abs=1e-12)


# ----------------------------------------------------------------------------- 4. evaluate
def test_evaluate(llama):
    model, graph, data = llama
    circuit = top_edges_mask(graph, graph.n_edges // 2)
    result = evaluate(model, graph, data, circuit=circuit, seed=3, bootstrap=500)
    assert result.n_edges == graph.n_edges // 2 and result.n_examples == len(data)
    for values in (result.per_example_full, result.per_example_circuit, result.per_example_empty):
        assert len(values) == len(data)
    assert result.m_full == pytest.approx(float(np.mean(result.per_example_full)), abs=1e-12)
    assert result.f == pytest.approx(
        (result.m_circuit - result.m_empty) / (result.m_full - result.m_empty), abs=1e-12
    )
    assert 0.5 < result.f < 1.5  # a reasonably behaved circuit
    low, high = result.ci
    assert low <= result.f <= high and high - low < 1.0
    assert result.ci_level == 0.95

    again = evaluate(model, graph, data, circuit=circuit, seed=3, bootstrap=500)
    assert again.to_dict() == result.to_dict()  # deterministic with the seed
    other = evaluate(model, graph, data, circuit=circuit, seed=4, bootstrap=500)
    assert other.ci != result.ci and other.f == result.f
    assert (
        bootstrap_ci(
            result.per_example_full,
            result.per_example_circuit,
            result.per_example_empty,
            500,
            0.95,
            3,
        )
        == result.ci
    )

    ev = CircuitEvaluator(model, graph, data)
    draws = [ev.faithfulness(random_circuit(graph, result.n_edges, seed=3 + j)) for j in range(10)]
    assert result.random_fs == pytest.approx(draws, abs=1e-12)
    assert result.random_f == pytest.approx(np.mean(draws), abs=1e-12)
    assert (
        result.random_f_std == pytest.approx(np.std(draws), abs=1e-12) and result.random_f_std > 0
    )
    single = evaluate(model, graph, data, circuit=circuit, seed=3, bootstrap=0, random_draws=1)
    assert single.random_f == pytest.approx(draws[0], abs=1e-12) and single.random_fs == [
        single.random_f
    ]
    assert random_circuit(graph, 10, seed=3).sum() == 10
    assert not (random_circuit(graph, 10, seed=3) & ~graph.real_edges).any()

    # graph.in_graph is the default circuit; non-edges in a mask are ignored
    graph.set_in_graph(circuit)
    from_graph = evaluate(model, graph, data, seed=3, bootstrap=500)
    assert from_graph.f == result.f and from_graph.ci == result.ci
    bare = evaluate(model, graph, data, circuit=torch.ones_like(circuit), bootstrap=0)
    assert bare.f == 1.0 and bare.ci is None and bare.n_edges == graph.n_edges


@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_mean_and_zero_ablation(llama, ablation):
    model, graph, data = llama
    mean_data = random_pairs(6, 6, seed=11) if ablation == "mean" else None
    full = evaluate(
        model, graph, data, circuit=graph.real_edges, ablation=ablation, mean_data=mean_data
    )
    assert full.f == 1.0
    half = evaluate(
        model,
        graph,
        data,
        circuit=top_edges_mask(graph, graph.n_edges // 2),
        ablation=ablation,
        mean_data=mean_data,
        bootstrap=0,
    )
    assert math.isfinite(half.f)
    patching = evaluate(model, graph, data, circuit=graph.real_edges, bootstrap=0)
    assert half.m_empty != patching.m_empty  # a different ablation really was used
    if ablation == "mean":
        with pytest.raises(ValueError, match="mean_data"):
            evaluate(model, graph, data, ablation="mean")
    with pytest.raises(ValueError, match="unknown ablation"):
        evaluate(model, graph, data, ablation="resample")


# ----------------------------------------------------------------------------- 5. batching
def test_batch_size_and_cache_do_not_change_results():
    model = bridge("GPT2LMHeadModel", seed=5, scale=3.0)
    graph = Graph.from_model(model)
    data = random_pairs(5, 6, seed=6, padded=True)
    gen = torch.Generator().manual_seed(0)
    circuits = [
        (torch.rand(graph.real_edges.shape, generator=gen) < d) & graph.real_edges
        for d in (0.2, 0.6)
    ]
    reference = CircuitEvaluator(model, graph, data, batch_size=len(data))
    m_ref = reference.metrics(circuits)
    for batch_size, cache_bytes in ((1, 2**30), (2, 2**30), (2, 0), (len(data), 0)):
        ev = CircuitEvaluator(model, graph, data, batch_size=batch_size, cache_bytes=cache_bytes)
        cached = [ablated is not None for _, _, ablated in ev._batches]
        assert all(cached) if cache_bytes else not any(cached)
        torch.testing.assert_close(ev.m_full, reference.m_full, rtol=0, atol=1e-10)
        torch.testing.assert_close(ev.m_empty, reference.m_empty, rtol=0, atol=1e-10)
        torch.testing.assert_close(ev.metrics(circuits), m_ref, rtol=0, atol=1e-10)
    assert reference.n_evaluations == 2


# ----------------------------------------------------------------------------- 6. bad input
def test_bad_input_is_reported_clearly(llama):
    model, graph, data = llama
    other = Graph.from_model(bridge("GPT2LMHeadModel", seed=0))
    ev = CircuitEvaluator(model, graph, data)
    wrong = other.real_edges.clone()
    with pytest.raises(DataError, match=r"shape \(.*\), expected \(.*\)"):
        ev.metrics([wrong])
    with pytest.raises(DataError, match="shape"):
        circuit_metrics(model, graph, data, [graph.real_edges, wrong])
    with pytest.raises(DataError, match="shape"):
        evaluate(model, graph, data, circuit=wrong)
    with pytest.raises(DataError, match="shape"):  # broadcastable, but still not a circuit
        evaluate(model, graph, data, circuit=graph.real_edges[:1])
    with pytest.raises(GraphMismatchError, match="does not fit the model"):
        evaluate(model, other, data)
    with pytest.raises(GraphMismatchError):
        faithfulness_curve(model, other, data)

    empty = PromptPairs(
        torch.zeros(0, 6, dtype=torch.long),
        torch.zeros(0, 6, dtype=torch.long),
        torch.zeros(0, 1, dtype=torch.long),
    )
    with pytest.raises(DataError, match="no examples"):
        evaluate(model, graph, empty)
    out_of_vocab = PromptPairs(data.clean + 1000, data.corrupted, data.answers, data.distractors)
    with pytest.raises(DataError, match="vocabulary"):
        evaluate(model, graph, out_of_vocab)

    same = PromptPairs(data.clean, data.clean.clone(), data.answers, data.distractors)
    with pytest.raises(FaithfulnessError, match="undefined"):
        evaluate(model, graph, same)
    with pytest.raises(FaithfulnessError, match="undefined"):
        faithfulness_curve(model, graph, same)

    for fractions in ((0.5, 0.1), (0.0, 0.5), (0.5, 1.5), (-0.1,), (), (0.2, float("nan"))):
        with pytest.raises(ValueError, match="fractions must be increasing values in"):
            faithfulness_curve(model, graph, data, fractions=fractions)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, graph, data, metric="accuracy")


def test_empty_circuit_and_unattributed_graph_warn(llama):
    model, graph, data = llama
    empty = torch.zeros_like(graph.real_edges)
    with pytest.warns(UserWarning, match="circuit has no edges"):
        result = evaluate(model, graph, data, circuit=empty, bootstrap=0, random_baseline=False)
    assert result.f == 0.0
    bare = Graph.from_model(model)  # never attributed: every score is 0
    with pytest.warns(UserWarning, match="never attributed"):
        evaluate(model, bare, data, circuit=graph.real_edges, bootstrap=0, random_baseline=False)
    with pytest.warns(UserWarning, match="never attributed"):
        faithfulness_curve(model, bare, data, fractions=(1.0,))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an attributed graph and a real circuit: no warning
        evaluate(model, graph, data, circuit=graph.real_edges, bootstrap=0)
