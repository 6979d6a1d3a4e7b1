"""Graph structure: counts against closed forms, and edges checked against real dependencies."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import tiny_bridge

from graphs import Graph, GraphMismatchError, ModelSpec, UnknownEdgeError


def closed_form_edges(L: int, H: int, K: int, parallel: bool) -> int:
    """Count edges by enumerating (writer, reader) pairs from the definitions, independently of
    graphs.layout: a writer in layer lw feeds every port of later layers and the logits; a head
    also feeds its own layer's MLP unless the block is parallel."""
    ports_per_layer = H + 2 * K + 1
    writers = [(-1, "input")] + [
        (layer, kind) for layer in range(L) for kind in ["head"] * H + ["mlp"]
    ]
    total = 0
    for layer, kind in writers:
        total += ports_per_layer * (L - 1 - layer) + 1  # later layers' ports + logits
        if kind == "head" and not parallel:
            total += 1
    return total


@pytest.mark.parametrize(
    "L,H,K,parallel",
    [
        (1, 1, 1, False),
        (2, 4, 4, False),
        (2, 4, 2, False),
        (3, 6, 1, True),
        (4, 8, 2, True),
        (5, 3, 3, True),
    ],
)
def test_edge_count_matches_closed_form(L, H, K, parallel):
    graph = Graph(ModelSpec(n_layers=L, n_heads=H, n_kv_heads=K, parallel_attn_mlp=parallel))
    expected = closed_form_edges(L, H, K, parallel)
    assert graph.n_edges == expected == graph.layout.expected_edge_count()
    assert graph.n_forward == 1 + L * (H + 1)
    assert graph.n_backward == L * (H + 2 * K + 1) + 1
    assert len(list(graph.edges)) == expected
    assert len(set(graph.edges)) == expected  # names are unique


def test_gpt2_small_sizes():
    graph = Graph(ModelSpec(n_layers=12, n_heads=12))
    assert graph.n_nodes == 158
    assert (graph.n_forward, graph.n_backward) == (157, 445)
    assert graph.n_edges == 32_491


def test_llama3_8b_sizes_are_fast_to_build():
    graph = Graph(ModelSpec(n_layers=32, n_heads=32, n_kv_heads=8))
    assert graph.n_edges == closed_form_edges(32, 32, 8, False) == 805_681
    assert graph.edge("a0.h31->a31.kv7<v>").port.nodes == tuple(f"a31.h{h}" for h in range(28, 32))


def test_edge_names_and_lookup():
    graph = Graph(ModelSpec(n_layers=2, n_heads=4))
    assert graph.edge("input->a0.h1<q>").port.port == "q"
    assert graph.edge("a0.h2->m0").upstream.name == "a0.h2"
    assert graph.edge("m1->logits").port.name == "logits"
    for name in list(graph.edges)[::7]:
        assert graph.edge(name).name == name
        assert graph.layout.edge_name(*graph.layout.edge_index(name)) == name
    with pytest.raises(UnknownEdgeError, match="cannot feed"):
        graph.edge("a1.h0->a0.h1<q>")
    with pytest.raises(UnknownEdgeError, match="edge names look like"):
        graph.edge("a0.h9->m1")
    with pytest.raises(UnknownEdgeError, match="cannot feed"):
        graph.edge("a0.h0->a0.h1<k>")  # a head never feeds its own layer's attention


def test_grouped_query_ports():
    graph = Graph(ModelSpec(n_layers=2, n_heads=6, n_kv_heads=2))
    assert graph.port("a1.kv0<k>").nodes == ("a1.h0", "a1.h1", "a1.h2")
    assert graph.port("a1.kv1<v>").nodes == ("a1.h3", "a1.h4", "a1.h5")
    assert graph.port("a1.h4<q>").nodes == ("a1.h4",)
    with pytest.raises(UnknownEdgeError, match="kv"):
        graph.edge("input->a1.h0<k>")


def test_parallel_blocks_have_no_same_layer_head_to_mlp_edges():
    seq = Graph(ModelSpec(n_layers=3, n_heads=4))
    par = Graph(ModelSpec(n_layers=3, n_heads=4, parallel_attn_mlp=True))
    assert seq.n_edges - par.n_edges == 3 * 4
    assert "a1.h2->m1" in seq.edges and "a1.h2->m1" not in par.edges
    assert "a0.h2->m1" in par.edges


def test_top_edges_and_set_scores():
    graph = Graph(ModelSpec(n_layers=2, n_heads=3))
    scores = torch.randn(
        graph.n_forward, graph.n_backward, generator=torch.Generator().manual_seed(1)
    )
    graph.set_scores(scores)
    assert torch.all(graph.scores[~graph.real_edges] == 0)
    by_name = {name: float(scores[graph.layout.edge_index(name)]) for name in graph.edges}
    brute_abs = sorted(by_name, key=lambda n: -abs(by_name[n]))[:5]
    brute_signed = sorted(by_name, key=lambda n: -by_name[n])[:5]
    assert [e.name for e in graph.top_edges(5)] == brute_abs
    assert [e.name for e in graph.top_edges(5, absolute=False)] == brute_signed
    with pytest.raises(GraphMismatchError, match="shape"):
        graph.set_scores(torch.zeros(3, 3))


def test_edges_in_graph_is_a_property_like_edges():
    graph = Graph(ModelSpec(n_layers=2, n_heads=2))
    names = ["input->a0.h0<k>", "a0.h1->m1"]
    for name in names:
        graph.edge(name).in_graph = True
    assert isinstance(Graph.edges, property) and isinstance(Graph.edges_in_graph, property)
    view = graph.edges_in_graph
    assert list(view) == names and len(view) == 2 and view["a0.h1->m1"].in_graph
    with pytest.raises(KeyError):
        view["input->m0"]  # an edge of the model, not of the circuit
    # the old method form still works, with a warning, and gives the same view
    with pytest.warns(DeprecationWarning, match="property now"):
        called = graph.edges_in_graph()
    assert dict(called) == dict(view)


def test_edge_views_write_through_and_membership():
    graph = Graph(ModelSpec(n_layers=2, n_heads=2))
    edge = graph.edge("a0.h1->a1.h0<v>")
    edge.score = 2.5
    edge.in_graph = True
    assert graph.scores[edge.index] == 2.5
    assert graph.count_included_edges() == 1
    assert [e.name for e in graph.edges_in_graph.values()] == ["a0.h1->a1.h0<v>"]
    flags = graph.in_graph.clone()
    graph.set_in_graph(flags)  # nodes follow from edges
    assert {n for n in graph.nodes if graph.node_in_graph(n)} == {"a0.h1", "a1.h0"}
    copy = graph.copy()
    assert copy == graph
    copy.edge("input->logits").score = 1.0
    assert copy != graph


def test_spec_validation_and_mismatch():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        ModelSpec(n_layers=2, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="positive integer"):
        ModelSpec(n_layers=0, n_heads=4)
    graph = Graph(ModelSpec(n_layers=2, n_heads=4, architecture="GPT2LMHeadModel"))
    with pytest.raises(GraphMismatchError, match="n_heads: graph has 4, model has 8"):
        graph.check_compatible(ModelSpec(n_layers=2, n_heads=8))


# ------------------------------------------------------------------ against real models


def test_graph_from_each_architecture(arch_case):
    arch, overrides = arch_case
    bridge = tiny_bridge(arch, **overrides)
    graph = Graph.from_model(bridge)
    cfg = bridge.cfg
    assert graph.spec.architecture == arch
    assert graph.spec.n_layers == cfg.n_layers and graph.spec.n_heads == cfg.n_heads
    assert graph.spec.parallel_attn_mlp == overrides.get("parallel", False)
    k_input = {}
    bridge.run_with_hooks(
        torch.zeros(1, 3, dtype=torch.long),
        fwd_hooks=[("blocks.0.hook_k_input", lambda t, hook: k_input.setdefault("k", t))],
    )
    # the graph's k ports match what the model computes: one per key/value head
    assert k_input["k"].shape[2] == graph.spec.n_kv_heads
    assert graph.spec.grouped_query == (
        arch in {"LlamaForCausalLM", "Qwen2ForCausalLM", "Gemma2ForCausalLM"}
    )
    L, H, K = graph.spec.n_layers, graph.spec.n_heads, graph.spec.n_kv_heads
    assert graph.n_edges == closed_form_edges(L, H, K, graph.spec.parallel_attn_mlp)
    graph.check_compatible(bridge)


def _port_inputs(bridge, tokens, writer_hook=None, writer_slice=None):
    """Run the model, optionally adding noise to one writer's output, and return every port's
    input as a dict keyed by (layer, kind, index) plus the logits."""
    captured = {}
    L = bridge.cfg.n_layers
    hooks = []

    def save(key):
        def hook(t, hook):
            captured[key] = t.detach().clone()

        return hook

    for layer in range(L):
        for kind in ("q", "k", "v"):
            hooks.append((f"blocks.{layer}.hook_{kind}_input", save((layer, kind))))
        hooks.append((f"blocks.{layer}.hook_mlp_in", save((layer, "mlp"))))
    if writer_hook is not None:

        def perturb(t, hook):
            noise = torch.randn(t[writer_slice].shape, generator=torch.Generator().manual_seed(3))
            t = t.clone()
            t[writer_slice] += noise
            return t

        hooks.insert(0, (writer_hook, perturb))
    logits = bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    captured["logits"] = logits.detach()
    return captured


def _changed_ports(graph, base, perturbed):
    changed = torch.zeros(graph.n_backward, dtype=torch.bool)
    layout = graph.layout
    for layer in range(graph.spec.n_layers):
        for h in range(graph.spec.n_heads):
            changed[layout.q_port(layer, h)] = not torch.equal(
                base[(layer, "q")][:, :, h], perturbed[(layer, "q")][:, :, h]
            )
        for g in range(graph.spec.n_kv_heads):
            changed[layout.k_port(layer, g)] = not torch.equal(
                base[(layer, "k")][:, :, g], perturbed[(layer, "k")][:, :, g]
            )
            changed[layout.v_port(layer, g)] = not torch.equal(
                base[(layer, "v")][:, :, g], perturbed[(layer, "v")][:, :, g]
            )
        changed[layout.mlp_port(layer)] = not torch.equal(
            base[(layer, "mlp")], perturbed[(layer, "mlp")]
        )
    changed[layout.logits_port] = not torch.equal(base["logits"], perturbed["logits"])
    return changed


@pytest.mark.parametrize(
    "arch,overrides",
    [("GPT2LMHeadModel", {}), ("GPTNeoXForCausalLM", {"parallel": True}), ("LlamaForCausalLM", {})],
    ids=["gpt2", "neox-parallel", "llama-gqa"],
)
def test_edges_are_exactly_the_model_dependencies(arch, overrides, tokens):
    """Perturb each writer's output and see which port inputs move: that set must be the
    writer's row of real_edges (catches wrong same-layer MLP edges, parallel blocks, GQA)."""
    bridge = tiny_bridge(arch, n_layers=3, **overrides)
    graph = Graph.from_model(bridge)
    base = _port_inputs(bridge, tokens)
    writers = [("hook_embed", (slice(None),), graph.layout.node("input"))]
    for layer, head in itertools.product(range(3), range(graph.spec.n_heads)):
        writers.append(
            (
                f"blocks.{layer}.attn.hook_result",
                (slice(None), slice(None), head),
                graph.layout.node(f"a{layer}.h{head}"),
            )
        )
    for layer in range(3):
        writers.append(
            (f"blocks.{layer}.hook_mlp_out", (slice(None),), graph.layout.node(f"m{layer}"))
        )
    for hook_name, where, node in writers:
        perturbed = _port_inputs(bridge, tokens, hook_name, where)
        changed = _changed_ports(graph, base, perturbed)
        assert torch.equal(changed, graph.real_edges[node.forward_index]), node.name


def test_grouped_kv_port_feeds_exactly_its_query_heads(tokens):
    bridge = tiny_bridge("LlamaForCausalLM", n_heads=4, n_kv_heads=2)
    graph = Graph.from_model(bridge)

    def patterns(perturb_group=None):
        out = {}

        def perturb(t, hook):
            t = t.clone()
            t[:, :, perturb_group] += torch.randn(
                t[:, :, perturb_group].shape, generator=torch.Generator().manual_seed(0)
            )
            return t

        hooks = [
            ("blocks.1.attn.hook_pattern", lambda t, hook: out.setdefault("p", t.detach().clone()))
        ]
        if perturb_group is not None:
            hooks.insert(0, ("blocks.1.hook_k_input", perturb))
        bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        return out["p"]

    base = patterns()
    for g in range(2):
        moved = patterns(g)
        heads_moved = {f"a1.h{h}" for h in range(4) if not torch.allclose(base[:, h], moved[:, h])}
        assert heads_moved == set(graph.port(f"a1.kv{g}<k>").nodes)
