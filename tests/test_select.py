"""Circuit selection and dead-edge pruning (circuits.search.select), on graphs built from specs only."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch

from circuits.search.select import (
    Circuit,
    circuit_size,
    greedy,
    node_scores,
    prune_dead_edges,
    threshold,
    top_fraction,
    top_k,
    top_n,
)
from graphs import Graph, ModelSpec, to_networkx

MHA = ModelSpec(n_layers=3, n_heads=4)
GQA = ModelSpec(n_layers=3, n_heads=4, n_kv_heads=2)
PARALLEL = ModelSpec(n_layers=3, n_heads=4, parallel_attn_mlp=True)
GQA_PARALLEL = ModelSpec(n_layers=4, n_heads=6, n_kv_heads=2, parallel_attn_mlp=True)
SPECS = [MHA, GQA, PARALLEL, GQA_PARALLEL]
SPEC_IDS = ["mha", "gqa", "parallel", "gqa-parallel"]


# ----------------------------------------------------------------------------- helpers
def applied(select, graph: Graph, *args, **kwargs) -> Graph:
    """``graph`` with the circuit ``select(graph, ...)`` returned put into it."""
    circuit = select(graph, *args, **kwargs)  # bad input raises here, before set_circuit
    return graph.set_circuit(circuit)


def scored(spec: ModelSpec, seed: int = 0, *, ties: bool = False) -> Graph:
    graph = Graph(spec)
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(graph.n_forward, graph.n_backward, generator=gen)
    if ties:  # few distinct values, both signs: exercises tie-breaking
        scores = torch.randint(-3, 4, scores.shape, generator=gen).float()
    graph.set_scores(scores)
    return graph


def with_edges(graph: Graph, names) -> Graph:
    mask = torch.zeros_like(graph.real_edges)
    for name in names:
        mask[graph.layout.edge_index(name)] = True
    graph.set_in_graph(mask)
    return graph


def edge_names(graph: Graph) -> set[str]:
    return set(graph.edges_in_graph)


def node_names(graph: Graph) -> set[str]:
    return {n.name for n in graph.layout.nodes if graph.nodes_in_graph[n.index]}


def flat_names(graph: Graph, flats) -> set[str]:
    B = graph.n_backward
    return {graph.layout.edge_name(f // B, f % B) for f in flats}


def brute_ranking(graph: Graph, absolute: bool) -> list[int]:
    """Flat indices of real edges, best first, ties by index: a plain Python sort."""
    B = graph.n_backward
    scores = graph.scores.tolist()
    items = []
    for up, port in graph.real_edges.nonzero().tolist():
        s = scores[up][port]
        items.append((-(abs(s) if absolute else s), up * B + port))
    return [flat for _, flat in sorted(items)]


def brute_alive(graph: Graph) -> tuple[set[str], set[str]]:
    """Alive edges and nodes of graph's circuit, by reachability in its networkx DiGraph (port
    nodes -> reader edges): an edge survives iff its upstream node is reachable from input and
    its port node reaches logits; a node is alive iff both hold for it."""
    G = to_networkx(graph, only_in_graph=True)
    fwd = ({"input"} | nx.descendants(G, "input")) if "input" in G else set()
    bwd = ({"logits"} | nx.ancestors(G, "logits")) if "logits" in G else set()
    edges = {
        d["name"] for u, v, d in G.edges(data=True) if d["kind"] == "edge" and u in fwd and v in bwd
    }
    nodes = {n.name for n in graph.layout.nodes if n.name in fwd and n.name in bwd}
    return edges, nodes


def readers_kept(graph: Graph, port_index: int, kept: set[str]) -> bool:
    return any(name in kept for name in graph.layout.ports[port_index].nodes)


# ----------------------------------------------------------------------------- dead pruning
def test_isolated_edge_is_removed():
    graph = with_edges(Graph(MHA), ["a0.h0->a1.h0<q>"])
    circuit = prune_dead_edges(graph)
    assert graph.count_included_edges() == 1  # the graph itself is left as it was
    graph.set_circuit(circuit)
    assert edge_names(graph) == set()
    assert node_names(graph) == set()
    assert circuit_size(graph) == {"edges": 0, "nodes": 0}


def test_chain_survives_intact():
    chain = {"input->a0.h1<v>", "a0.h1->m1", "m1->logits"}
    graph = applied(prune_dead_edges, with_edges(Graph(MHA), chain))
    assert edge_names(graph) == chain
    assert node_names(graph) == {"input", "a0.h1", "m1", "logits"}
    assert circuit_size(graph) == {"edges": 3, "nodes": 4}


def test_dead_branches_are_cut():
    chain = {"input->a0.h1<v>", "a0.h1->m1", "m1->logits"}
    dead_end = {"a0.h1->a1.h0<k>", "input->a1.h0<q>"}  # a1.h0 writes nowhere
    unreachable = {"a0.h0->logits", "a0.h0->a2.h3<q>", "a2.h3->logits"}  # nothing enters a0.h0
    side = {"input->a2.h2<q>", "a2.h2->logits"}
    graph = applied(prune_dead_edges, with_edges(Graph(MHA), chain | dead_end | unreachable | side))
    assert edge_names(graph) == chain | side
    assert node_names(graph) == {"input", "a0.h1", "m1", "a2.h2", "logits"}


def test_same_layer_head_to_mlp_edge_counts_in_sequential_blocks():
    chain = {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"}
    graph = applied(prune_dead_edges, with_edges(Graph(MHA), chain))
    assert edge_names(graph) == chain
    # a parallel block has no such edge; the MLP's own input edge keeps it alive instead
    parallel = {"input->m0", "m0->logits", "input->a0.h0<k>"}
    graph = applied(prune_dead_edges, with_edges(Graph(PARALLEL), parallel))
    assert edge_names(graph) == {"input->m0", "m0->logits"}


def test_grouped_query_ports():
    # a1.kv0<k> is read by a1.h0 and a1.h1; only a1.h1 reaches the logits
    graph = with_edges(Graph(GQA), ["input->a1.kv0<k>", "a1.h1->logits"])
    assert graph.layout.ports[graph.layout.k_port(1, 0)].nodes == ("a1.h0", "a1.h1")
    applied(prune_dead_edges, graph)
    assert edge_names(graph) == {"input->a1.kv0<k>", "a1.h1->logits"}
    # a1.h0 reads the port but leads nowhere: not an alive node
    assert node_names(graph) == {"input", "a1.h1", "logits"}

    # a1.h2 is in group 1: an edge into group 0's value port neither feeds nor rescues it
    graph = with_edges(Graph(GQA), ["input->a1.kv0<v>", "a1.h2->logits"])
    assert edge_names(applied(prune_dead_edges, graph)) == set()
    graph = with_edges(Graph(GQA), ["input->a1.kv1<v>", "a1.h2->logits"])
    assert edge_names(applied(prune_dead_edges, graph)) == {"input->a1.kv1<v>", "a1.h2->logits"}

    # one edge into a shared port makes every head of the group reachable
    edges = {"input->a0.kv0<k>", "a0.h0->m2", "a0.h1->a2.h3<q>", "m2->logits", "a2.h3->logits"}
    graph = applied(prune_dead_edges, with_edges(Graph(GQA), edges))
    assert edge_names(graph) == edges
    assert node_names(graph) == {"input", "a0.h0", "a0.h1", "m2", "a2.h3", "logits"}


def test_empty_and_full_circuits():
    graph = applied(prune_dead_edges, Graph(GQA))
    assert circuit_size(graph) == {"edges": 0, "nodes": 0}
    graph.set_in_graph(graph.real_edges.clone())
    applied(prune_dead_edges, graph)
    assert torch.equal(graph.in_graph, graph.real_edges)
    assert bool(graph.nodes_in_graph.all())


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_prune_dead_matches_networkx_brute_force(spec):
    gen = torch.Generator().manual_seed(1234)
    densities = [0.03, 0.08, 0.15, 0.25, 0.4]
    changed = survived = 0
    for trial in range(50):
        graph = Graph(spec)
        p = densities[trial % len(densities)]
        mask = graph.real_edges & (torch.rand(graph.real_edges.shape, generator=gen) < p)
        graph.set_in_graph(mask)
        expected_edges, expected_nodes = brute_alive(graph)
        applied(prune_dead_edges, graph)
        assert edge_names(graph) == expected_edges, f"trial {trial}"
        assert node_names(graph) == expected_nodes, f"trial {trial}"
        changed += graph.count_included_edges() < int(mask.sum())
        survived += graph.count_included_edges() > 0
        # idempotent
        again = applied(prune_dead_edges, graph.copy())
        assert again == graph
    assert changed >= 25 and survived >= 25  # the random circuits exercised both outcomes


@pytest.mark.parametrize(
    "select", ["top_n", "top_k", "threshold", "greedy", "top_fraction", "prune"]
)
def test_selections_return_a_circuit_and_leave_the_graph_alone(select):
    graph = scored(MHA, seed=7)
    graph.set_circuit(top_n(graph, 30, prune_dead=False))  # a circuit the selection must not touch
    before = graph.copy()
    call = {
        "top_n": lambda: top_n(graph, 40),
        "top_k": lambda: top_k(graph, 40, prune_dead=True),
        "threshold": lambda: threshold(graph, float(graph.scores.abs().median())),
        "greedy": lambda: greedy(graph, 40),
        "top_fraction": lambda: top_fraction(graph, 0.2),
        "prune": lambda: prune_dead_edges(graph),
    }[select]
    circuit = call()
    assert isinstance(circuit, Circuit)
    assert graph == before and torch.equal(graph.in_graph, before.in_graph)
    assert circuit.edges.shape == graph.real_edges.shape and circuit.nodes.shape == (graph.n_nodes,)
    assert circuit.n_edges == int(circuit.edges.sum()) > 0
    # putting it into a copy gives the same circuit back, and pruning it again changes nothing
    applied_graph = graph.copy().set_circuit(circuit)
    assert applied_graph.circuit == circuit
    assert prune_dead_edges(applied_graph) == circuit  # every one of these prunes dead edges


def test_top_k_makes_the_dead_edge_choice_explicit():
    graph = scored(MHA, seed=8)
    with pytest.raises(TypeError):
        top_k(graph, 10)  # prune_dead has no default
    kept = top_k(graph, 60, prune_dead=False)
    assert kept.n_edges == 60 and kept == top_n(graph, 60, prune_dead=False)
    pruned = top_k(graph, 60, prune_dead=True)
    assert pruned == top_n(graph, 60) and pruned.n_edges <= 60
    assert bool((pruned.edges <= kept.edges).all())


# ----------------------------------------------------------------------------- top_n / threshold
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_top_n_edges_match_sorted_brute_force(spec, absolute, ties):
    graph = scored(spec, seed=3, ties=ties)
    ranking = brute_ranking(graph, absolute)
    for n in [0, 1, 7, 50, graph.n_edges // 2, graph.n_edges]:
        applied(top_n, graph, n, absolute=absolute, prune_dead=False)
        assert graph.count_included_edges() == n
        assert edge_names(graph) == flat_names(graph, ranking[:n])
        assert node_names(graph) == {
            name for e in graph.edges_in_graph.values() for name in (e.upstream.name, *e.port.nodes)
        }
    # the signed ranking really prefers large positive scores
    if not absolute and not ties:
        applied(top_n, graph, 5, absolute=False, prune_dead=False)
        kept = torch.tensor([e.score for e in graph.edges_in_graph.values()])
        rest = graph.scores[graph.real_edges & ~graph.in_graph]
        assert kept.min() >= rest.max()


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_top_n_prunes_dead_by_default(spec):
    graph = scored(spec, seed=5)
    for n in [10, 60, 150]:
        raw = applied(top_n, graph.copy(), n, prune_dead=False)
        expected = applied(prune_dead_edges, raw.copy())
        pruned = applied(top_n, graph, n)
        assert pruned == expected
        assert set(edge_names(pruned)) <= set(edge_names(raw))
        assert (edge_names(pruned), node_names(pruned)) == brute_alive(raw)


@pytest.mark.parametrize("absolute", [True, False])
def test_threshold(absolute):
    graph = scored(GQA, seed=7)
    keys = graph.scores.abs() if absolute else graph.scores
    for value in [-0.5, 0.0, 0.5, 1.5, 10.0]:
        applied(threshold, graph, value, absolute=absolute, prune_dead=False)
        assert torch.equal(graph.in_graph, graph.real_edges & (keys >= value))
        applied(threshold, graph, value, absolute=absolute)
        raw = graph.copy()
        raw.set_in_graph(graph.real_edges & (keys >= value))
        assert graph == applied(prune_dead_edges, raw)
    # the boundary is inclusive
    edge = next(iter(graph.edges.values()))
    applied(threshold, graph, abs(edge.score), prune_dead=False)
    assert edge.in_graph


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("absolute", [True, False])
def test_top_n_node_level(spec, absolute):
    graph = scored(spec, seed=11)
    # brute force node scores: signed sum over outgoing edges
    sums: dict[str, float] = {}
    for edge in graph.edges.values():
        sums[edge.upstream.name] = sums.get(edge.upstream.name, 0.0) + edge.score
    scores = node_scores(graph)
    for node in graph.layout.nodes:
        assert scores[node.index].item() == pytest.approx(sums.get(node.name, 0.0), abs=1e-9)

    candidates = [n for n in graph.layout.nodes if n.kind in ("attention", "mlp")]
    key = {n.name: abs(sums[n.name]) if absolute else sums[n.name] for n in candidates}
    ranked = sorted(candidates, key=lambda n: (-key[n.name], n.index))
    for n in [0, 1, 3, len(candidates) // 2, len(candidates)]:
        kept = {node.name for node in ranked[:n]} | {"input", "logits"}
        applied(top_n, graph, n, absolute=absolute, level="node", prune_dead=False)
        assert node_names(graph) == kept
        expected = {
            graph.layout.edge_name(up, port)
            for up, port in graph.real_edges.nonzero().tolist()
            if graph.layout.upstream[up].name in kept and readers_kept(graph, port, kept)
        }
        assert edge_names(graph) == expected

        applied(top_n, graph, n, absolute=absolute, level="node")
        pruned_edges, pruned_nodes = edge_names(graph), node_names(graph)
        assert pruned_edges <= expected and pruned_nodes <= kept
        raw = graph.copy()
        raw.set_in_graph(torch.zeros_like(raw.in_graph))
        with_edges(raw, expected)
        assert (pruned_edges, pruned_nodes) == brute_alive(raw)


def test_node_level_keeps_shared_kv_edge_if_any_reader_is_kept():
    graph = Graph(GQA)
    scores = torch.zeros(graph.n_forward, graph.n_backward)
    # make a1.h1 (group 0 with a1.h0) and a0.h2 the two best nodes
    scores[graph.layout.head_index(1, 1), graph.layout.logits_port] = 5.0
    scores[graph.layout.head_index(0, 2), graph.layout.logits_port] = -4.0
    graph.set_scores(scores)
    applied(top_n, graph, 2, level="node", prune_dead=False)
    assert node_names(graph) == {"input", "a0.h2", "a1.h1", "logits"}
    names = edge_names(graph)
    assert {"input->a1.kv0<k>", "a0.h2->a1.kv0<v>", "input->a1.h1<q>"} <= names
    assert "input->a1.h0<q>" not in names and "input->a1.kv1<k>" not in names
    assert "a1.h1->logits" in names and "a0.h2->logits" in names
    # with dead pruning everything above survives (input feeds both heads, both reach logits)
    applied(top_n, graph, 2, level="node")
    assert names == edge_names(graph)
    assert node_names(graph) == {"input", "a0.h2", "a1.h1", "logits"}
    # signed: a0.h2's -4 ranks last; the next best (all 0, ties by index) is a0.h0
    applied(top_n, graph, 2, level="node", absolute=False, prune_dead=False)
    assert node_names(graph) == {"input", "a0.h0", "a1.h1", "logits"}


def test_top_fraction_rounding():
    graph = scored(ModelSpec(n_layers=1, n_heads=1), seed=0)
    assert graph.n_edges == 8
    for fraction, n in [(1e-9, 1), (0.1, 1), (0.25, 2), (0.3125, 3), (0.5, 4), (0.99, 8), (1, 8)]:
        applied(top_fraction, graph, fraction, prune_dead=False)
        assert graph.count_included_edges() == n, fraction
        assert edge_names(graph) == edge_names(applied(top_n, graph.copy(), n, prune_dead=False))
    # node level counts heads and MLPs (2 here): 0.25 * 2 = 0.5 rounds up to 1
    applied(top_fraction, graph, 0.25, level="node", prune_dead=False)
    assert graph.count_included_nodes() == 1 + 2  # plus input and logits
    big = scored(GQA, seed=1)
    applied(top_fraction, big, 0.1, prune_dead=False)
    assert big.count_included_edges() == math.floor(0.1 * big.n_edges + 0.5)


# ----------------------------------------------------------------------------- greedy
def brute_greedy(graph: Graph, n: int, absolute: bool) -> list[int]:
    """Reference greedy: rescan every real edge at every step."""
    B = graph.n_backward
    scores = graph.scores.tolist()
    real = graph.real_edges.nonzero().tolist()
    in_set = {"logits"}
    chosen: list[int] = []
    chosen_set: set[int] = set()
    for _ in range(n):
        best = None
        for up, port in real:
            flat = up * B + port
            if flat in chosen_set or not any(r in in_set for r in graph.layout.ports[port].nodes):
                continue
            s = scores[up][port]
            item = (-(abs(s) if absolute else s), flat)
            if best is None or item < best:
                best = item
        if best is None:
            break
        chosen.append(best[1])
        chosen_set.add(best[1])
        in_set.add(graph.layout.upstream[best[1] // B].name)
    return chosen


@pytest.mark.parametrize("spec", [MHA, GQA, GQA_PARALLEL], ids=["mha", "gqa", "gqa-parallel"])
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_greedy_matches_reference(spec, absolute, ties):
    graph = scored(spec, seed=2, ties=ties)
    for n in [1, 5, 40]:
        applied(greedy, graph, n, absolute=absolute, prune_dead=False)
        assert graph.count_included_edges() == n
        assert edge_names(graph) == flat_names(graph, brute_greedy(graph, n, absolute))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_greedy_edges_all_reach_logits(spec):
    graph = scored(spec, seed=4)
    for n in [1, 20, 150, graph.n_edges]:
        applied(greedy, graph, n, prune_dead=False)
        assert graph.count_included_edges() == n
        G = to_networkx(graph, only_in_graph=True)
        for _, v, d in G.edges(data=True):
            if d["kind"] == "edge":
                assert nx.has_path(G, v, "logits"), d["name"]


def test_greedy_first_edge_is_best_edge_into_logits():
    graph = scored(GQA, seed=9)
    logits = graph.layout.logits_port
    for absolute in (True, False):
        column = graph.scores[:, logits].abs() if absolute else graph.scores[:, logits]
        best = int(torch.argmax(column))
        applied(greedy, graph, 1, absolute=absolute, prune_dead=False)
        assert edge_names(graph) == {graph.layout.edge_name(best, logits)}


def test_greedy_is_deterministic_and_prunes_dead():
    graph = scored(GQA_PARALLEL, seed=6, ties=True)
    first = applied(greedy, graph.copy(), 60, prune_dead=False)
    assert applied(greedy, graph.copy(), 60, prune_dead=False) == first
    pruned = applied(greedy, graph, 60)
    assert pruned == applied(prune_dead_edges, first.copy())
    assert pruned.count_included_edges() <= 60


# ----------------------------------------------------------------------------- large shapes
# Their speed is measured by benchmarks/bench_graph_ops.py; here only the results.
def test_top_n_and_prune_dead_on_llama3_8b_shape():
    graph = Graph(ModelSpec(n_layers=32, n_heads=32, n_kv_heads=8))
    assert graph.n_edges == 805_681
    graph.set_scores(torch.randn(graph.n_forward, graph.n_backward, generator=torch.Generator()))
    applied(top_n, graph, 20_000, prune_dead=False)
    assert graph.count_included_edges() == 20_000
    applied(threshold, graph, 2.0, prune_dead=False)
    above = graph.real_edges & (graph.scores.abs() >= 2.0)
    assert torch.equal(graph.in_graph, above) and 0 < int(above.sum()) < 805_681
    applied(prune_dead_edges, graph)
    alive = graph.in_graph.clone()
    assert 0 < int(alive.sum()) <= int(above.sum()) and not bool((alive & ~above).any())
    assert torch.equal(prune_dead_edges(graph).edges, alive)  # pruning is idempotent


def test_greedy_on_gpt2_small_shape():
    graph = scored(ModelSpec(n_layers=12, n_heads=12), seed=0)
    applied(greedy, graph, 2000, prune_dead=False)
    assert graph.count_included_edges() == 2000


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors():
    graph = scored(GQA, seed=0)
    E = graph.n_edges
    with pytest.raises(ValueError, match="n must be >= 0"):
        applied(top_n, graph, -1)
    with pytest.raises(ValueError, match=f"exceeds the {E} edges"):
        applied(top_n, graph, E + 1)
    with pytest.raises(ValueError, match="exceeds the 15 heads and MLPs"):
        applied(top_n, graph, 16, level="node")
    with pytest.raises(TypeError, match="top_fraction"):
        applied(top_n, graph, 0.5)
    with pytest.raises(TypeError, match="n must be an int"):
        applied(top_n, graph, True)
    with pytest.raises(ValueError, match="level must be 'edge' or 'node'"):
        applied(top_n, graph, 3, level="edges")
    with pytest.raises(ValueError, match="level must be"):
        applied(top_fraction, graph, 0.5, level="head")
    for fraction in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            applied(top_fraction, graph, fraction)
    with pytest.raises(TypeError, match="fraction must be a number"):
        applied(top_fraction, graph, "0.5")
    with pytest.raises(ValueError, match="NaN"):
        applied(threshold, graph, float("nan"))
    with pytest.raises(ValueError, match="n must be >= 0"):
        applied(greedy, graph, -3)
    with pytest.raises(ValueError, match="exceeds"):
        applied(greedy, graph, E + 1)
    with pytest.raises(TypeError, match="graphs.Graph"):
        applied(top_n, graph.scores, 3)
    with pytest.raises(TypeError, match="graphs.Graph"):
        applied(prune_dead_edges, None)

    before = graph.in_graph.clone()
    graph.scores[graph.layout.edge_index("input->logits")] = float("nan")
    graph.scores[graph.layout.edge_index("a0.h1->a2.kv1<v>")] = float("nan")
    for call in (
        lambda: applied(top_n, graph, 3),
        lambda: applied(top_n, graph, 3, level="node"),
        lambda: applied(top_fraction, graph, 0.5),
        lambda: applied(threshold, graph, 0.1),
        lambda: applied(greedy, graph, 3),
        lambda: node_scores(graph),
    ):
        with pytest.raises(ValueError, match="has 2 NaN score"):
            call()
    assert torch.equal(graph.in_graph, before)  # nothing was written
