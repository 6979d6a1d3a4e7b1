"""MIB export and curve: ten circuit files of the right sizes whose every edge name maps back
to a graph edge (grouped-query k/v ports expanded per query head); CPR/CMD as MIB defines them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from circuits.app.cli import main
from circuits.app.mib_export import MIB_PERCENTS, graph_edge_of, mib_graph
from graphs import Graph, ModelSpec, load_graph
from tests.test_data_cli import write_task


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mib")
    data = write_task(tmp / "ioi.jsonl", n=16)
    out = tmp / "run"
    args = ["discover", "--data", str(data), "--method", "eap", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return out


def test_export_writes_the_ten_sizes_with_mib_names(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "mib"]) == 0
    folder = run_dir / "mib" / "ioi_toy-gpt2"
    assert "wrote 11 MIB files" in capsys.readouterr().out
    graph = load_graph(run_dir / "scores.safetensors")
    total = int(graph.real_edges.sum())
    ranked = [e.name for e in graph.top_edges(total)]
    for pct in MIB_PERCENTS:
        data = json.loads((folder / f"edges_{pct:g}pct.json").read_text())
        assert set(data) == {"cfg", "nodes", "edges"} and data["cfg"]["n_layers"] == 4
        assert len(data["edges"]) == total
        kept = [name for name, e in data["edges"].items() if e["in_graph"]]
        assert len(kept) == max(1, round(pct / 100 * total))
        assert {graph_edge_of(graph, n) for n in kept} == set(ranked[: len(kept)])
        for name, e in data["edges"].items():
            assert e["score"] == pytest.approx(graph.edge(graph_edge_of(graph, name)).score)
        touched = {n for name in kept for n in name.replace("<", "->").split("->")[:2]}
        assert {n for n, on in data["nodes"].items() if on} == touched
    # a second export refuses to overwrite unless told
    assert main(["export", str(run_dir), "--format", "mib"]) == 2
    assert main(["export", str(run_dir), "--format", "mib", "--overwrite"]) == 0


def test_grouped_query_ports_are_written_per_query_head():
    graph = Graph(ModelSpec(n_layers=2, n_heads=4, n_kv_heads=2))
    graph.set_scores(torch.randn(graph.n_forward, graph.n_backward) * graph.real_edges)
    data = mib_graph(graph)
    # each kv port feeds 2 query heads: its edges appear twice, under per-head names
    kv_edges = sum(1 for e in graph.edges if "kv" in e)
    assert len(data["edges"]) == graph.n_edges + kv_edges
    assert "input->a1.h3<k>" in data["edges"] and not any("kv" in n for n in data["edges"])
    assert graph_edge_of(graph, "a0.h1->a1.h3<v>") == "a0.h1->a1.kv1<v>"
    assert graph_edge_of(graph, "a0.h1->a1.h2<q>") == "a0.h1->a1.h2<q>"
    for name, e in data["edges"].items():
        assert e["score"] == pytest.approx(graph.edge(graph_edge_of(graph, name)).score)
    with pytest.raises(KeyError):
        graph_edge_of(graph, "a1.h0->a0.h0<q>")


def test_evaluate_curve_is_mibs_cpr_and_cmd(run_dir, capsys):
    capsys.readouterr()
    assert (
        main(["evaluate", str(run_dir / "scores.safetensors"), "--curve", "--json", "--quiet"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    curve = result["curve"]
    k, f = np.array(curve["fractions"]), np.array(curve["f"])
    assert list(k * 100) == pytest.approx(list(MIB_PERCENTS))
    # the trapezoid rule on a linear axis, by hand
    assert curve["cpr"] == pytest.approx(float(((k[1:] - k[:-1]) * (f[1:] + f[:-1]) / 2).sum()))
    g = np.abs(1 - f)
    assert curve["cmd"] == pytest.approx(float(((k[1:] - k[:-1]) * (g[1:] + g[:-1]) / 2).sum()))
    # the log-axis pair under its own names, by hand over log10(k) rescaled to [0, 1]
    x = (np.log10(k) - np.log10(k[0])) / (np.log10(k[-1]) - np.log10(k[0]))
    assert curve["cpr_log"] == pytest.approx(float(((x[1:] - x[:-1]) * (f[1:] + f[:-1]) / 2).sum()))
    assert curve["cmd_log"] == pytest.approx(float(((x[1:] - x[:-1]) * (g[1:] + g[:-1]) / 2).sum()))
    # the same circuits on the same held-out prompts as the run's own curve, and the same
    # number under the same name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert curve["f"] == pytest.approx(metrics["curve"]["f"], abs=1e-5)
    for key in ("cpr", "cmd", "cpr_log", "cmd_log"):
        assert curve[key] == pytest.approx(metrics["curve"][key], abs=1e-5), key


def test_evaluate_curve_prints_each_area_under_its_name(run_dir, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "scores.safetensors"), "--curve", "--quiet"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("MIB curve"))
    metrics = json.loads((run_dir / "metrics.json").read_text())["curve"]
    assert f"CPR {metrics['cpr']:.4f}, CMD {metrics['cmd']:.4f} (MIB's, linear" in line
    assert f"CPR_log {metrics['cpr_log']:.4f}, CMD_log {metrics['cmd_log']:.4f} (log10" in line
    # a size that rounds to the same number of edges as a smaller one says so
    sizes = metrics["n_edges"]
    repeats = [i for i in range(1, len(sizes)) if sizes[i] in sizes[:i]]
    assert repeats and line.count("same circuit as") == len(repeats)
