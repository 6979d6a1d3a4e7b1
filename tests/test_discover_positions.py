"""`circuits discover --positions`: the position-aware circuit of a run, its comparison with the
position-agnostic one, and the errors raised before the model loads."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from circuits.app.discovery import DiscoverySettings, RunError, find_circuit
from circuits.app.report import render_markdown
from graphs import load_graph

# price-tagging prompts all have one length on the bundled tokenizer, so token positions work
SETTINGS = DiscoverySettings(
    model="toy-llama", task="price-tagging", method="eap", n_examples=12, n_eval=12,
    bootstrap=50, seed=0, batch_size=12,
)  # fmt: skip


@pytest.fixture(scope="module")
def runs():
    plain = find_circuit(SETTINGS, quiet=True)
    aware = find_circuit(dataclasses.replace(SETTINGS, positions="tokens"), quiet=True)
    return plain, aware


def test_position_run_leaves_the_position_agnostic_result_unchanged(runs):
    plain, aware = runs
    graph = aware.graph
    assert (
        graph.position_scores is not None
        and len(graph.positions) == aware.record.task["n_positions"]
    )
    torch.testing.assert_close(
        graph.position_scores.double().sum(0), graph.scores.double(), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(graph.scores, plain.graph.scores, rtol=1e-5, atol=1e-6)
    assert torch.equal(aware.minimal.mask, plain.minimal.mask)
    assert aware.record.faithfulness["f"] == pytest.approx(plain.record.faithfulness["f"], abs=1e-9)
    assert aware.record.curve["f"] == pytest.approx(plain.record.curve["f"], abs=1e-9)
    assert not plain.record.positions and plain.positions is None


def test_position_circuit_counts_and_overlap_match_its_mask(runs):
    _, aware = runs
    graph, pos, rec = aware.graph, aware.positions, aware.record.positions
    mask = pos.minimal.mask
    assert mask.shape == (len(graph.positions), graph.n_forward, graph.n_backward)
    assert not (mask & ~graph.real_edges).any()
    # the circuit is the best-scoring prefix of the position-aware ranking
    n = int(mask.sum())
    order = graph.position_scores.abs().flatten()[graph.real_edges.expand_as(mask).flatten()]
    kept = graph.position_scores.abs()[mask]
    assert n == rec["circuit"]["n_edges"] and float(kept.min()) >= float(
        torch.sort(order, descending=True).values[n - 1]
    )
    assert sum(rec["circuit"]["edges_per_span"].values()) == n
    assert list(rec["circuit"]["edges_per_span"].values()) == mask.sum(dim=(1, 2)).tolist()
    projected = mask.any(0)
    agnostic = aware.minimal.mask & graph.real_edges
    comp = rec["comparison"]
    assert comp["aware_n_edges_projected"] == int(projected.sum())
    assert comp["shared_edges"] == int((projected & agnostic).sum())
    assert comp["jaccard"] == pytest.approx(
        int((projected & agnostic).sum()) / int((projected | agnostic).sum())
    )
    assert comp["agnostic_n_position_edges"] == aware.minimal.n_edges * len(graph.positions)
    assert rec["circuit"]["reached_target"] == (rec["circuit"]["f_search"] >= 0.9)
    # PEAP's top-1 % statistic, recomputed from the scores by hand
    k = max(1, math.ceil(0.01 * graph.n_edges))
    top_agnostic = set(torch.sort(-graph.scores.abs().flatten(), stable=True).indices[:k].tolist())
    distinct: list[int] = []
    for i in torch.sort(-graph.position_scores.abs().flatten(), stable=True).indices.tolist():
        e = i % (graph.n_forward * graph.n_backward)
        if e not in distinct:
            distinct.append(e)
        if len(distinct) == k:
            break
    assert comp["top_overlap"]["shared"] == pytest.approx(len(top_agnostic & set(distinct)) / k)


def test_held_out_f_of_a_span_constant_circuit_equals_the_position_agnostic_f(runs):
    """The per-span evaluation path: keeping the position-agnostic circuit at every span must
    give exactly its position-agnostic f."""
    from circuits.search.faithfulness import evaluate

    plain, aware = runs
    graph = aware.graph
    from circuits.app.discovery import load_for_task
    from circuits.app.prompts import prompt_pairs

    bridge, tokenizer, _ = load_for_task("toy-llama", None)
    settings = dataclasses.replace(SETTINGS, positions="tokens")
    _, test, _ = prompt_pairs(settings, tokenizer)
    expanded = aware.minimal.mask.expand(len(graph.positions), -1, -1).clone()
    both = [
        evaluate(bridge, graph, test, "logit_diff", circuit=c, bootstrap=0, random_baseline=False)
        for c in (aware.minimal.mask, expanded)
    ]
    assert both[0].f == pytest.approx(both[1].f, abs=1e-6)
    assert both[0].f == pytest.approx(aware.record.faithfulness["f"], abs=1e-6)
    # and the run's position-aware f is f of its own mask on the same prompts
    own = evaluate(
        bridge, graph, test, "logit_diff", circuit=aware.positions.minimal.mask, bootstrap=0,
        random_baseline=False,
    )  # fmt: skip
    assert own.f == pytest.approx(aware.record.positions["faithfulness"]["f"], abs=1e-6)


def test_report_has_the_positions_section(runs):
    _, aware = runs
    text = render_markdown(aware.metrics, {})
    rec = aware.record.positions
    assert "## Positions" in text and "### Top position-aware edges" in text
    comp = rec["comparison"]
    row = [line for line in text.splitlines() if line.startswith("| position-aware |")]
    assert len(row) == 1 and f"| {comp['aware_n_edges']} |" in row[0]
    first = rec["top_edges"][0]
    assert f"`{first['edge']}`" in text and f"| `{first['span']}` |" in text
    assert "## Positions" not in render_markdown(runs[0].metrics, {})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"method": "ifr"}, "does not keep per-position scores"),
        ({"task": "ioi"}, "one length"),
        ({"positions": "schema", "task": "copying"}, "declares no span schema"),
        ({"positions": "words"}, "unknown positions"),
    ],
)
def test_bad_position_settings_fail_before_loading(change, message, monkeypatch):
    import circuits.app.discovery as discovery

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(discovery.job, "load_for_task", refuse)
    settings = dataclasses.replace(SETTINGS, **{"positions": "tokens", **change})
    with pytest.raises(RunError, match=message):
        find_circuit(settings, quiet=True)


def test_discover_help_lists_positions(capsys):
    from circuits.app.cli import main

    with pytest.raises(SystemExit):
        main(["discover", "--help"])
    out = capsys.readouterr().out
    assert "--positions {tokens,schema}" in out


def test_discover_with_an_ioi_schema_writes_the_position_files(tmp_path, capsys):
    """End to end on the command line: IOI's span schema, the position-aware graph files
    (GraphML one node per (node, span)) holding exactly the record's circuit, the figure, and
    the position-agnostic files as a plain run writes them."""
    import json

    import networkx as nx

    from circuits.app.cli import main

    out = tmp_path / "run"
    args = ["discover", "--task", "ioi", "--positions", "schema", "--method", "eap"]
    args += ["--n-examples", "12", "--n-eval", "12", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rec = metrics["positions"]
    assert rec["spans"] == ["prefix", "A", "and", "B", "middle", "S2", "S2+1", "rest", "END"]
    aware = load_graph(out / "position_graph.json")
    assert aware.positions == tuple(rec["spans"])
    assert int(aware.position_in_graph.sum()) == rec["circuit"]["n_edges"]
    assert load_graph(out / "position_graph.graphml") == aware
    kept = {
        (row["span"], row["edge"]) for row in rec["circuit_edges"]
    }  # the record's circuit is the files' circuit
    files = {
        (aware.positions[s], aware.layout.edge_name(u, p))
        for s, u, p in aware.position_in_graph.nonzero().tolist()
    }
    assert kept == files
    G = nx.read_graphml(out / "position_graph.graphml")
    assert {d["span"] for _, d in G.nodes(data=True)} == set(rec["spans"])
    plain = load_graph(out / "graph.graphml")
    assert plain.positions is None and plain.count_included_edges() == metrics["circuit"]["n_edges"]
    main_json = load_graph(out / "graph.json")
    assert main_json.position_in_graph is None and main_json.positions == aware.positions
    assert (out / "position_circuit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Figure 4" in (out / "report.md").read_text()
    # `circuits evaluate` of the position-aware graph evaluates it per span, on the same prompts
    ev = ["evaluate", str(out / "position_graph.json"), "--n-examples", "12", "--json"]
    summary = capsys.readouterr().out  # discover's own summary
    assert (
        f"position-aware circuit (9 spans): {rec['circuit']['n_edges']} (span, edge) pairs"
        in summary
    )
    assert main([*ev, "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_edges"] == rec["circuit"]["n_edges"]
    assert result["f"] == pytest.approx(rec["faithfulness"]["f"], abs=1e-6)
