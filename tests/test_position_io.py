"""Position-aware graphs in memory and in files (issue #17): ``set_circuit`` with ``[S, F, K]``
circuits, ``set_scores`` never leaving stale position scores, and exact round trips of span
names, per-span scores and per-span circuits through JSON, safetensors, GraphML and networkx.

The GraphML checks parse the file with ElementTree (as another tool would) and compare its
node and edge ids with the set written out here from the layout, one per (node, span).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import networkx as nx
import pytest
import torch
from safetensors.torch import save_file

from circuits.search import position_circuit
from graphs import (
    Circuit,
    Graph,
    GraphFormatError,
    GraphMismatchError,
    InconsistentGraphError,
    ModelSpec,
    from_networkx,
    load_graph,
    load_graphml,
    load_json,
    save_graph,
    save_graphml,
    save_json,
    to_networkx,
)

MHA = ModelSpec(n_layers=3, n_heads=4, architecture="GPT2LMHeadModel", model_name="tiny-mha")
GQA = ModelSpec(n_layers=2, n_heads=4, n_kv_heads=2, model_name="tiny-gqa")
SPECS = {"mha": MHA, "gqa": GQA}
SPANS = ("prefix", "IO", "S1+1", "end")
FORMATS = ("json", "safetensors", "graphml")
GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"
# values that break naive float formatting, each placed at one span of one edge
SPECIAL = [1e-30, -1e-30, 1e-45, 3.4e38, -3.4e38, -0.0, 0.1, 1 / 3, 16777217.0]


def positioned_graph(spec: ModelSpec, seed: int, circuit: str = "positions") -> Graph:
    """Random per-span scores over many magnitudes (plus SPECIAL), and a circuit: ``positions``
    (about 20% of the (span, edge) pairs), ``plain`` (a position-agnostic one) or ``none``."""
    graph = Graph(spec)
    gen = torch.Generator().manual_seed(seed)
    shape = (len(SPANS), graph.n_forward, graph.n_backward)
    magnitude = 10.0 ** torch.randint(-20, 20, shape, generator=gen).double()
    scores = (torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude).float()
    real = graph.real_edges.nonzero().tolist()
    for i, value in enumerate(SPECIAL):
        up, port = real[i]
        scores[i % len(SPANS), up, port] = value
    up, port = real[len(SPECIAL)]
    scores[:, up, port] = -0.0  # a sum of -0.0s is -0.0: the sign bit must survive
    graph.set_position_scores(SPANS, scores)
    if circuit == "positions":
        graph.set_circuit(position_circuit(graph, torch.rand(shape, generator=gen) < 0.2))
    elif circuit == "plain":
        graph.set_in_graph(torch.rand(shape[1:], generator=gen) < 0.3)
    return graph


def assert_same(a: Graph, b: Graph) -> None:
    """Equal graphs with bit-identical scores (``==`` alone treats -0.0 as 0.0)."""
    assert a == b
    assert b.positions == a.positions
    assert torch.equal(a.position_scores.view(torch.int32), b.position_scores.view(torch.int32))
    assert torch.equal(a.scores.view(torch.int32), b.scores.view(torch.int32))
    if a.position_in_graph is None:
        assert b.position_in_graph is None
    else:
        assert torch.equal(a.position_in_graph, b.position_in_graph)
    assert a.circuit == b.circuit


# ------------------------------------------------------------------ membership


def test_set_circuit_keeps_the_per_span_circuit_and_its_union():
    graph = positioned_graph(MHA, seed=0, circuit="none")
    shape = (len(SPANS), graph.n_forward, graph.n_backward)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[(1, *graph.layout.edge_index("input->a1.h2<k>"))] = True
    mask[(3, *graph.layout.edge_index("input->a1.h2<k>"))] = True
    mask[(3, *graph.layout.edge_index("a1.h2->logits"))] = True
    mask[(0, *graph.layout.edge_index("input->a0.h0<q>"))] = True
    mask[2, graph.layout.mlp_index(2), graph.layout.q_port(0, 0)] = True  # m2 -> a0.h0<q>: no edge
    circuit = position_circuit(graph, mask)
    graph.set_circuit(circuit)
    assert graph.position_in_graph.shape == shape
    assert int(graph.position_in_graph.sum()) == 4
    assert set(graph.edges_in_graph) == {"input->a0.h0<q>", "input->a1.h2<k>", "a1.h2->logits"}
    assert {n for n in graph.nodes if graph.node_in_graph(n)} == {
        "input",
        "a0.h0",
        "a1.h2",
        "logits",
    }
    assert graph.circuit == circuit and graph.circuit.edges.shape == shape
    # one edge's flag written through the edge view applies at every span
    graph.edge("a1.h2->logits").in_graph = False
    assert not graph.position_in_graph[
        (slice(None), *graph.layout.edge_index("a1.h2->logits"))
    ].any()
    graph.check_positions()
    # a plain circuit replaces the per-span one
    graph.set_circuit(graph.circuit_of(graph.real_edges))
    assert graph.position_in_graph is None and graph.circuit.edges.dim() == 2
    # == and copy() see the per-span circuit: same union over spans, other spans -> unequal
    at_span = {}
    for s in (0, 1):
        one = torch.zeros(shape, dtype=torch.bool)
        one[(s, *graph.layout.edge_index("input->a1.h2<k>"))] = True
        at_span[s] = positioned_graph(MHA, seed=0, circuit="none").set_circuit(
            position_circuit(graph, one)
        )
    assert torch.equal(at_span[0].in_graph, at_span[1].in_graph)
    assert at_span[0] != at_span[1]
    copied = at_span[0].copy()
    assert copied == at_span[0] and copied.position_in_graph is not at_span[0].position_in_graph


def test_set_circuit_refuses_mismatched_shapes():
    plain = Graph(MHA)
    shape = (len(SPANS), plain.n_forward, plain.n_backward)
    circuit = Circuit(torch.ones(shape, dtype=torch.bool), torch.ones(plain.n_nodes, dtype=bool))
    with pytest.raises(
        GraphMismatchError, match=r"\(4, 16, 40\).* no position axis \(\(16, 40\)\)"
    ):
        plain.set_circuit(circuit)
    graph = positioned_graph(MHA, seed=1, circuit="none")
    wrong = Circuit(torch.ones(2, *shape[1:], dtype=torch.bool), circuit.nodes)
    with pytest.raises(
        GraphMismatchError, match=r"\(2, 16, 40\), this graph with 4 spans needs \(4, 16, 40\)"
    ):
        graph.set_circuit(wrong)
    with pytest.raises(GraphMismatchError, match=r"nodes_in_graph has shape \(3,\)"):
        graph.set_circuit(Circuit(circuit.edges, torch.ones(3, dtype=torch.bool)))
    assert graph.position_in_graph is None  # nothing was set by the failed calls


def test_set_scores_drops_position_scores_it_no_longer_sums_to():
    graph = positioned_graph(MHA, seed=2)
    kept = graph.position_in_graph.clone()
    graph.set_scores(graph.scores.clone())  # the same sums: the axis stays
    assert graph.positions == SPANS and torch.equal(graph.position_in_graph, kept)
    union = graph.in_graph.clone()
    graph.set_scores(graph.scores * 2)
    assert graph.positions is None and graph.position_scores is None
    assert graph.position_in_graph is None
    assert torch.equal(graph.in_graph, union)  # the circuit stays, as its union over spans
    graph.check_positions()

    graph = positioned_graph(MHA, seed=2)
    edge = graph.edge("input->a1.h2<k>")
    edge.score = edge.score  # unchanged: still the sum
    assert graph.positions == SPANS
    edge.score = -edge.score - 1.0
    assert graph.positions is None and graph.position_scores is None

    graph = positioned_graph(MHA, seed=2)
    graph.reset()
    assert graph.positions == SPANS and not graph.position_scores.any()
    assert graph.position_in_graph is None and graph.count_included_edges() == 0
    graph.check_positions()

    graph = positioned_graph(MHA, seed=2)
    graph.set_position_scores(("a", "b"), torch.zeros(2, graph.n_forward, graph.n_backward))
    assert graph.position_in_graph is None  # other spans: the old per-span circuit is gone
    assert graph.count_included_edges() > 0


def test_savers_refuse_a_graph_whose_tensors_disagree(tmp_path):
    graph = positioned_graph(MHA, seed=3)
    graph.scores[0, 0] += 1.0  # a direct write: scores no longer the sum over spans
    for fmt in FORMATS:
        with pytest.raises(InconsistentGraphError, match="'input->a0.h0<q>'"):
            save_graph(graph, tmp_path / f"g.{fmt}")
    graph = positioned_graph(MHA, seed=3)
    graph.in_graph[~graph.in_graph & graph.real_edges] = True
    with pytest.raises(InconsistentGraphError, match="union over spans"):
        save_graph(graph, tmp_path / "g.json")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("circuit", ("positions", "plain", "none"))
@pytest.mark.parametrize("spec_id", SPECS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_file_round_trip_is_exact(tmp_path, fmt, spec_id, circuit):
    graph = positioned_graph(SPECS[spec_id], seed=4, circuit=circuit)
    graph.nodes_in_graph[1] = not bool(graph.nodes_in_graph[1])  # node flags stored, not derived
    graph.metadata = {"task": "ioi"}
    save_graph(graph, tmp_path / f"g.{fmt}")
    back = load_graph(tmp_path / f"g.{fmt}")
    assert_same(graph, back)
    assert back.metadata == {"task": "ioi"}


@pytest.mark.parametrize("circuit", ("positions", "plain"))
@pytest.mark.parametrize("spec_id", SPECS)
def test_networkx_round_trip_is_exact(spec_id, circuit):
    graph = positioned_graph(SPECS[spec_id], seed=5, circuit=circuit)
    assert_same(graph, from_networkx(to_networkx(graph)))
    # only the circuit: its per-span flags and node flags come back, other scores are 0
    back = from_networkx(to_networkx(graph, only_in_graph=True))
    assert torch.equal(back.in_graph, graph.in_graph)
    assert torch.equal(back.nodes_in_graph, graph.nodes_in_graph)
    assert (back.position_in_graph is None) == (circuit == "plain")
    kept = graph.in_graph.expand_as(graph.position_scores)
    if circuit == "positions":
        assert torch.equal(back.position_in_graph, graph.position_in_graph)
        kept = graph.position_in_graph
    assert torch.equal(back.position_scores, torch.where(kept, graph.position_scores, 0.0))


def test_token_position_names_round_trip(tmp_path):
    # spans named "0", "1", ... must come back as strings, not numbers, in every format
    graph = Graph(GQA)
    gen = torch.Generator().manual_seed(13)
    graph.set_position_scores(
        range(3), torch.randn(3, graph.n_forward, graph.n_backward, generator=gen)
    )
    graph.set_circuit(position_circuit(graph, graph.position_scores.abs() > 1.5))
    assert graph.positions == ("0", "1", "2")
    for fmt in FORMATS:
        save_graph(graph, tmp_path / f"g.{fmt}")
        assert_same(graph, load_graph(tmp_path / f"g.{fmt}"))


def test_special_scores_round_trip(tmp_path):
    graph = positioned_graph(MHA, seed=6)
    up, port = graph.real_edges.nonzero()[20].tolist()
    scores = graph.position_scores.clone()
    scores[:, up, port] = torch.tensor([float("nan"), 1.0, float("inf"), 2.0])
    up2, port2 = graph.real_edges.nonzero()[21].tolist()
    scores[1:3, up2, port2] = float("-inf")
    circuit = graph.circuit
    graph.set_position_scores(SPANS, scores)
    graph.set_circuit(circuit)
    for fmt in FORMATS:
        save_graph(graph, tmp_path / f"g.{fmt}")
        back = load_graph(tmp_path / f"g.{fmt}")
        a, b = graph.position_scores, back.position_scores
        assert torch.equal(a.isnan(), b.isnan()) and int(a.isnan().sum()) == 1
        assert torch.equal(a[~a.isnan()], b[~b.isnan()])
        assert bool(back.scores[up, port].isnan())  # NaN at one span: the sum is NaN
        assert torch.equal(back.position_in_graph, graph.position_in_graph)


def _graphml_elements(path):
    root = ET.parse(path).getroot()
    keys = {k.get("id"): k.get("attr.name") for k in root.iter(f"{GRAPHML}key")}

    def data(element):
        return {keys[d.get("key")]: d.text or "" for d in element.findall(f"{GRAPHML}data")}

    (g,) = root.findall(f"{GRAPHML}graph")
    nodes = {n.get("id"): data(n) for n in g.findall(f"{GRAPHML}node")}
    edges = [(e.get("source"), e.get("target"), data(e)) for e in g.findall(f"{GRAPHML}edge")]
    return data(g), nodes, edges


@pytest.mark.parametrize("spec_id", SPECS)
def test_graphml_has_one_node_per_node_and_span(tmp_path, spec_id):
    graph = positioned_graph(SPECS[spec_id], seed=7)
    save_graph(graph, tmp_path / "g.graphml")
    attrs, nodes, edges = _graphml_elements(tmp_path / "g.graphml")
    assert json.loads(attrs["positions"]) == list(SPANS)
    L, H, K = graph.spec.n_layers, graph.spec.n_heads, graph.spec.n_kv_heads
    names = (
        ["input", "logits"]
        + [f"a{layer}.h{h}" for layer in range(L) for h in range(H)]
        + [f"m{layer}" for layer in range(L)]
    )
    ports = [f"a{layer}.h{h}<q>" for layer in range(L) for h in range(H)] + [
        f"a{layer}.{'kv' if K < H else 'h'}{g}<{kind}>"
        for layer in range(L)
        for g in range(K)
        for kind in "kv"
    ]
    # exactly S x (nodes + attention ports), named node@span, each saying which node and span
    expected = {f"{n}@{s}": (n, s, i) for n in names + ports for i, s in enumerate(SPANS)}
    assert len(nodes) == len(SPANS) * (len(names) + L * (H + 2 * K)) == len(expected)
    assert {k: (v["node"], v["span"], int(v["span_index"])) for k, v in nodes.items()} == expected

    real = [(u, v, d) for u, v, d in edges if d["kind"] == "edge"]
    assert len(real) == len(SPANS) * graph.n_edges
    assert sum(d["kind"] == "port" for _, _, d in edges) == len(SPANS) * 3 * L * H
    assert all(nodes[u]["span"] == nodes[v]["span"] == d["span"] for u, v, d in edges)
    by_copy = {(d["name"], d["span"]): (u, v, d) for u, v, d in real}
    for s, up, port in graph.position_in_graph.nonzero().tolist()[:12]:
        name = graph.layout.edge_name(up, port)
        u, v, d = by_copy[(name, SPANS[s])]
        assert (u, v) == (
            f"{graph.layout.upstream[up].name}@{SPANS[s]}",
            f"{graph.layout.ports[port].name}@{SPANS[s]}",
        )
        stored = torch.tensor(float(d["score"]), dtype=torch.float32)
        assert stored.view(torch.int32) == graph.position_scores[s, up, port].view(torch.int32)
        assert d["in_graph"] == "True"
    n_in = sum(d["in_graph"] == "True" for _, _, d in real)
    assert n_in == int(graph.position_in_graph.sum()) > 0


def test_graphml_of_only_the_circuit_keeps_the_copies_at_its_ends(tmp_path):
    graph = positioned_graph(MHA, seed=8)
    save_graphml(graph, tmp_path / "c.graphml", only_in_graph=True)
    _, nodes, edges = _graphml_elements(tmp_path / "c.graphml")
    ends = set()
    for s, up, port in graph.position_in_graph.nonzero().tolist():
        p = graph.layout.ports[port]
        ends.add(f"{graph.layout.upstream[up].name}@{SPANS[s]}")
        ends.update(f"{reader}@{SPANS[s]}" for reader in p.nodes)
        ends.add(f"{p.name}@{SPANS[s]}")  # the port's own node (an MLP's is the MLP)
    assert set(nodes) == ends
    assert sum(d["kind"] == "edge" for _, _, d in edges) == int(graph.position_in_graph.sum())
    back = load_graphml(tmp_path / "c.graphml")
    assert torch.equal(back.position_in_graph, graph.position_in_graph)


def test_position_agnostic_layouts_on_request(tmp_path):
    graph = positioned_graph(MHA, seed=9)
    save_graphml(graph, tmp_path / "flat.graphml", positions=False)
    flat = load_graphml(tmp_path / "flat.graphml")
    assert flat.positions is None and flat.position_in_graph is None
    assert torch.equal(flat.scores, graph.scores) and torch.equal(flat.in_graph, graph.in_graph)
    # one node per component and attention port (3 layers x (4 q + 4 k + 4 v)), no spans
    assert nx.number_of_nodes(to_networkx(graph, positions=False)) == graph.n_nodes + 3 * 12
    with pytest.raises(GraphMismatchError, match="positions=True needs a position-aware"):
        to_networkx(Graph(MHA), positions=True)


# ------------------------------------------------------------------ old files and bad files


def test_position_agnostic_files_still_load(tmp_path):
    plain = Graph(MHA)
    plain.set_scores(torch.randn(plain.n_forward, plain.n_backward))
    save_json(plain, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert "positions" not in data and set(data["edges"][0]) == {
        "name", "source", "target", "port", "score", "in_graph",
    }  # fmt: skip
    assert load_json(tmp_path / "g.json") == plain
    # safetensors as written before positions existed, and before per-span circuits
    graph = positioned_graph(MHA, seed=10)
    meta = {
        "format": "circuit-discovery-graph",
        "schema_version": "1",
        "model": json.dumps(MHA.to_dict()),
    }
    tensors = {
        "scores": graph.scores,
        "in_graph": graph.in_graph,
        "nodes_in_graph": graph.nodes_in_graph,
    }
    save_file(tensors, tmp_path / "old.safetensors", metadata=meta)
    old = load_graph(tmp_path / "old.safetensors")
    assert old.positions is None and torch.equal(old.scores, graph.scores)
    meta["positions"] = json.dumps(list(SPANS))
    tensors["position_scores"] = graph.position_scores
    save_file(tensors, tmp_path / "v.safetensors", metadata=meta)
    back = load_graph(tmp_path / "v.safetensors")
    assert torch.equal(back.position_scores, graph.position_scores)
    assert back.position_in_graph is None and torch.equal(back.in_graph, graph.in_graph)
    # saved by the old saver after set_scores made the position scores stale: loads without them
    tensors["scores"] = graph.scores * 2
    save_file(tensors, tmp_path / "stale.safetensors", metadata=meta)
    with pytest.warns(UserWarning, match="do not sum to its 'scores'"):
        stale = load_graph(tmp_path / "stale.safetensors")
    assert stale.positions is None and stale.position_scores is None
    assert torch.equal(stale.scores, graph.scores * 2)


def _edited_json(tmp_path, edit):
    graph = positioned_graph(MHA, seed=11)
    save_json(graph, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    edit(data, graph)
    (tmp_path / "g.json").write_text(json.dumps(data))
    return tmp_path / "g.json"


def _first_kept(data):
    return next(e for e in data["edges"] if e["in_graph_positions"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d, g: d["edges"][0]["position_scores"].__setitem__(0, 5.0), "sum to"),
        (lambda d, g: d["edges"][3]["position_scores"].pop(), "has 3 position scores"),
        (lambda d, g: d["edges"][2].pop("position_scores"), "lacks 'position_scores'"),
        (lambda d, g: _first_kept(d).__setitem__("in_graph_positions", ["nope"]), "'nope'"),
        (lambda d, g: _first_kept(d).__setitem__("in_graph_positions", []), "at 0 spans"),
        (lambda d, g: _first_kept(d).pop("in_graph_positions"), "lacks 'in_graph_positions'"),
        (lambda d, g: d.__setitem__("positions", ["a", "a", "b", "c"]), "distinct span names"),
        (lambda d, g: d.pop("positions"), "no top-level 'positions'"),
    ],
)
def test_inconsistent_json_is_refused(tmp_path, edit, message):
    with pytest.raises(GraphFormatError, match=message):
        load_json(_edited_json(tmp_path, edit))


def test_inconsistent_safetensors_and_networkx_are_refused(tmp_path):
    graph = positioned_graph(MHA, seed=12)
    meta = {
        "format": "circuit-discovery-graph",
        "schema_version": "1",
        "model": json.dumps(MHA.to_dict()),
        "positions": json.dumps(list(SPANS)),
    }
    pig = graph.position_in_graph.clone()
    up, port = graph.in_graph.nonzero()[0].tolist()
    pig[:, up, port] = False  # an edge in_graph at no span
    save_file(
        {
            "scores": graph.scores,
            "in_graph": graph.in_graph,
            "nodes_in_graph": graph.nodes_in_graph,
            "position_scores": graph.position_scores,
            "position_in_graph": pig,
        },
        tmp_path / "g.safetensors",
        metadata=meta,
    )
    with pytest.raises(GraphFormatError, match="not the union over spans"):
        load_graph(tmp_path / "g.safetensors")
    tensors = {
        "scores": graph.scores + 1.0,
        "in_graph": graph.in_graph,
        "nodes_in_graph": graph.nodes_in_graph,
        "position_scores": graph.position_scores,
        "position_in_graph": graph.position_in_graph,
    }
    save_file(tensors, tmp_path / "g.safetensors", metadata=meta)
    with pytest.raises(GraphFormatError, match="not the sum over spans"):
        load_graph(tmp_path / "g.safetensors")

    G = to_networkx(graph)
    u, v, data = next((u, v, d) for u, v, d in G.edges(data=True) if d["kind"] == "edge")
    G.remove_edge(u, v)
    with pytest.raises(GraphFormatError, match=f"lacks its copy at span '{data['span']}'"):
        from_networkx(G)
    G.add_edge(u, v.replace(f"@{data['span']}", f"@{SPANS[-1]}"), **data)
    if data["span"] != SPANS[-1]:
        with pytest.raises(GraphFormatError, match="joins spans"):
            from_networkx(G)
    G = to_networkx(graph)
    G.nodes["a0.h1@IO"]["span_index"] = 0
    with pytest.raises(GraphFormatError, match="should be named 'a0.h1@prefix'"):
        from_networkx(G)
