"""Brute-force proofs that each compiled model's ground-truth circuit is what it claims.

For every model (float64): exact patching of each edge outside the circuit moves the metric
by less than the model's epsilon, each edge inside by more than its delta, so exact
patching has edge AUROC 1; ablating everything outside the circuit keeps f = 1. One model
is also patched edge by edge through hand-written hooks, independently of attribution.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from attribution import attribute
from circuits import evaluate, load_model, zoo
from circuits.groundtruth import registry
from circuits.groundtruth.benchmark import run_benchmark
from circuits.groundtruth.scoring import auroc, precision_recall, roc_points
from graphs import Graph, load_graph

NAMES = registry.names()


@pytest.fixture(scope="module", params=NAMES)
def proved(request):
    """(truth, bridge, graph, exact scores) of one compiled model in float64."""
    truth = registry.build(request.param)
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=torch.float64)
    graph = Graph.from_model(bridge)
    scores = attribute(bridge, graph, truth.data, truth.metric, method="exact", quiet=True).scores
    return truth, bridge, graph, scores.clone()


def test_exact_patching_proves_the_circuit(proved):
    truth, _, graph, scores = proved
    inside = truth.mask(graph)
    outside = graph.real_edges & ~inside
    assert truth.epsilon < truth.delta
    assert scores.abs()[outside].max() < truth.epsilon
    assert scores.abs()[inside].min() > truth.delta
    assert auroc(scores.abs()[graph.real_edges], inside[graph.real_edges]) == 1.0


def test_ablating_everything_outside_the_circuit_keeps_f_one(proved):
    truth, bridge, graph, _ = proved
    result = evaluate(
        bridge, graph, truth.data, truth.metric, circuit=truth.mask(graph), bootstrap=0,
        random_baseline=False,
    )  # fmt: skip
    assert result.m_full - result.m_empty > 2 * truth.delta  # the task is not trivial
    assert result.f == pytest.approx(1.0, abs=1e-4)


def test_trap_path_is_active_but_irrelevant():
    truth = registry.build("gt-trap")
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=torch.float64)
    _, clean = bridge.run_with_cache(truth.data.clean)
    _, corrupted = bridge.run_with_cache(truth.data.corrupted)
    decoy_change = (
        corrupted["blocks.0.attn.hook_result"][:, :, 1]
        - clean["blocks.0.attn.hook_result"][:, :, 1]
    )
    assert decoy_change.norm(dim=-1).max() > 1.0  # the decoy head's write changes
    assert (corrupted["blocks.1.hook_mlp_in"] - clean["blocks.1.hook_mlp_in"]).norm() > 1.0
    graph = Graph.from_model(bridge)
    eap = attribute(bridge, graph, truth.data, truth.metric, method="eap", quiet=True).scores
    trap = truth.mask(graph, truth.trap)
    assert eap.abs()[trap].min() > eap.abs()[truth.mask(graph)].max()  # gradients are fooled


_EDGE = re.compile(
    r"^(input|a(\d+)\.h(\d+)|m(\d+))->(logits|m(\d+)|a(\d+)\.(?:h|kv)(\d+)<([qkv])>)$"
)


def _writer_hook(match) -> tuple[str, int | None]:
    if match[1] == "input":
        return "blocks.0.hook_resid_pre", None
    if match[2] is not None:
        return f"blocks.{match[2]}.attn.hook_result", int(match[3])
    return f"blocks.{match[4]}.hook_mlp_out", None


def _port_hook(match) -> tuple[str, int | None]:
    if match[5] == "logits":
        return "ln_final.hook_in", None
    if match[6] is not None:
        return f"blocks.{match[6]}.hook_mlp_in", None
    return f"blocks.{match[7]}.attn.hook_{match[9]}_input", int(match[8])


def test_hand_patching_by_hooks_agrees_with_exact():
    """Independent of attribution: add each writer's corrupted-minus-clean output to the
    reader's port input with plain hooks and measure the logit difference."""
    truth = registry.build("gt-induction")
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=torch.float64)
    graph = Graph.from_model(bridge)
    exact = attribute(bridge, graph, truth.data, truth.metric, method="exact", quiet=True).scores
    data, rows = truth.data, torch.arange(len(truth.data))

    def logit_diff(logits):
        last = logits[rows, data.positions]
        return (last[rows, data.answers[:, 0]] - last[rows, data.distractors[:, 0]]).mean()

    with torch.no_grad():
        _check_every_edge_by_hand(bridge, graph, data, exact, logit_diff)


def _check_every_edge_by_hand(bridge, graph, data, exact, logit_diff) -> None:
    clean_logits, clean = bridge.run_with_cache(data.clean)
    _, corrupted = bridge.run_with_cache(data.corrupted)
    base = logit_diff(clean_logits)
    for name in graph.edges:
        match = _EDGE.match(name)
        writer, w_index = _writer_hook(match)
        port, p_index = _port_hook(match)
        delta = corrupted[writer] - clean[writer]
        delta = delta if w_index is None else delta[:, :, w_index]

        def patch(x, hook, delta=delta, p_index=p_index):
            x = x.clone()
            if p_index is None:
                x += delta
            else:
                x[:, :, p_index] += delta
            return x

        patched = bridge.run_with_hooks(data.clean, fwd_hooks=[(port, patch)])
        by_hand = float(logit_diff(patched) - base)
        assert by_hand == pytest.approx(float(exact[graph.edge(name).index]), abs=1e-6), name


def test_building_is_deterministic_and_seeded():
    a, b, c = (registry.build("gt-ioi", seed=s) for s in (0, 0, 1))
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a.data.clean, b.data.clean)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)  # the noise follows the seed


def test_saved_folder_and_zoo_load_like_any_model(tmp_path):
    truth = registry.build("gt-gqa")
    reference = truth.model(truth.data.clean).logits
    bridge = load_model(registry.build("gt-gqa").model)
    truth.save(tmp_path / "gqa", bridge=bridge)
    from_folder = load_model(tmp_path / "gqa")
    assert torch.allclose(from_folder(truth.data.clean), reference, atol=1e-4)
    saved = load_graph(tmp_path / "gqa" / "circuit.json", model=from_folder)
    assert sorted(saved.edges_in_graph) == sorted(truth.circuit)
    task = json.loads((tmp_path / "gqa" / "task.json").read_text())
    assert task["clean"] == truth.data.clean.tolist()
    assert set(NAMES) <= set(zoo.available())
    zoo_bridge, tokenizer = zoo.load("gt-gqa")
    assert torch.allclose(zoo_bridge(truth.data.clean), reference, atol=1e-4)
    assert tokenizer.convert_ids_to_tokens(truth.data.clean[0].tolist())[0] == "<bos>"
    with pytest.raises(LookupError, match="gt-trap"):
        registry.build("gt-nope")


@pytest.mark.parametrize("name", NAMES)
def test_save_after_bridging_in_place_reloads_the_same_model(name, tmp_path):
    from transformers import AutoModelForCausalLM

    # the docs' order: load_model(truth.model) rewires the model, then truth.save writes it
    truth = registry.build(name)
    with torch.no_grad():
        reference = truth.model(truth.data.clean).logits
    bridge = load_model(truth.model, tokenizer=truth.tokenizer)
    truth.save(tmp_path / name, bridge=bridge)
    raw = AutoModelForCausalLM.from_pretrained(tmp_path / name, local_files_only=True)
    with torch.no_grad():
        assert torch.equal(raw(truth.data.clean).logits, reference)  # the very same weights
    reloaded = load_model(tmp_path / name)
    saved = load_graph(tmp_path / name / "circuit.json", model=reloaded)
    assert sorted(saved.edges_in_graph) == sorted(truth.circuit)


def test_auroc_equals_brute_force_pair_count():
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        scores = torch.randint(0, 4, (12,), generator=gen).float()
        labels = torch.rand(12, generator=gen) < 0.4
        if labels.all() or not labels.any():
            continue
        pos, neg = scores[labels], scores[~labels]
        pairs = [(p > q) + 0.5 * (p == q) for p in pos for q in neg]
        expected = float(sum(pairs)) / len(pairs)
        assert auroc(scores, labels) == pytest.approx(expected, abs=1e-12)
        fpr, tpr = roc_points(scores, labels)
        area = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
        assert area == pytest.approx(expected, abs=1e-12)
    assert precision_recall(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 1, 0])) == (0.5, 0.5)
    with pytest.raises(ValueError, match="positives and negatives"):
        auroc(torch.ones(3), torch.ones(3, dtype=torch.bool))


def test_benchmark_writes_table_json_and_figure(tmp_path):
    rows = run_benchmark(methods=["exact", "eap"], models=["gt-trap"], out=tmp_path)
    exact = next(r for r in rows if r["method"] == "exact")
    assert exact["auroc"] == 1.0 and exact["precision"] == exact["recall"] == 1.0
    assert exact["trap_in_minimal"] == 0

    def refuse(value):
        raise ValueError(f"non-finite JSON constant {value}")

    payload = json.loads((tmp_path / "benchmark.json").read_text(), parse_constant=refuse)
    assert [r["method"] for r in payload["results"]] == ["exact", "eap"]
    table = (tmp_path / "benchmark.md").read_text()
    assert "| gt-trap | exact | 110 | 1.000 |" in table
    assert (tmp_path / "roc.png").stat().st_size > 0 and (tmp_path / "roc.svg").stat().st_size > 0
    with pytest.raises(ValueError, match="unknown methods"):
        run_benchmark(methods=["nope"], models=["gt-trap"])


def test_benchmark_command_line(tmp_path, capsys):
    from circuits.app.cli import main

    assert main(["benchmark", "--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown methods" in capsys.readouterr().err
    assert (
        main(
            ["benchmark", "--methods", "exact", "--models", "gt-prev-token", "--out", str(tmp_path)]
        )
        == 0
    )
    assert "| gt-prev-token | exact | 23 | 1.000 |" in (tmp_path / "benchmark.md").read_text()


@pytest.fixture(scope="module")
def saved_prev_token(tmp_path_factory):
    """gt-prev-token saved by truth.save, as a user's own model folder."""
    folder = tmp_path_factory.mktemp("own") / "my-model"
    registry.build("gt-prev-token").save(folder)
    return folder


def _edges_file(path, text: str):
    path.write_text(text)
    return path


def test_benchmark_scores_a_saved_model_folder_with_its_true_edges(saved_prev_token, tmp_path):
    from circuits.app.cli import main

    edges = _edges_file(tmp_path / "edges.json", '[\n "input->a0.h0<v>",\n "a0.h0->logits"\n]\n')
    out = tmp_path / "bench"
    argv = ["benchmark", "--model-dir", str(saved_prev_token), "--true-edges", str(edges)]
    assert main([*argv, "--methods", "exact", "--out", str(out)]) == 0
    rows = json.loads((out / "benchmark.json").read_text())["results"]
    assert [(r["model"], r["method"], r["n_true"]) for r in rows] == [("gt-prev-token", "exact", 2)]
    assert rows[0]["auroc"] == 1.0 and rows[0]["precision"] == rows[0]["recall"] == 1.0


@pytest.mark.parametrize(
    ("text", "place", "says"),
    [
        ('[\n "input->a0.h0<v>",\n "a0.h0->logits"\n', ":4:1", "not JSON"),
        ('{"circuit": ["a0.h0->logits"]}', ":1", "list of edge names"),
        ('[\n "input->a0.h0<v>",\n 7\n]', ":3", "item 1 is 7"),
        ('[\n "input->a0.h0<v>",\n "a0.h9->logits"\n]', ":3", "unknown edge 'a0.h9->logits'"),
    ],
    ids=["malformed", "not-a-list", "not-a-name", "unknown-edge"],
)
def test_bad_true_edges_file_exits_2_naming_file_and_line(
    saved_prev_token, tmp_path, capsys, text, place, says
):
    from circuits.app.cli import main

    edges = _edges_file(tmp_path / "edges.json", text)
    argv = ["benchmark", "--model-dir", str(saved_prev_token), "--true-edges", str(edges)]
    assert main([*argv, "--methods", "exact", "--out", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err
    assert f"{edges}{place}" in err and says in err
    assert not (tmp_path / "bench").exists()  # refused before any attribution


def test_each_true_edge_is_placed_on_its_own_line(tmp_path):
    from circuits.groundtruth.custom import GroundTruthError, read_true_edges

    # an item's line is where it stands, not where its text first appears; a repeated name
    # keeps its first place
    text = '[\n "é->a1",\n "a1->logits", "é->a1",\n\n  "a0.h1->logits"\n]\n'
    edges = _edges_file(tmp_path / "edges.json", text)
    assert read_true_edges(edges) == {
        "é->a1": f"{edges}:2",
        "a1->logits": f"{edges}:3",
        "a0.h1->logits": f"{edges}:5",
    }
    bad = _edges_file(tmp_path / "bad.json", '["a0.h1->logits",\n "a1->logits",\n 1]')
    with pytest.raises(GroundTruthError, match=r"bad.json:3: item 2 is 1, not an edge name"):
        read_true_edges(bad)


def test_the_benchmark_holds_one_model_at_a_time(monkeypatch):
    import gc
    import weakref

    import circuits.groundtruth.benchmark as benchmark

    prepare, bridges, alive = benchmark._prepare, [], []

    def counting(item, seed, dtype):
        gc.collect()
        alive.append(sum(ref() is not None for ref in bridges))
        truth, bridge, graph = prepare(item, seed, dtype)
        bridges.append(weakref.ref(bridge))
        return truth, bridge, graph

    monkeypatch.setattr(benchmark, "_prepare", counting)
    rows = run_benchmark(methods=["eap"], models=["gt-prev-token", "gt-induction"])
    assert [r["model"] for r in rows] == ["gt-prev-token", "gt-induction"]
    # each model's edges are checked first; no earlier model is alive when the next loads
    assert alive == [0, 0, 0, 0]


def test_register_makes_an_own_ground_truth_a_named_model(saved_prev_token, monkeypatch):
    from circuits.groundtruth.custom import from_folder

    monkeypatch.setattr(registry, "BUILDERS", dict(registry.BUILDERS))
    registry.register("my-truth", lambda **_: from_folder(saved_prev_token, name="my-truth"))
    assert "my-truth" in registry.names() and "my-truth" in zoo.available()
    bridge, _ = zoo.load("my-truth")
    assert sorted(registry.build("my-truth").truth_graph(bridge).edges_in_graph) == sorted(
        registry.build("gt-prev-token").circuit
    )
    rows = run_benchmark(methods=["exact"], models=["my-truth"])
    assert rows[0]["model"] == "my-truth" and rows[0]["auroc"] == 1.0
    with pytest.raises(ValueError, match="taken"):
        registry.register("toy-gpt2", registry.BUILDERS["gt-trap"])


def test_benchmark_checks_methods_and_folder_before_loading(tmp_path, capsys):
    from circuits.app.cli import main

    missing = str(tmp_path / "nowhere")
    assert main(["benchmark", "--model-dir", missing, "--methods", "nope"]) == 2
    assert "unknown methods ['nope']" in capsys.readouterr().err
    assert main(["benchmark", "--model-dir", missing, "--methods", "exact"]) == 2
    assert f"model folder {missing} does not exist" in capsys.readouterr().err
    assert main(["benchmark", "--true-edges", missing]) == 2
    assert "pass both" in capsys.readouterr().err
