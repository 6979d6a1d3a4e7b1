"""The graph file format registry, ``graphs.io``: a new format is one module plus one
``register_format`` line, the bundled formats (DOT export only) go through the same registry,
and ``save_graph`` writes exactly what each format's own saver writes."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
import torch

import graphs.io
from graphs import Graph, GraphFormatError, ModelSpec, load_graph, save_graph
from graphs.dot_io import save_dot, to_dot
from graphs.graphml_io import save_graphml
from graphs.io import format_for, formats, readable_suffixes, register_format
from graphs.json_io import save_json
from graphs.mib_io import mib_graph, mib_tensors
from graphs.tensor_io import save_safetensors

GQA = ModelSpec(n_layers=2, n_heads=4, n_kv_heads=2, model_name="tiny-gqa")

#: A format written outside the package: gzip-compressed JSON graphs, one registry line.
OUTSIDE_FORMAT = """
import gzip
import json

from graphs.io import register_format
from graphs.json_io import dumps, graph_from_dict


def save_jsonz(graph, path):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(dumps(graph))


def load_jsonz(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return graph_from_dict(json.load(handle))


register_format("jsonz", (".jsonz",), save=save_jsonz, load=load_jsonz)
"""


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test (a format registered here goes with it)."""
    monkeypatch.setattr(graphs.io, "_FORMATS", dict(graphs.io._FORMATS))
    return graphs.io._FORMATS


def scored_graph() -> Graph:
    graph = Graph(GQA)
    gen = torch.Generator().manual_seed(0)
    graph.set_scores(torch.randn(graph.n_forward, graph.n_backward, generator=gen))
    graph.set_in_graph(graph.scores.abs() > 1.0)
    graph.metadata = {"task": "ioi", "seed": 3}
    return graph


def test_a_format_registered_from_outside_the_package_round_trips(tmp_path, monkeypatch, registry):
    (tmp_path / "my_graph_format.py").write_text(OUTSIDE_FORMAT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_graph_format", raising=False)
    with pytest.raises(GraphFormatError, match="suffix '.jsonz'"):
        save_graph(scored_graph(), tmp_path / "g.jsonz")  # not registered yet
    importlib.import_module("my_graph_format")
    assert formats()["jsonz"].suffixes == (".jsonz",) and ".jsonz" in readable_suffixes()
    graph = scored_graph()
    save_graph(graph, tmp_path / "g.jsonz")
    assert (tmp_path / "g.jsonz").read_bytes()[:2] == b"\x1f\x8b"  # gzip, so its own saver ran
    back = load_graph(tmp_path / "g.jsonz", model=GQA)
    assert back == graph and back.metadata == graph.metadata
    save_graph(graph, tmp_path / "g.dat", format="jsonz")
    assert load_graph(tmp_path / "g.dat", format="jsonz") == graph


def test_an_unknown_suffix_names_the_registered_suffixes(tmp_path, registry):
    register_format("text", (".txt",), save=lambda graph, path: None)
    for call in (lambda p: save_graph(Graph(GQA), p), load_graph):
        with pytest.raises(GraphFormatError) as err:
            call(tmp_path / "g.xyz")
        message = str(err.value)
        assert "'.xyz'" in message
        for suffix in (".graphml", ".json", ".safetensors", ".dot", ".txt"):
            assert suffix in message, suffix
    with pytest.raises(GraphFormatError, match="unknown graph format 'xml'; choose one of graphml"):
        format_for(tmp_path / "g.graphml", "xml")
    assert list(tmp_path.iterdir()) == []


def test_a_suffix_or_name_chooses_one_format(registry):
    with pytest.raises(GraphFormatError, match="suffix '.json' already chooses the 'json'"):
        register_format("json-lines", (".json",), save=save_json)
    with pytest.raises(GraphFormatError, match="named 'dot' is already registered"):
        register_format("dot", (".gv",), save=save_dot)
    assert list(formats()) == ["graphml", "json", "safetensors", "dot", "mib", "mib-pt"]


def test_dot_is_export_only(tmp_path):
    graph = scored_graph()
    assert formats()["dot"].load is None and ".dot" not in readable_suffixes()
    save_graph(graph, tmp_path / "c.dot")
    assert (tmp_path / "c.dot").read_text() == to_dot(graph)
    save_graph(graph, tmp_path / "all.dot", only_in_graph=False)
    assert (tmp_path / "all.dot").read_text() == to_dot(graph, only_in_graph=False)
    with pytest.raises(GraphFormatError, match="dot is an export-only graph format"):
        load_graph(tmp_path / "c.dot")


def test_mib_is_export_only_and_chosen_by_name(tmp_path):
    """MIB's files end in .json, which chooses this package's JSON, so MIB is chosen by name."""
    graph = scored_graph()
    assert formats()["mib"].suffixes == () and formats()["mib"].load is None
    save_graph(graph, tmp_path / "edges.json", format="mib")
    text = (tmp_path / "edges.json").read_text()
    assert text == json.dumps(mib_graph(graph))
    assert sum(e["in_graph"] for e in json.loads(text)["edges"].values()) > 0
    save_graph(graph, tmp_path / "importances.json", format="mib", edges=graph.real_edges)
    assert all(
        e["in_graph"]
        for e in json.loads((tmp_path / "importances.json").read_text())["edges"].values()
    )
    with pytest.raises(GraphFormatError, match="mib is an export-only graph format"):
        load_graph(tmp_path / "edges.json", format="mib")
    save_graph(graph, tmp_path / "graph.json")
    assert load_graph(tmp_path / "graph.json") == graph  # .json stays this package's JSON
    save_graph(graph, tmp_path / "edges.pt", format="mib-pt")  # MIB's .pt form, also by name
    saved, expected = torch.load(tmp_path / "edges.pt"), mib_tensors(graph)
    assert saved["src_nodes"] == expected.src_nodes and saved["dst_nodes"] == expected.dst_nodes
    assert torch.equal(saved["edges_scores"], expected.scores)
    assert torch.equal(saved["edges_in_graph"], expected.in_graph)
    assert saved["edges_in_graph"].sum() > 0


@pytest.mark.parametrize(
    ("name", "saver", "options"),
    [
        ("g.graphml", save_graphml, {}),
        ("c.graphml", save_graphml, {"only_in_graph": True}),
        ("g.json", save_json, {}),
        ("g.safetensors", save_safetensors, {}),
        ("c.dot", save_dot, {}),
    ],
)
def test_save_graph_writes_what_the_formats_saver_writes(tmp_path, name, saver, options):
    graph = scored_graph()
    save_graph(graph, tmp_path / name, **options)
    saver(graph, tmp_path / f"direct-{name}", **options)
    assert (tmp_path / name).read_bytes() == (tmp_path / f"direct-{name}").read_bytes()


def test_graph_knows_no_file_format():
    """I/O is free functions: the Graph class has no methods that import format modules."""
    for name in ("save", "load", "to_networkx", "from_networkx"):
        assert not hasattr(Graph, name), name
