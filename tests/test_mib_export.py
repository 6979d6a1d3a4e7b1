"""MIB export and curve: every file read back by a loader written here from MIB's documented
format (hannamw/MIB-circuit-track b759df3, EAP-IG 7af394a: nodes as ``{in_graph}`` dicts, EAP-IG's
edge names and tensor layout, sizes ``int(p · n)``), independent of the writer; grouped-query k/v
ports expanded per query head; CPR/CMD as MIB's evaluator computes them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from circuits.app.cli import main
from circuits.app.mib_export import (
    MIB_CIRCUIT_PERCENTS,
    MIB_PERCENTS,
    MIBExportError,
    export_mib,
    export_mib_run,
    graph_edge_of,
    mib_cpr_cmd,
    mib_folder_name,
    mib_graph,
    mib_ranking,
    mib_size,
)
from graphs import Graph, ModelSpec, load_graph
from tests.test_data_cli import write_task

# ---------------------------------------------------------------- MIB's format, from its docs
# EAP-IG's graph: forward nodes input, then per layer a{l}.h0..h{H-1} and m{l}; backward ports
# per layer a{l}.h*<q>, a{l}.h*<k>, a{l}.h*<v>, m{l}, then logits. A head reads every node of
# earlier layers; an MLP also reads its own layer's heads unless attention and MLP are parallel;
# the logits read everything.


@dataclass
class MIBFile:
    cfg: dict
    scores: torch.Tensor  # [n_forward, n_backward] in EAP-IG's layout
    in_graph: torch.Tensor
    nodes: torch.Tensor  # [n_forward]


def mib_layout(cfg: dict) -> tuple[list[str], list[str], torch.Tensor]:
    layers, heads = cfg["n_layers"], cfg["n_heads"]
    src, dst, readers = ["input"], [], []
    for layer in range(layers):
        src += [f"a{layer}.h{h}" for h in range(heads)] + [f"m{layer}"]
        for x in "qkv":
            dst += [f"a{layer}.h{h}<{x}>" for h in range(heads)]
            readers += [1 + layer * (heads + 1)] * heads  # reads forward nodes before index
        dst.append(f"m{layer}")
        own_heads = 0 if cfg["parallel_attn_mlp"] else heads
        readers.append(1 + layer * (heads + 1) + own_heads)
    dst.append("logits")
    readers.append(len(src))
    real = torch.zeros(len(src), len(dst), dtype=torch.bool)
    for col, n in enumerate(readers):
        real[:n, col] = True
    return src, dst, real


def load_mib_json(path) -> MIBFile:
    d = json.loads(path.read_text())
    assert set(d) == {"cfg", "nodes", "edges"}
    src, dst, real = mib_layout(d["cfg"])
    assert list(d["nodes"]) == [*src, "logits"]
    assert all(
        set(v) == {"in_graph"} and isinstance(v["in_graph"], bool) for v in d["nodes"].values()
    )
    names = {f"{src[u]}->{dst[c]}": (u, c) for u, c in real.nonzero().tolist()}
    assert set(d["edges"]) == set(names)  # every edge of MIB's graph, no other name
    scores = torch.zeros(real.shape)
    flags = torch.zeros(real.shape, dtype=torch.bool)
    for name, e in d["edges"].items():
        assert set(e) == {"score", "in_graph"} and isinstance(e["in_graph"], bool)
        scores[names[name]], flags[names[name]] = e["score"], e["in_graph"]
    nodes = torch.tensor([d["nodes"][n]["in_graph"] for n in src])
    return MIBFile(d["cfg"], scores, flags, nodes)


def load_mib_pt(path) -> MIBFile:
    d = torch.load(path)
    keys = {"cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph"}
    assert set(d) == keys
    src, dst, real = mib_layout(d["cfg"])
    assert d["src_nodes"] == src and d["dst_nodes"] == dst
    assert d["edges_scores"].shape == d["edges_in_graph"].shape == real.shape
    assert d["edges_in_graph"].dtype == torch.bool and d["nodes_in_graph"].shape == (len(src),)
    assert not (d["edges_in_graph"] & ~real).any() and not d["edges_scores"][~real].any()
    return MIBFile(d["cfg"], d["edges_scores"], d["edges_in_graph"], d["nodes_in_graph"])


def to_mib_layout(graph: Graph, values: torch.Tensor) -> torch.Tensor:
    """``values`` [n_forward, n_backward] of ours in MIB's layout, k/v per query head."""
    src, dst, real = mib_layout({"n_layers": graph.spec.n_layers, "n_heads": graph.spec.n_heads,
                                 "parallel_attn_mlp": graph.spec.parallel_attn_mlp})  # fmt: skip
    out = torch.zeros(real.shape, dtype=values.dtype)
    for u, c in real.nonzero().tolist():
        out[u, c] = values[edge_index(graph, graph_edge_of(graph, f"{src[u]}->{dst[c]}"))]
    return out


def edge_index(graph: Graph, name: str) -> tuple[int, int]:
    up, _, port = name.partition("->")
    return graph.nodes[up].forward_index, graph.ports[port].index


def expected_scores(graph: Graph) -> torch.Tensor:
    return to_mib_layout(graph, graph.scores.float())


def top_circuit(graph: Graph, n: int) -> torch.Tensor:
    mask = torch.zeros(graph.n_forward * graph.n_backward, dtype=torch.bool)
    mask[graph.ranked_edge_indices(absolute=True)[:n]] = True
    return mask.view(graph.n_forward, graph.n_backward)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mib")
    data = write_task(tmp / "ioi.jsonl", n=16)
    out = tmp / "run"
    args = ["discover", "--data", str(data), "--method", "eap", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return out


def test_export_writes_mib_folder_importances_by_default(run_dir, capsys):
    # MIB's README: a folder holds one importance file OR the circuits, never both (the old
    # export wrote both, with a 100 % circuit and no 0 % one)
    assert main(["export", str(run_dir), "--format", "mib"]) == 0
    folder = run_dir / "mib" / "ioi_toy-gpt2"
    assert "wrote 1 MIB files" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["importances.json"]
    graph = load_graph(run_dir / "scores.safetensors")
    loaded = load_mib_json(folder / "importances.json")
    assert loaded.scores == pytest.approx(expected_scores(graph), abs=0)
    assert not loaded.in_graph.any()
    # a second export refuses to overwrite unless told
    assert main(["export", str(run_dir), "--format", "mib"]) == 2
    assert main(["export", str(run_dir), "--format", "mib", "--overwrite"]) == 0


def test_export_run_circuits_replace_importances(run_dir):
    out = run_dir / "mib_circuits"
    export_mib_run(run_dir, out, False)
    paths = export_mib_run(run_dir, out, True, contents="circuits", fmt="pt")
    folder = out / "ioi_toy-gpt2"
    assert sorted(folder.iterdir()) == sorted(paths) and len(paths) == 10
    graph = load_graph(run_dir / "scores.safetensors")
    sizes = [int(load_mib_pt(p).in_graph.sum()) for p in paths]
    assert sizes == [int(p / 100 * graph.n_edges) for p in MIB_CIRCUIT_PERCENTS]


def test_export_command_takes_mib_pt_contents_and_names(run_dir, capsys):
    out = run_dir / "mib_cli"
    argv = ["export", str(run_dir), "--format", "mib-pt", "--contents", "circuits", "--out",
            str(out), "--mib-task", "ioi", "--mib-model", "gpt2"]  # fmt: skip
    assert main(argv) == 0
    folder = out / "ioi_gpt2"
    assert f"wrote 10 MIB files to {folder}" in capsys.readouterr().out
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"edges_{p:g}pct.pt" for p in MIB_CIRCUIT_PERCENTS)
    graph = load_graph(run_dir / "scores.safetensors")
    loaded = load_mib_pt(folder / "edges_10pct.pt")
    assert torch.equal(loaded.scores, expected_scores(graph))
    assert int(loaded.in_graph.sum()) == int(0.1 * graph.n_edges)
    assert main([*argv[:5], "importances", *argv[6:]]) == 2  # not over the circuits unless told
    assert "--overwrite" in capsys.readouterr().err


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
    n = curve["n_edges"][-1]
    assert curve["n_edges"] == [int(x * n) for x in k]  # MIB's sizes
    assert curve["cpr"] == pytest.approx(mib_cpr_cmd(list(f))["cpr"], abs=1e-12)
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


def _random_graph(**spec) -> Graph:
    graph = Graph(ModelSpec(**spec))
    torch.manual_seed(0)
    graph.set_scores(torch.randn(graph.n_forward, graph.n_backward) * graph.real_edges)
    return graph


def test_sizes_are_mibs_int_rule():
    # MIB's evaluator keeps int(p · n) edges: for the toy models' 479 edges
    assert [mib_size(p / 100, 479) for p in MIB_PERCENTS] == [0, 0, 2, 4, 9, 23, 47, 95, 239, 479]
    assert Graph(ModelSpec(n_layers=4, n_heads=4)).n_edges == 479
    assert Graph(ModelSpec(n_layers=12, n_heads=12)).n_edges == 32491


@pytest.mark.parametrize(
    "spec",
    [dict(n_layers=4, n_heads=4), dict(n_layers=3, n_heads=4, n_kv_heads=2),
     dict(n_layers=2, n_heads=3, parallel_attn_mlp=True)],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["json", "pt"])
def test_round_trip_every_file(tmp_path, spec, fmt):
    graph = _random_graph(**spec)
    load = load_mib_json if fmt == "json" else load_mib_pt
    scores = expected_scores(graph)
    (imp,) = export_mib(graph, tmp_path, "ioi", "gpt2", fmt=fmt)
    assert imp.parent.name == "ioi_gpt2" and imp.name == f"importances.{fmt}"
    loaded = load(imp)
    assert loaded.cfg["n_heads"] == graph.spec.n_heads
    assert torch.equal(loaded.scores, scores) and not loaded.in_graph.any()
    paths = export_mib(graph, tmp_path / "c", "ioi", "gpt2", contents="circuits", fmt=fmt)
    assert len(paths) == len(MIB_CIRCUIT_PERCENTS)
    n_mib = int(mib_layout(loaded.cfg)[2].sum())
    group = graph.spec.n_heads // (graph.spec.n_kv_heads or graph.spec.n_heads)
    for pct, path in zip(MIB_CIRCUIT_PERCENTS, paths, strict=True):
        loaded = load(path)
        assert torch.equal(loaded.scores, scores)
        limit = int(pct / 100 * n_mib)
        kept = int(loaded.in_graph.sum())
        # no more than p % of MIB's edges (exactly int(p · n) without grouped k/v ports)
        assert kept <= limit and (group > 1 or kept == limit)
        # the circuit is our top edges by |score|, as many as fit
        ours = to_mib_layout(graph, top_circuit(graph, _ours_within(graph, limit)))
        assert torch.equal(loaded.in_graph, ours)
        # MIB's node rule: an in-circuit edge leaves the node, and one enters it (or it is input)
        src, dst, _ = mib_layout(loaded.cfg)
        enters = torch.tensor([n == "input" or any(
            loaded.in_graph[:, c].any() for c, d in enumerate(dst) if d.split("<")[0] == n)
            for n in src])  # fmt: skip
        assert torch.equal(loaded.nodes, loaded.in_graph.any(1) & enters)


def _ours_within(graph: Graph, limit: int) -> int:
    """How many of our top edges MIB counts as at most ``limit`` of its edges."""
    total = 0
    for i, e in enumerate(graph.top_edges(graph.n_edges)):
        total += len(graph.ports[e.name.split("->")[1]].nodes) if "kv" in e.name else 1
        if total > limit:
            return i
    return graph.n_edges


def test_json_and_pt_hold_the_same_graph(tmp_path):
    graph = _random_graph(n_layers=3, n_heads=4, n_kv_heads=2)
    a = export_mib(graph, tmp_path / "j", "ioi", "x", contents="circuits")
    b = export_mib(graph, tmp_path / "p", "ioi", "x", contents="circuits", fmt="pt")
    for x, y in zip(a, b, strict=True):
        lx, ly = load_mib_json(x), load_mib_pt(y)
        assert torch.equal(lx.scores, ly.scores) and torch.equal(lx.in_graph, ly.in_graph)
        assert torch.equal(lx.nodes, ly.nodes)


def test_folder_names_are_mibs():
    assert mib_folder_name("ioi", "gpt2") == "ioi_gpt2"
    assert mib_folder_name("arc_easy", "meta-llama/Llama-3.1-8B") == "arc-easy_llama3"
    assert mib_folder_name("mcqa", "Qwen/Qwen2.5-0.5B") == "mcqa_qwen2.5"
    assert mib_folder_name("arithmetic_subtraction", "google/gemma-2-2b") == (
        "arithmetic-subtraction_gemma2"
    )
    # no MIB name: the project's own, with MIB's separator "_" written "-"
    assert mib_folder_name("my_prompts", "runs/toy_gpt2") == "my-prompts_toy-gpt2"


def test_mib_cpr_cmd_by_hand():
    # a recorded curve (f at MIB's ten sizes), areas as MIB's evaluation.py computes them:
    # trapezoids over the fraction (linear axis, 0.001 … 1), f not clipped
    f = [-0.2, 0.1, 0.3, 0.55, 0.7, 0.9, 1.1, 1.05, 0.98, 1.0]
    k = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    cpr = sum((k[i + 1] - k[i]) * (f[i] + f[i + 1]) / 2 for i in range(9))
    cmd = sum((k[i + 1] - k[i]) * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2 for i in range(9))
    got = mib_cpr_cmd(f)
    assert got["cpr"] == pytest.approx(cpr, rel=1e-12) and got["cmd"] == pytest.approx(
        cmd, rel=1e-12
    )
    # numbers worked out on paper for the last two intervals alone
    assert mib_cpr_cmd([1.0, 0.5, 1.5], (0.2, 0.5, 1.0)) == pytest.approx(
        {"cpr": 0.3 * 0.75 + 0.5 * 1.0, "cmd": 0.3 * 0.25 + 0.5 * 0.5}
    )


def test_mib_ranking_signed_is_mibs_sign():
    # MIB attributes the negated logit difference, so its signed order (run_evaluation.py
    # without --absolute) starts with our most negative scores; --absolute is our |score| order
    graph = _random_graph(n_layers=2, n_heads=2)
    real = graph.scores[graph.real_edges]
    signed = graph.scores.flatten()[mib_ranking(graph, "signed")]
    assert signed[0] == real.min() and torch.all(signed[1:] >= signed[:-1])
    absolute = graph.scores.flatten()[mib_ranking(graph, "absolute")].abs()
    assert absolute[0] == real.abs().max() and torch.all(absolute[1:] <= absolute[:-1])
    with pytest.raises(MIBExportError):
        mib_ranking(graph, "greedy")


def mib_prune(cfg: dict, in_graph: torch.Tensor) -> torch.Tensor:
    """MIB's prune, from its documented rule on its own layout: repeatedly, a node stays when an
    in-graph edge leaves it and one enters one of its inputs (input always counts as entered),
    and an edge stays when its parent and its child node stay (logits always stays)."""
    src, dst, _ = mib_layout(cfg)
    child = torch.tensor([[d.split("<")[0] == s for d in dst] for s in src])  # node reads port
    edges = in_graph.clone()
    nodes = torch.ones(len(src), dtype=torch.bool)
    while True:
        entered = (child & edges.any(dim=0)).any(dim=1)
        entered[0] = True
        new = edges.any(dim=1) & entered
        ports = (child & new[:, None]).any(dim=0)
        ports[-1] = True
        edges &= new[:, None] & ports[None, :]
        if torch.equal(new, nodes):
            return edges
        nodes = new


@pytest.mark.parametrize(
    "spec", [dict(n_layers=3, n_heads=3), dict(n_layers=3, n_heads=2, parallel_attn_mlp=True)]
)
def test_mib_curve_evaluates_the_circuits_mibs_prune_leaves(spec, monkeypatch):
    """MIB's evaluator prunes each top-n circuit (apply_topn(..., prune=True)) before ablating;
    the curve's circuits equal MIB's rule applied to the top-n edges in MIB's layout."""
    import circuits.search.faithfulness as faithfulness
    from circuits.app.mib_export import MIB_FRACTIONS, mib_curve

    graph = _random_graph(**spec)
    cfg = {"n_layers": graph.spec.n_layers, "n_heads": graph.spec.n_heads,
           "parallel_attn_mlp": graph.spec.parallel_attn_mlp}  # fmt: skip
    seen = []

    def metrics(model, g, data, masks, metric, **kwargs):
        seen.extend(masks)
        n = len(masks)
        return torch.ones(1), torch.zeros(1), torch.linspace(0, 1, n)[:, None]

    monkeypatch.setattr(faithfulness, "circuit_metrics", metrics)
    curve = mib_curve(None, graph, None, "logit_diff")
    assert curve["n_edges"] == [int(k * graph.n_edges) for k in MIB_FRACTIONS]
    pruned_some = False
    for size, mask, kept in zip(curve["n_edges"], seen, curve["n_edges_kept"], strict=True):
        top = to_mib_layout(graph, top_circuit(graph, size))
        expected = mib_prune(cfg, top)
        assert torch.equal(to_mib_layout(graph, mask), expected)
        assert kept == int(expected.sum()) <= size
        pruned_some |= kept < size
    assert pruned_some  # the rule mattered on this graph
