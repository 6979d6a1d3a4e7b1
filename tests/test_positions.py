"""Position-aware circuits (issue #17): per-span scores, per-span ablation, search, errors.

Checks: for every gradient method the per-span scores sum to the position-agnostic scores
(float64, to 1e-12 relative), with token positions and with a ragged span schema; exact
per-span patching equals a hand patch of one (edge, position) written here from hook points;
the one-pass evaluator's per-span ablation of one edge equals that hand patch too; on
gt-prev-token only the positions the construction uses score at all and the minimal circuit
keeps only them; bad schemas fail before any model work.
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import random_pairs, randomized_bridge

from attribution import attribute
from attribution.positions import with_positions
from circuits.search import (
    minimal_position_circuit,
    position_faithfulness_curve,
    ranked_position_edges,
    top_n_positions,
)
from circuits.search.faithfulness import CircuitEvaluator
from graphs import Graph, load_graph, save_graph
from graphs.positions import PositionError, SpanSchema, spans_from_starts

GRADIENT_METHODS = ("eap", "clean-corrupted", "eap-ig-inputs", "eap-ig-activations", "relp")
SCHEMA = SpanSchema(("first", "middle", "last"))


@functools.cache
def _case():
    model = randomized_bridge("GPT2LMHeadModel", seed=3, scale=3.0)
    return model, Graph.from_model(model)


def _schema_data(data):
    # ragged: prompt 2's spans have other token lengths than prompts 0 and 1
    starts = [[0, 2, 4], [0, 2, 4], [0, 1, 3]]
    spans = spans_from_starts(starts, [5, 5, 5], 5, SCHEMA)
    return with_positions(data, SCHEMA, spans)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_position_scores_sum_to_position_agnostic_scores(method):
    model, graph = _case()
    data = random_pairs(3, 5, seed=1)
    plain = attribute(model, graph.copy(), data, method=method, quiet=True).scores
    scale = float(plain.abs().max())
    assert scale > 1e-4  # the check below is not 0 == 0
    for positioned in (with_positions(data, "tokens"), _schema_data(data)):
        g = graph.copy()
        result = attribute(model, g, positioned, method=method, quiet=True, node_chunk=4)
        per_span = result.position_scores
        assert per_span.shape == (positioned.n_spans, graph.n_forward, graph.n_backward)
        torch.testing.assert_close(per_span.sum(0), plain, rtol=0, atol=1e-12 * scale)
        assert g.positions == positioned.span_names
        # more than one span carries score: the axis is not a copy of the sum in one slot
        assert int((per_span.abs().amax(dim=(1, 2)) > 1e-6 * scale).sum()) > 1


def _hand_patch_metric(model, data, up_hook, up_head, down_hook, down_head, position):
    """logit_diff of the clean run with ``write_u(corrupted) - write_u(clean)`` added into the
    port's input at ``position`` only; writes read off bridge hook points (float64)."""
    store = {}

    def save(name):
        def fn(t, hook):
            store[name] = t.detach().clone()

        return fn

    for name, tokens in (("clean", data.clean), ("corrupted", data.corrupted)):
        with torch.no_grad():
            model.run_with_hooks(tokens, fwd_hooks=[(up_hook, save(name))])

    def pick(t):
        return t if up_head is None else t[:, :, up_head]

    delta = pick(store["corrupted"]) - pick(store["clean"])

    def patch(t, hook):
        t = t.clone()
        if down_head is None:
            t[:, position] += delta[:, position]
        else:
            t[:, position, down_head] += delta[:, position]
        return t

    with torch.no_grad():
        logits = model.run_with_hooks(data.clean, fwd_hooks=[(down_hook, patch)])[:, -1]
        clean = model(data.clean)[:, -1]
    rows = torch.arange(len(data))

    def diff(x):
        return x[rows, data.answers[:, 0]] - x[rows, data.distractors[:, 0]]

    return float((diff(logits) - diff(clean)).mean())


# (edge name, writer hook, head, reader hook, head, positions): key and value edges at key
# positions before the last; the last layer's MLP matters at the metric's position only
HAND_EDGES = [
    ("input->a1.h2<k>", "blocks.0.hook_resid_pre", None, "blocks.1.hook_k_input", 2, (1, 3)),
    ("a0.h1->a1.h0<v>", "blocks.0.attn.hook_result", 1, "blocks.1.hook_v_input", 0, (0, 2)),
    ("a0.h1->m1", "blocks.0.attn.hook_result", 1, "blocks.1.hook_mlp_in", None, (4,)),
]


def test_exact_per_position_equals_hand_patch_and_the_evaluator():
    model, graph = _case()
    data = with_positions(random_pairs(2, 5, seed=2), "tokens")
    g = graph.copy()
    attribute(model, g, data, method="exact", quiet=True, max_rows=100_000)
    evaluator = CircuitEvaluator(model, g, data)
    full = g.real_edges.expand(data.n_spans, -1, -1)
    for name, up_hook, up_head, down_hook, down_head, positions in HAND_EDGES:
        up, port = g.layout.edge_index(name)
        if name.endswith("m1"):  # a last-layer MLP before the metric's position: exactly 0
            assert g.position_scores[:4, up, port].abs().max() < 1e-12
        for position in positions:
            hand = _hand_patch_metric(model, data, up_hook, up_head, down_hook, down_head, position)
            assert abs(hand) > 1e-8  # the edge matters at this position
            assert g.position_scores[position, up, port] == pytest.approx(hand, rel=1e-5)
            # the one-pass evaluator ablating (position, edge) alone: the same patch
            keep = full.clone()
            keep[position, up, port] = False
            m = evaluator.metrics([keep])[0]
            assert float((m - evaluator.m_full).mean()) == pytest.approx(hand, rel=1e-10)


def test_exact_with_one_span_is_position_agnostic_exact():
    model, graph = _case()
    data = random_pairs(2, 5, seed=4)
    plain = attribute(model, graph.copy(), data, method="exact", quiet=True, max_rows=100_000)
    one = SpanSchema(("all",))
    spans = spans_from_starts([[0], [0]], [5, 5], 5, one)
    result = attribute(
        model, graph.copy(), with_positions(data, one, spans), method="exact", quiet=True,
        max_rows=100_000,
    )  # fmt: skip
    torch.testing.assert_close(result.position_scores[0], plain.scores, rtol=1e-12, atol=1e-15)


def test_keeping_every_span_is_the_full_model_and_none_the_empty_circuit():
    model, graph = _case()
    data = _schema_data(random_pairs(3, 5, seed=5))
    g = graph.copy()
    attribute(model, g, data, method="eap", quiet=True)
    evaluator = CircuitEvaluator(model, g, data)
    full = g.real_edges.expand(data.n_spans, -1, -1).clone()
    m_all, m_none = evaluator.metrics([full, torch.zeros_like(full)])
    torch.testing.assert_close(m_all, evaluator.m_full, rtol=0, atol=1e-10)
    torch.testing.assert_close(m_none, evaluator.m_empty, rtol=0, atol=1e-10)
    curve = position_faithfulness_curve(evaluator, g, fractions=(0.1, 0.5, 1.0))
    assert curve.f[-1] == pytest.approx(1.0, abs=1e-9)
    assert curve.n_edges[-1] == data.n_spans * g.n_edges
    top = top_n_positions(g, 7)
    assert top.n_edges == 7 and top.edges.shape == full.shape


@functools.cache
def _prev_token():
    from circuits import load_model
    from circuits.groundtruth import registry

    truth = registry.build("gt-prev-token", seed=0)
    model = load_model(truth.model)
    return model, Graph.from_model(model), with_positions(truth.data, "tokens")


@pytest.mark.parametrize("method", ("eap", "eap-ig-inputs", "exact"))
def test_prev_token_scores_only_the_positions_it_uses(method):
    # <bos> w1 w2 w3 w4 -> w3, corrupted w3: a0.h0 reads w3's value at position 3 and
    # writes the answer at position 4; nothing at positions 0-2 can matter
    model, graph, data = _prev_token()
    g = graph.copy()
    attribute(model, g, data, method=method, quiet=True, max_rows=100_000)
    per_position = g.position_scores.abs().amax(dim=(1, 2))
    assert per_position[:3].tolist() == [0.0, 0.0, 0.0]
    best = ranked_position_edges(g)[:2].tolist()
    F, K = g.n_forward, g.n_backward
    named = {(i // (F * K), g.layout.edge_name(*divmod(i % (F * K), K))) for i in best}
    assert named == {(3, "input->a0.h0<v>"), (4, "a0.h0->logits")}


def test_prev_token_minimal_circuit_uses_only_those_positions():
    model, graph, data = _prev_token()
    g = graph.copy()
    attribute(model, g, data, method="eap", quiet=True)
    result = minimal_position_circuit(CircuitEvaluator(model, g, data), g, target=0.9)
    assert result.reached and result.f >= 0.9
    kept = {(s, g.layout.edge_name(u, p)) for s, u, p in result.mask.nonzero().tolist()}
    assert kept == {(3, "input->a0.h0<v>"), (4, "a0.h0->logits")}


def test_bad_positions_fail_before_work():
    data = random_pairs(3, 5, seed=0)
    with pytest.raises(PositionError, match="cover the prompt"):
        spans_from_starts([[1, 2, 4]] * 3, [5] * 3, 5, SCHEMA)
    with pytest.raises(PositionError, match="beyond the prompt"):
        spans_from_starts([[0, 2, 6]] * 3, [5] * 3, 5, SCHEMA)
    with pytest.raises(PositionError, match="prompt order"):
        spans_from_starts([[0, 3, 2]] * 3, [5] * 3, 5, SCHEMA)
    with pytest.raises(PositionError, match="3 spans"):
        spans_from_starts([[0, 2]] * 3, [5] * 3, 5, SCHEMA)
    spans = spans_from_starts([[0, 2, 4]] * 3, [5] * 3, 5, SCHEMA)
    other = spans_from_starts([[0, 2, 4], [0, 1, 4], [0, 2, 4]], [5] * 3, 5, SCHEMA)
    with pytest.raises(PositionError, match="prompt 1: the corrupted prompt's spans"):
        with_positions(data, SCHEMA, spans, corrupted_spans=other)
    bad = spans.clone()
    bad[0, 1] = 7
    with pytest.raises(PositionError, match="token 1 is in no span"):
        with_positions(data, SCHEMA, bad)
    with pytest.raises(PositionError, match="one length"):
        with_positions(random_pairs(3, 5, seed=0, padded=True), "tokens")
    with pytest.raises(PositionError, match="needs each prompt's spans"):
        with_positions(data, SCHEMA)
    with pytest.raises(PositionError, match="repeat"):
        SpanSchema(("a", "a"))


@pytest.mark.parametrize("method", ("ifr", "mask", "ensemble:eap,ifr"))
def test_methods_without_per_position_scores_refuse_positioned_data(method, monkeypatch):
    import attribution.passes

    def no_runs(*args, **kwargs):
        raise AssertionError("the position check must come before any model run")

    monkeypatch.setattr(attribution.passes, "collect_writes", no_runs)
    model, graph = _case()
    positioned = with_positions(random_pairs(3, 5, seed=1), "tokens")
    with pytest.raises(PositionError, match="per-position scores"):
        attribute(model, graph.copy(), positioned, method=method, quiet=True)


def test_safetensors_keep_the_position_axis(tmp_path):
    model, graph = _case()
    g = graph.copy()
    attribute(model, g, _schema_data(random_pairs(3, 5, seed=6)), method="eap", quiet=True)
    save_graph(g, tmp_path / "g.safetensors")
    back = load_graph(tmp_path / "g.safetensors")
    assert back.positions == SCHEMA.names
    assert torch.equal(back.position_scores, g.position_scores)
    assert back == g
    plain = graph.copy()
    save_graph(plain, tmp_path / "plain.safetensors")
    assert load_graph(tmp_path / "plain.safetensors").positions is None


def test_position_aware_search_lives_in_the_search_concept_modules():
    """No twin module: selection, minimal search and curve over position-aware edges are in
    select, minimal and faithfulness, and the discovery job runs them as steps of its own."""
    import importlib.util

    import circuits.app.discovery as discovery
    import circuits.search as search
    from circuits.search import faithfulness, minimal, select

    for gone in ("circuits.search.positions", "circuits.app.position_discovery"):
        assert importlib.util.find_spec(gone) is None, gone
    assert search.top_n_positions is select.top_n_positions
    assert search.minimal_position_circuit is minimal.minimal_position_circuit
    assert search.position_faithfulness_curve is faithfulness.position_faithfulness_curve
    assert discovery.find_position_circuit.__module__ == "circuits.app.discovery.job"
