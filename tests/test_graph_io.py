"""Graph files (GraphML, JSON, safetensors) and networkx conversion: exact round trips, the
GraphML structure as other tools see it, and clear errors on malformed files."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest
import torch
from safetensors.torch import save_file

from graphs import (
    Graph,
    GraphFormatError,
    GraphMismatchError,
    ModelSpec,
    from_networkx,
    load_graph,
    load_graphml,
    load_json,
    load_safetensors,
    save_graph,
    save_graphml,
    save_json,
    save_safetensors,
    to_networkx,
)
from graphs.atomic_files import atomic_write
from graphs.schema import FORMAT_NAME, SCHEMA_VERSION

MHA = ModelSpec(
    n_layers=3,
    n_heads=4,
    d_model=32,
    d_head=8,
    d_vocab=100,
    architecture="GPT2LMHeadModel",
    model_name="tiny-mha",
)
GQA = ModelSpec(
    n_layers=2, n_heads=4, n_kv_heads=2, architecture="LlamaForCausalLM", model_name="tiny-gqa"
)
PARALLEL = ModelSpec(
    n_layers=2, n_heads=3, parallel_attn_mlp=True, architecture="GPTNeoXForCausalLM"
)
GPT2_SMALL = ModelSpec(
    n_layers=12,
    n_heads=12,
    d_model=768,
    d_head=64,
    d_vocab=50257,
    architecture="GPT2LMHeadModel",
    model_name="gpt2",
)
SPECS = {"mha": MHA, "gqa": GQA, "parallel": PARALLEL}
FORMATS = ("graphml", "json", "safetensors")
SAVE = {"graphml": save_graphml, "json": save_json, "safetensors": save_safetensors}
LOAD = {"graphml": load_graphml, "json": load_json, "safetensors": load_safetensors}
GRAPHML_NS = "{http://graphml.graphdrawing.org/xmlns}"
# Values that break naive float formatting: tiny, subnormal, near float32 max, negative zero.
SPECIAL_SCORES = [1e-30, -1e-30, 1e-45, 3.4e38, -3.4e38, -0.0, 0.1, 1 / 3, 16777217.0]


def random_graph(spec: ModelSpec, seed: int = 0, *, node_flags: bool = False) -> Graph:
    """Scores spread over many magnitudes plus SPECIAL_SCORES, ~30% of edges in the circuit;
    with ``node_flags`` the node flags are random too instead of derived from the edges."""
    graph = Graph(spec)
    gen = torch.Generator().manual_seed(seed)
    shape = (graph.n_forward, graph.n_backward)
    magnitude = 10.0 ** torch.randint(-30, 30, shape, generator=gen).to(torch.float64)
    graph.set_scores((torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude).float())
    for (up, port), value in zip(
        graph.real_edges.nonzero().tolist()[: len(SPECIAL_SCORES)], SPECIAL_SCORES, strict=True
    ):
        graph.scores[up, port] = value
    flags = torch.rand(shape, generator=gen) < 0.3
    nodes = torch.rand(graph.n_nodes, generator=gen) < 0.5 if node_flags else None
    graph.set_in_graph(flags, nodes)
    return graph


def assert_same(a: Graph, b: Graph) -> None:
    """Equal spec, flags and bit-identical scores (torch.equal alone treats -0.0 == 0.0)."""
    assert a.spec == b.spec
    assert torch.equal(a.scores.view(torch.int32), b.scores.view(torch.int32))
    assert torch.equal(a.in_graph & a.real_edges, b.in_graph & b.real_edges)
    assert torch.equal(a.nodes_in_graph, b.nodes_in_graph)
    assert a == b


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("spec_id", SPECS)
def test_file_round_trip_is_exact(tmp_path, fmt, spec_id):
    graph = random_graph(SPECS[spec_id], seed=1, node_flags=True)
    path = tmp_path / f"graph.{fmt}"
    save_graph(graph, path)
    assert_same(graph, load_graph(path))
    SAVE[fmt](graph, tmp_path / "direct")
    assert_same(graph, LOAD[fmt](tmp_path / "direct"))


@pytest.mark.parametrize("spec_id", SPECS)
def test_networkx_round_trip_is_exact(spec_id):
    graph = random_graph(SPECS[spec_id], seed=2, node_flags=True)
    assert_same(graph, from_networkx(to_networkx(graph)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_and_inf_round_trip(tmp_path, fmt):
    graph = random_graph(GQA, seed=3)
    edges = list(graph.edges)
    for name, value in zip(edges[10:14], [math.nan, math.inf, -math.inf, math.nan], strict=True):
        graph.scores[graph.edge(name).index] = value
    path = tmp_path / f"graph.{fmt}"
    save_graph(graph, path)
    loaded = load_graph(path)
    assert torch.equal(loaded.scores.isnan(), graph.scores.isnan())
    assert loaded.scores.isnan().sum() == 2
    finite = ~graph.scores.isnan()
    assert torch.equal(
        loaded.scores[finite].view(torch.int32), graph.scores[finite].view(torch.int32)
    )
    assert torch.equal(loaded.in_graph, graph.in_graph)
    if fmt == "json":  # JSON has no NaN/inf literals: null and strings stand in for them
        text = path.read_text()
        assert f'"name": "{edges[10]}"' in text and '"score": null' in text
        assert '"score": "inf"' in text and '"score": "-inf"' in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_only_in_graph_networkx_and_graphml(tmp_path):
    graph = random_graph(GQA, seed=4)
    G = to_networkx(graph, only_in_graph=True)
    assert G.graph["only_in_graph"] is True
    kept = {d["name"] for _, _, d in G.edges(data=True) if d["kind"] == "edge"}
    assert kept == set(graph.edges_in_graph)
    assert all(d["in_graph"] for _, _, d in G.edges(data=True) if d["kind"] == "edge")
    for name in graph.nodes:  # nodes: flagged ones plus those the kept edges touch
        assert (name in G) == graph.node_in_graph(name)

    save_graphml(graph, tmp_path / "circuit.graphml", only_in_graph=True)
    for loaded in (from_networkx(G), load_graphml(tmp_path / "circuit.graphml")):
        assert torch.equal(loaded.in_graph, graph.in_graph)
        assert torch.equal(loaded.nodes_in_graph, graph.nodes_in_graph)
        expected = torch.where(graph.in_graph, graph.scores, 0.0)
        assert torch.equal(loaded.scores.view(torch.int32), expected.view(torch.int32))


def test_json_random_float32_bit_patterns_round_trip(tmp_path):
    """Every finite float32 must come back bit-identical from its short decimal text."""
    graph = Graph(GPT2_SMALL)
    bits = torch.randint(
        -(2**31),
        2**31 - 1,
        (graph.n_forward, graph.n_backward),
        generator=torch.Generator().manual_seed(5),
        dtype=torch.int64,
    )
    values = bits.to(torch.int32).view(torch.float32)
    graph.set_scores(torch.where(values.isfinite(), values, 1.5))
    save_json(graph, tmp_path / "g.json")
    assert_same(graph, load_json(tmp_path / "g.json"))


def test_json_is_readable(tmp_path):
    graph = Graph(MHA)
    graph.scores[graph.edge("input->a0.h0<q>").index] = 0.1
    graph.in_graph[graph.edge("a1.h2->m2").index] = True
    save_json(graph, tmp_path / "g.json")
    lines = (tmp_path / "g.json").read_text().splitlines()
    edge_lines = [line for line in lines if '"source"' in line]
    assert len(edge_lines) == graph.n_edges  # one edge per line
    assert (
        '{"name": "input->a0.h0<q>", "source": "input", "target": "a0.h0<q>", "port": "q", '
        '"score": 0.1, "in_graph": false},'
    ) in [line.strip() for line in lines]
    assert any('"a1.h2->m2"' in line and '"in_graph": true' in line for line in edge_lines)
    data = json.loads("\n".join(lines))
    assert (data["format"], data["schema_version"]) == (FORMAT_NAME, SCHEMA_VERSION)
    assert data["model"]["model_name"] == "tiny-mha"
    assert len(data["nodes"]) == graph.n_nodes


# ------------------------------------------------------------------ GPT-2 small size


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory):
    """A GPT-2-small-shaped graph saved in every format and loaded back (the save and load
    times are measured by ``benchmarks/bench_graph_ops.py``)."""
    directory = tmp_path_factory.mktemp("gpt2")
    graph = random_graph(GPT2_SMALL, seed=6)
    paths, loaded = {}, {}
    for fmt in FORMATS:
        paths[fmt] = directory / f"gpt2.{fmt}"
        save_graph(graph, paths[fmt])
        loaded[fmt] = load_graph(paths[fmt])
    return graph, paths, loaded


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_gpt2_small_round_trip(gpt2_files, fmt):
    graph, _, loaded = gpt2_files
    assert graph.n_edges == 32_491
    assert_same(graph, loaded[fmt])


@pytest.mark.slow
def test_gpt2_small_graphml_as_plain_xml(gpt2_files):
    """Other tools see the GraphML as XML: count nodes and edges without networkx."""
    graph, paths, _ = gpt2_files
    check_graphml_xml(paths["graphml"], graph)


def test_grouped_query_graphml_as_plain_xml(tmp_path):
    graph = random_graph(GQA, seed=7)
    save_graphml(graph, tmp_path / "g.graphml")
    check_graphml_xml(tmp_path / "g.graphml", graph)


def check_graphml_xml(path: Path, graph: Graph) -> None:
    root = ET.parse(path).getroot()
    keys = {
        k.get("id"): (k.get("for"), k.get("attr.name"), k.get("attr.type"))
        for k in root.iter(f"{GRAPHML_NS}key")
    }
    assert keys[next(k for k, v in keys.items() if v[:2] == ("edge", "score"))][2] == "double"

    def data(element: ET.Element) -> dict[str, str]:
        return {keys[d.get("key")][1]: d.text or "" for d in element.findall(f"{GRAPHML_NS}data")}

    (graph_element,) = root.findall(f"{GRAPHML_NS}graph")
    assert graph_element.get("edgedefault") == "directed"
    attrs = data(graph_element)
    spec = graph.spec
    assert attrs["format"] == FORMAT_NAME and attrs["schema_version"] == str(SCHEMA_VERSION)
    assert (int(attrs["n_layers"]), int(attrs["n_heads"]), int(attrs["n_kv_heads"])) == (
        spec.n_layers,
        spec.n_heads,
        spec.n_kv_heads,
    )
    assert (
        attrs["parallel_attn_mlp"] == str(spec.parallel_attn_mlp)
        and attrs["model_name"] == spec.model_name
    )

    nodes = [data(n) for n in graph_element.findall(f"{GRAPHML_NS}node")]
    L, H, K = spec.n_layers, spec.n_heads, spec.n_kv_heads
    assert sum(n["kind"] != "port" for n in nodes) == graph.n_nodes
    assert sum(n["kind"] == "port" for n in nodes) == L * (H + 2 * K)  # q, k, v ports

    edges = graph_element.findall(f"{GRAPHML_NS}edge")
    real = {}
    for edge in edges:
        d = data(edge)
        if d["kind"] == "edge":
            real[d["name"]] = (edge.get("source"), edge.get("target"), d)
    assert len(real) == graph.n_edges
    assert sum(data(e)["kind"] == "port" for e in edges) == 3 * L * H  # each head reads q, k, v
    for name in list(graph.edges)[:: max(1, graph.n_edges // 7)]:
        source, target, d = real[name]
        edge = graph.edge(name)
        assert (source, target) == (edge.upstream.name, edge.port.name)
        stored = torch.tensor(float(d["score"]), dtype=torch.float32)
        assert stored.view(torch.int32) == graph.scores[edge.index].view(torch.int32)
        assert d["in_graph"] == str(edge.in_graph)


# ------------------------------------------------------------------ networkx structure


@pytest.mark.parametrize("spec_id", SPECS)
def test_networkx_structure(spec_id):
    graph = random_graph(SPECS[spec_id], seed=8)
    G = to_networkx(graph)
    assert isinstance(G, nx.DiGraph) and nx.is_directed_acyclic_graph(G)
    assert G.graph["format"] == FORMAT_NAME and G.graph["schema_version"] == SCHEMA_VERSION
    for field, value in graph.spec.to_dict().items():
        assert G.graph[field] == value
    for edge in graph.edges.values():
        attrs = G.edges[edge.upstream.name, edge.port.name]
        assert attrs == {
            "kind": "edge",
            "name": edge.name,
            "port": edge.port.port,
            "layer": edge.port.layer,
            "head": edge.port.head,
            "score": edge.score,
            "in_graph": edge.in_graph,
        }
        assert type(attrs["score"]) is float and type(attrs["in_graph"]) is bool
    assert sum(d["kind"] == "edge" for _, _, d in G.edges(data=True)) == graph.n_edges
    for port in graph.ports.values():
        if port.port in ("q", "k", "v"):
            assert G.nodes[port.name]["kind"] == "port"
            assert set(G.successors(port.name)) == set(port.nodes)
            entering = [e for e in graph.edges.values() if e.port == port and e.in_graph]
            expected = sum(e.score for e in entering)  # recomputed edge by edge
            scale = sum(abs(e.score) for e in entering)  # the summation order may differ
            for reader in port.nodes:
                attrs = G.edges[port.name, reader]
                assert attrs["in_graph"] is bool(entering) is G.nodes[port.name]["in_graph"]
                assert attrs["score"] == pytest.approx(expected, abs=1e-12 * scale, nan_ok=True)
    for node in graph.nodes.values():
        assert G.nodes[node.name]["kind"] == node.kind
        assert G.nodes[node.name]["in_graph"] == graph.node_in_graph(node.name)
    assert nx.ancestors(G, "logits") | {"logits"} == set(G.nodes)  # everything reaches logits
    assert nx.descendants(G, "input") | {"input"} == set(G.nodes)


def test_networkx_grouped_kv_port_feeds_its_group():
    G = to_networkx(Graph(GQA))
    assert set(G.successors("a1.kv0<k>")) == {"a1.h0", "a1.h1"}
    assert G.nodes["a1.kv1<v>"] == {
        "kind": "port",
        "port": "v",
        "layer": 1,
        "head": 1,
        "in_graph": False,
    }
    assert "a1.h0<k>" not in G


def test_graphml_circuit_filtered_on_in_graph_connects_input_to_logits(tmp_path):
    """Other tools filter edges on ``in_graph``: the port -> head edges of the ports the
    circuit enters must be kept too, or the circuit falls apart at every attention head."""
    from circuits import zoo

    model, _ = zoo.load("toy-gpt2")
    graph = Graph.from_model(model)
    circuit = {
        "input->a0.h1<v>": 0.5,
        "input->a1.h2<q>": 1.0,
        "a0.h1->a1.h2<k>": -0.25,
        "a0.h1->a1.h2<q>": 2.0,
        "a1.h2->m2": 0.75,
        "m2->logits": 0.125,
    }
    for name, score in circuit.items():
        graph.edge(name).score = score
        graph.edge(name).in_graph = True
    graph.edge("m0->a1.h2<q>").score = 8.0  # enters a circuit port, outside the circuit
    graph.edge("input->a1.h2<v>").score = float("nan")
    graph.set_in_graph(graph.in_graph)  # node flags follow the edges
    save_graphml(graph, tmp_path / "circuit.graphml")

    G = nx.read_graphml(tmp_path / "circuit.graphml")
    kept = G.edge_subgraph((u, v) for u, v, d in G.edges(data=True) if d.get("in_graph") is True)
    (component,) = nx.weakly_connected_components(kept)
    assert {"input", "logits"} <= component and nx.has_path(kept, "input", "logits")
    assert sum(d["kind"] == "edge" for *_, d in kept.edges(data=True)) == len(circuit)
    # port edges: in the circuit when a circuit edge enters the port; score = their sum
    assert G.edges["a1.h2<q>", "a1.h2"] == {"kind": "port", "in_graph": True, "score": 3.0}
    assert G.edges["a1.h2<k>", "a1.h2"] == {"kind": "port", "in_graph": True, "score": -0.25}
    assert G.edges["a1.h2<v>", "a1.h2"] == {"kind": "port", "in_graph": False, "score": 0.0}
    assert G.nodes["a1.h2<q>"]["in_graph"] and not G.nodes["a1.h2<v>"]["in_graph"]
    try:
        import igraph
    except ImportError:
        pass
    else:  # the same through igraph, where installed
        ig = igraph.Graph.Read_GraphML(str(tmp_path / "circuit.graphml"))
        sub = ig.subgraph_edges(ig.es.select(in_graph_eq=True), delete_vertices=True)
        assert len(sub.connected_components(mode="weak")) == 1

    # derived, not stored: loading ignores what a tool wrote on port edges
    for _, _, d in G.edges(data=True):
        if d["kind"] == "port":
            d["in_graph"], d["score"] = not d["in_graph"], 1.0
    for loaded in (from_networkx(G), load_graphml(tmp_path / "circuit.graphml")):
        # bitwise (== on the graphs would fail on the NaN score)
        assert torch.equal(loaded.scores.view(torch.int32), graph.scores.view(torch.int32))
        assert torch.equal(loaded.in_graph, graph.in_graph)
        assert torch.equal(loaded.nodes_in_graph, graph.nodes_in_graph)


# ------------------------------------------------------------------ malformed input


def edit_graphml(path: Path, edit) -> None:
    """Parse, let ``edit(graph_element, key_ids_by_name)`` change it, and write it back."""
    ET.register_namespace("", GRAPHML_NS.strip("{}"))
    tree = ET.parse(path)
    root = tree.getroot()
    key_ids = {
        (k.get("for"), k.get("attr.name")): k.get("id") for k in root.iter(f"{GRAPHML_NS}key")
    }
    edit(root.find(f"{GRAPHML_NS}graph"), key_ids)
    tree.write(path, xml_declaration=True, encoding="utf-8")


def graph_data(graph_element: ET.Element, key_id: str) -> ET.Element:
    return next(d for d in graph_element.findall(f"{GRAPHML_NS}data") if d.get("key") == key_id)


@pytest.fixture
def graphml_file(tmp_path) -> Path:
    path = tmp_path / "g.graphml"
    save_graphml(random_graph(MHA, seed=9), path)
    return path


def test_truncated_graphml(graphml_file):
    graphml_file.write_bytes(graphml_file.read_bytes()[: graphml_file.stat().st_size // 2])
    with pytest.raises(GraphFormatError, match="not valid GraphML") as err:
        load_graphml(graphml_file)
    assert str(graphml_file) in str(err.value)


def test_graphml_missing_graph_attribute(graphml_file):
    edit_graphml(graphml_file, lambda g, keys: g.remove(graph_data(g, keys["graph", "n_layers"])))
    with pytest.raises(GraphFormatError, match="missing graph attribute 'n_layers'"):
        load_graphml(graphml_file)


def test_graphml_edge_without_score(graphml_file):
    def drop_score(g: ET.Element, keys: dict) -> None:
        for edge in g.findall(f"{GRAPHML_NS}edge"):
            if (edge.get("source"), edge.get("target")) == ("a0.h1", "a2.h3<v>"):
                edge.remove(next(d for d in edge if d.get("key") == keys["edge", "score"]))

    edit_graphml(graphml_file, drop_score)
    with pytest.raises(
        GraphFormatError, match=r"edge 'a0\.h1->a2\.h3<v>' lacks the 'score' attribute"
    ):
        load_graphml(graphml_file)


def test_graphml_wrong_schema_version(graphml_file):
    def set_version(g: ET.Element, keys: dict) -> None:
        graph_data(g, keys["graph", "schema_version"]).text = "2"

    edit_graphml(graphml_file, set_version)
    with pytest.raises(GraphFormatError, match="unsupported schema version 2 .*reads 1"):
        load_graph(graphml_file)


def test_graphml_of_another_tool(tmp_path):
    nx.write_graphml(nx.path_graph(3, create_using=nx.DiGraph), tmp_path / "other.graphml")
    with pytest.raises(GraphFormatError, match="no 'format' marker"):
        load_graphml(tmp_path / "other.graphml")


@pytest.fixture
def json_data(tmp_path) -> tuple[Path, dict]:
    path = tmp_path / "g.json"
    save_json(random_graph(MHA, seed=10), path)
    return path, json.loads(path.read_text())


def test_truncated_json(json_data):
    path, _ = json_data
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(
        GraphFormatError, match=r"not valid JSON \(truncated or corrupt\?\): .* line \d+ column \d+"
    ):
        load_json(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema_version=2), "unsupported schema version 2"),
        (lambda d: d.update(schema_version="1"), "unsupported schema version '1'"),
        (lambda d: d.update(format="something-else"), "format is 'something-else'"),
        (lambda d: d.pop("format"), "no 'format' marker"),
        (lambda d: d["model"].pop("n_heads"), "missing 'model' field 'n_heads'"),
        (lambda d: d["model"].update(n_layers="3"), "'n_layers' is '3'; expected an integer"),
        (lambda d: d.pop("edges"), "lacks the top-level 'edges' key"),
        (lambda d: d["edges"][17].pop("score"), r"edge 17 \('input->a1\.h0<k>'\) lacks 'score'"),
        (
            lambda d: d["edges"][17].pop("in_graph"),
            r"edge 17 \('input->a1\.h0<k>'\) lacks 'in_graph'",
        ),
        (lambda d: d["edges"][17].update(score="big"), "has score 'big'"),
        (lambda d: d["edges"][17].update(in_graph=1), "in_graph=1; expected true or false"),
        (
            lambda d: d["edges"][5].update(
                name="a2.h0->a1.h0<q>", source="a2.h0", target="a1.h0<q>"
            ),
            r"edge 5 \('a2\.h0->a1\.h0<q>'\) is not an edge of this model: .*a2\.h0 \(layer 2\) cannot feed",
        ),
        (
            lambda d: d["edges"][5].update(name="a7.h0->m1", source="a7.h0", target="m1"),
            r"edge 5 \('a7\.h0->m1'\) is not an edge of this model: no edge named",
        ),
        (lambda d: d["edges"][5].update(target="a0.h2<q>"), "disagrees with its source"),
        (
            lambda d: d["edges"].append(dict(d["edges"][3])),
            r"duplicate edge: edge 3 .* and edge \d+ .* are both",
        ),
        (
            lambda d: d["edges"].pop(40) and d["edges"].pop(0),
            r"lacks 2 of the model's \d+ edges \(first: 'input->a0\.h0<q>'",
        ),
        (lambda d: d["nodes"].pop(3), "'nodes' lacks 1 of the model's 17 nodes"),
        (lambda d: d["nodes"][3].update(layer=5), "node 3 .* has layer=5"),
    ],
)
def test_malformed_json(json_data, edit, message):
    path, data = json_data
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(GraphFormatError, match=message) as err:
        load_json(path)
    assert str(path) in str(err.value)


def test_json_edges_given_by_name_only(json_data):
    path, data = json_data
    expected = load_json(path)
    for entry in data["edges"]:
        del entry["source"], entry["target"], entry["port"]
    path.write_text(json.dumps(data))
    assert_same(expected, load_json(path))


def test_safetensors_wrong_shape(tmp_path):
    graph = Graph(MHA)
    path = tmp_path / "g.safetensors"
    metadata = {"format": FORMAT_NAME, "schema_version": "1", "model": json.dumps(MHA.to_dict())}
    tensors = {
        "scores": torch.zeros(3, 4),
        "in_graph": graph.in_graph,
        "nodes_in_graph": graph.nodes_in_graph,
    }
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(
        GraphFormatError, match=r"tensor 'scores' is float32 \(3, 4\), expected float32 \(16, 40\)"
    ):
        load_safetensors(path)
    tensors["scores"] = torch.zeros(graph.n_forward, graph.n_backward, dtype=torch.float64)
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(GraphFormatError, match="tensor 'scores' is float64"):
        load_safetensors(path)
    del tensors["scores"]
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(GraphFormatError, match="lacks tensor.*'scores'"):
        load_safetensors(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": "2"}, "unsupported schema version 2"),
        ({"format": "other"}, "format is 'other'"),
        ({"model": "{not json"}, "metadata 'model' is not valid JSON"),
        ({"model": json.dumps({"n_layers": 3})}, "missing 'model' field 'n_heads'"),
    ],
)
def test_safetensors_bad_metadata(tmp_path, change, message):
    graph = Graph(MHA)
    path = tmp_path / "g.safetensors"
    metadata = {
        "format": FORMAT_NAME,
        "schema_version": "1",
        "model": json.dumps(MHA.to_dict()),
    } | change
    tensors = {
        "scores": graph.scores,
        "in_graph": graph.in_graph,
        "nodes_in_graph": graph.nodes_in_graph,
    }
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(GraphFormatError, match=message):
        load_safetensors(path)


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{not js"]
)
def test_safetensors_garbage(tmp_path, content):
    path = tmp_path / "g.safetensors"
    path.write_bytes(content)
    with pytest.raises(GraphFormatError, match="not a valid safetensors file"):
        load_safetensors(path)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "g.safetensors"
    save_safetensors(random_graph(MHA), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(GraphFormatError, match="not a valid safetensors file"):
        load_safetensors(path)


def nx_graph() -> nx.DiGraph:
    return to_networkx(random_graph(MHA, seed=11))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda G: G.graph.pop("n_layers"), "missing graph attribute 'n_layers'"),
        (lambda G: G.graph.update(schema_version=7), "unsupported schema version 7 .*upgrade"),
        (
            lambda G: G.add_edge("a2.h0", "m1", kind="edge", score=1.0, in_graph=True),
            r"'a2\.h0->m1' is not an edge of this model",
        ),
        (
            lambda G: G.add_edge("a9.h0", "m1", kind="edge", score=1.0, in_graph=True),
            "node 'a9.h0' is neither a node nor an attention port",
        ),
        (
            lambda G: G.edges["input", "m0"].pop("score"),
            r"edge 'input->m0' lacks the 'score' attribute",
        ),
        (
            lambda G: G.edges["input", "m0"].pop("in_graph"),
            r"edge 'input->m0' lacks the 'in_graph' attribute",
        ),
        (lambda G: G.edges["input", "m0"].update(name="input->m1"), "disagrees with its endpoints"),
        (lambda G: G.edges["input", "m0"].update(kind="weird"), "has kind='weird'"),
        (lambda G: G.add_edge("a1.h0<q>", "a1.h1", kind="port"), r"port edge 'a1\.h0<q>->a1\.h1'"),
        (
            lambda G: G.remove_edges_from([("input", "m0"), ("m2", "logits"), ("a0.h0", "m0")]),
            r"lacks 3 of the model's \d+ edges \(first: ",
        ),
        (lambda G: G.nodes["m1"].pop("in_graph"), "node 'm1' lacks the 'in_graph' attribute"),
    ],
)
def test_malformed_networkx(edit, message):
    G = nx_graph()
    edit(G)
    with pytest.raises(GraphFormatError, match=message):
        from_networkx(G)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_file(tmp_path, fmt):
    with pytest.raises(FileNotFoundError, match="absent"):
        LOAD[fmt](tmp_path / f"absent.{fmt}")


# ------------------------------------------------------------------ save_graph / load_graph


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_checks_model(tmp_path, fmt):
    path = tmp_path / f"g.{fmt}"
    save_graph(Graph(MHA), path)
    assert load_graph(path, model=MHA) == Graph(MHA)
    other = ModelSpec(n_layers=4, n_heads=4)
    with pytest.raises(GraphMismatchError, match="n_layers: graph has 3, model has 4") as err:
        load_graph(path, model=other)
    assert str(path) in str(err.value)


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.graphml, \.json, \.safetensors"):
        save_graph(Graph(MHA), tmp_path / "g.xyz")
    with pytest.raises(ValueError, match=r"\.graphml, \.json, \.safetensors"):
        load_graph(tmp_path / "g.xyz")
    with pytest.raises(ValueError, match="unknown graph format 'xml'"):
        save_graph(Graph(MHA), tmp_path / "g.graphml", format="xml")
    assert list(tmp_path.iterdir()) == []


def test_format_argument_overrides_suffix(tmp_path):
    graph = random_graph(PARALLEL, seed=12)
    for fmt in FORMATS:
        path = tmp_path / f"graph-{fmt}.dat"
        save_graph(graph, path, format=fmt)
        assert_same(graph, load_graph(path, format=fmt))


# ------------------------------------------------------------------ atomic writes


def test_saves_leave_no_temporary_files(tmp_path):
    graph = random_graph(MHA)
    for fmt in FORMATS:
        save_graph(graph, tmp_path / f"g.{fmt}")
        save_graph(graph, tmp_path / f"g.{fmt}")  # overwrite in place
    save_graphml(graph, tmp_path / "c.graphml", only_in_graph=True)
    assert sorted(os.listdir(tmp_path)) == ["c.graphml", "g.graphml", "g.json", "g.safetensors"]


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "g.graphml"
    old = random_graph(MHA, seed=13)
    save_graph(old, path)

    def write_half_then_fail(G, handle, **kwargs):
        handle.write(b"<?xml version='1.0'?><graphml>")
        raise KeyboardInterrupt

    monkeypatch.setattr(nx, "write_graphml", write_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_graph(random_graph(MHA, seed=14), path)
    assert os.listdir(tmp_path) == ["g.graphml"]
    assert_same(old, load_graph(path))


def test_atomic_write(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "f") as handle:
        handle.write(b"partial")
        raise RuntimeError
    assert os.listdir(tmp_path) == []
    with atomic_write(tmp_path / "f") as handle:
        handle.write(b"whole")
    assert (tmp_path / "f").read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["f"]
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        save_json(Graph(MHA), tmp_path / "no-such-dir" / "g.json")


def test_safetensors_files_of_one_graph_are_byte_identical(tmp_path):
    """safetensors keeps its metadata in a hash map whose order changes between saves, so two
    identical runs wrote different scores.safetensors; the header is now written sorted."""
    graph = random_graph(MHA, seed=3)
    contents = set()
    for i in range(6):
        save_graph(graph, tmp_path / f"g{i}.safetensors")
        contents.add((tmp_path / f"g{i}.safetensors").read_bytes())
    assert len(contents) == 1
    data = contents.pop()
    header_len = int.from_bytes(data[:8], "little")
    assert (8 + header_len) % 8 == 0  # tensor data stays 8-byte aligned
    header = json.loads(data[8 : 8 + header_len])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(
        header["__metadata__"]
    )
    assert_same(graph, load_graph(tmp_path / "g0.safetensors"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_and_weights_fingerprint_round_trip(tmp_path, fmt):
    import dataclasses

    graph = random_graph(dataclasses.replace(MHA, weights_fingerprint="0123456789abcdef"))
    graph.metadata = {"task": "ioi", "metric": "logit_diff", "method": "eap", "seed": 3,
                      "split": "train", "ablation": "mean", "nested": {"a": [1, 2.5, None]}}  # fmt: skip
    save_graph(graph, tmp_path / f"g.{fmt}")
    loaded = load_graph(tmp_path / f"g.{fmt}")
    assert loaded.metadata == graph.metadata
    assert loaded.spec.weights_fingerprint == "0123456789abcdef"
    assert_same(graph, loaded)


def test_files_without_metadata_still_load(tmp_path):
    graph = random_graph(GQA)
    save_graph(graph, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    del data["metadata"]
    del data["model"]["weights_fingerprint"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_graph(tmp_path / "old.json")
    assert old.metadata == {} and old.spec.weights_fingerprint == "" and old == graph


def test_bad_metadata_is_refused(tmp_path):
    graph = random_graph(MHA)
    graph.metadata = {"when": object()}
    with pytest.raises(GraphFormatError, match="graph.metadata must hold JSON values"):
        save_graph(graph, tmp_path / "g.json")
    graph.metadata = {}
    save_graph(graph, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    data["metadata"] = ["ioi"]
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(GraphFormatError, match="'metadata' must be a JSON object"):
        load_graph(tmp_path / "g.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]
