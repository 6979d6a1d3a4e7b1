"""The circuit explorer (circuits.app.explorer): its data against the graph and the static
figure, the page in headless Chromium (no console errors, no network, slider, hover, click,
search, filter, supernodes), the supernodes file and figure, and `circuits compare`."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from browser import MISSING_REASON, needs_browser, start_chromium, wait_for

from circuits.app.cli import main
from circuits.app.explorer import (
    SupernodeError,
    Supernodes,
    compare_runs,
    explorer_data,
    load_run_graph,
    spearman,
)
from circuits.app.explorer.page import CYTOSCAPE_SHA256
from graphs import Graph, save_graph

STATIC = Path(__file__).resolve().parents[1] / "circuits" / "app" / "explorer" / "static"


def test_vendored_cytoscape_is_the_recorded_release_with_its_licence():
    digest = hashlib.sha256((STATIC / "cytoscape.min.js").read_bytes()).hexdigest()
    assert digest == CYTOSCAPE_SHA256
    readme = (STATIC / "README.md").read_text()
    assert digest in readme and "3.34.4" in readme
    licence = (STATIC / "cytoscape.LICENSE").read_text()
    assert "Permission is hereby granted, free of charge" in licence and "Cytoscape" in licence


def test_explorer_data_follows_the_ranking_and_the_static_layout(small_run_dir):
    from circuits.app.figures import circuit_drawing

    graph = load_run_graph(small_run_dir)
    record = json.loads((small_run_dir / "metrics.json").read_text())
    data = explorer_data(graph, record)
    e = data["edges"]
    names = [
        data["nodes"][u]["name"] + "->" + data["ports"][p]["name"]
        for u, p in zip(e["up"], e["port"], strict=True)
    ]
    ranked = [edge.name for edge in graph.top_edges(graph.n_edges)]
    assert names == ranked and len(names) == int(graph.real_edges.sum())
    for name, score, flag in zip(names[:50], e["score"], e["in"], strict=False):
        edge = graph.edge(name)
        assert score == pytest.approx(edge.score, rel=1e-5) and bool(flag) == edge.in_graph
    assert data["n_circuit"] == graph.count_included_edges() == record["circuit"]["n_edges"]
    drawing = circuit_drawing(graph)  # the static figure puts every drawn node at the same place
    by_name = {n["name"]: n for n in data["nodes"]}
    for node in drawing.nodes.values():
        assert (by_name[node.name]["x"], by_name[node.name]["y"]) == (node.x, node.y)
    assert data["curve"]["n_edges"] == record["curve"]["n_edges"]
    assert data["curve"]["f"] == record["curve"]["f"]


def test_discover_writes_the_explorer_and_the_report_links_it(small_run_dir):
    page = (small_run_dir / "explorer.html").read_text()
    assert "cytoscape" in page and 'id="explorer-data"' in page
    assert "<script src" not in page and "http://" not in page.split("<script>")[0]
    assert '<a href="explorer.html">' in (small_run_dir / "report.html").read_text()
    assert "[explorer.html](explorer.html)" in (small_run_dir / "report.md").read_text()


# ------------------------------------------------------------------ in the browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if MISSING_REASON:
        pytest.skip(MISSING_REASON)
    downloads = tmp_path_factory.mktemp("downloads")
    driver = start_chromium(str(downloads))
    driver.downloads = downloads
    yield driver
    driver.quit()


def _open(driver, path: Path):
    driver.get(path.resolve().as_uri())
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), what="page")


def _js(driver, code, *args):
    return driver.execute_script(code, *args)


def _at(driver, rendered):
    """Move the mouse to a point of the Cytoscape canvas (rendered coordinates)."""
    from selenium.webdriver.common.action_chains import ActionChains

    box = driver.find_element("id", "cy")
    w, h = box.size["width"], box.size["height"]
    chain = ActionChains(driver)
    chain.move_to_element_with_offset(box, int(rendered["x"] - w / 2), int(rendered["y"] - h / 2))
    return chain


def _drawn(driver) -> list[str]:
    return _js(
        driver, "return explorer.cy.edges('.real').map(e => explorer.edgeName(e.data('rank')))"
    )


def _set_size(driver, n):
    field = driver.find_element("id", "size-value")
    field.clear()
    field.send_keys(str(n), "\n")


@needs_browser
def test_explorer_loads_offline_without_console_errors_or_requests(browser, small_run_dir):
    _open(browser, small_run_dir / "explorer.html")
    logs = browser.get_log("browser")
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == [], logs
    resources = _js(browser, "return performance.getEntriesByType('resource').map(r => r.name)")
    assert [r for r in resources if not r.startswith(("file:", "data:", "blob:"))] == []
    n = json.loads((small_run_dir / "metrics.json").read_text())["circuit"]["n_edges"]
    assert browser.find_element("id", "drawn-count").text == str(n)
    assert len(_drawn(browser)) == n


@needs_browser
def test_slider_filter_and_curve_f(browser, small_run_dir):
    from selenium.webdriver.common.keys import Keys

    graph = load_run_graph(small_run_dir)
    curve = json.loads((small_run_dir / "metrics.json").read_text())["curve"]
    ranked = [e.name for e in graph.top_edges(graph.n_edges)]
    _open(browser, small_run_dir / "explorer.html")
    n = graph.count_included_edges()
    slider = browser.find_element("id", "size")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # as a user drags it
    assert browser.find_element("id", "drawn-count").text == str(n + 3)
    assert sorted(_drawn(browser)) == sorted(ranked[: n + 3])
    # a size the curve measured shows that f
    k, f = curve["n_edges"][3], curve["f"][3]
    _set_size(browser, k)
    assert len(_drawn(browser)) == k
    shown = browser.find_element("id", "curve-f")
    assert float(shown.get_attribute("data-value")) == pytest.approx(f, rel=1e-6)
    assert f"measured at {k} edges" in shown.text
    # without edges into logits: the top k minus those
    browser.find_element("css selector", "input.kind[value=logits]").click()
    assert sorted(_drawn(browser)) == sorted(e for e in ranked[:k] if not e.endswith("->logits"))
    browser.find_element("css selector", "input.kind[value=logits]").click()
    assert len(_drawn(browser)) == k


@needs_browser
def test_hover_shows_the_edge_and_click_lists_a_nodes_edges(browser, small_run_dir):
    graph = load_run_graph(small_run_dir)
    best = graph.top_edges(1)[0]
    _open(browser, small_run_dir / "explorer.html")
    _set_size(browser, 1)
    mid = _js(browser, "return explorer.cy.edges('.real')[0].renderedMidpoint()")
    _at(browser, mid).perform()
    tip = wait_for(lambda: browser.find_element("id", "tooltip").text, what="tooltip")
    assert best.name in tip and "rank: 1 of" in tip
    score = float(browser.find_element("css selector", "#tooltip .score").text)
    assert score == pytest.approx(best.score, rel=1e-5)
    # click the upstream node of the best edge: its outgoing edges, ranked
    up = best.upstream.name
    idx = next(i for i, n in enumerate(graph.layout.nodes) if n.name == up)
    pos = _js(browser, f"return explorer.cy.getElementById('n{idx}').renderedPosition()")
    _at(browser, pos).click().perform()
    rows = browser.find_elements("css selector", "#node-panel ol")[1].find_elements(
        "tag name", "li"
    )
    expected = [e.name for e in graph.top_edges(graph.n_edges) if e.upstream.name == up][:25]
    assert [r.get_attribute("data-edge") for r in rows] == expected
    # search by name
    box = browser.find_element("id", "search")
    box.send_keys("m1")
    assert browser.find_element("id", "search-count").text == "1 match"
    assert _js(browser, "return explorer.cy.nodes('.match').map(n => n.data('label'))") == ["m1"]


@needs_browser
def test_grouping_two_nodes_exports_the_schema_and_report_draws_it(
    browser, small_run_dir, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(small_run_dir, run)
    _open(browser, run / "explorer.html")
    graph = load_run_graph(run)
    for name in ("a0.h1", "m0"):
        idx = graph.layout.node_by_name[name].index
        pos = _js(browser, f"return explorer.cy.getElementById('n{idx}').renderedPosition()")
        _at(browser, pos).click().perform()
    assert sorted(
        _js(browser, "return explorer.cy.nodes(':selected').map(n => n.data('label'))")
    ) == ["a0.h1", "m0"]
    browser.find_element("id", "pin").click()  # pinned where they are: the figure's places
    browser.find_element("id", "group-name").send_keys("early")
    browser.find_element("id", "group-note").send_keys("reads the names")
    browser.find_element("id", "group").click()
    browser.find_element("id", "export").click()
    exported = json.loads(browser.find_element("id", "export-json").get_attribute("value"))
    assert exported == {
        "format": "circuit-discovery-supernodes", "schema_version": 1, "model": "toy-gpt2",
        "supernodes": [{"name": "early", "nodes": ["a0.h1", "m0"], "annotation": "reads the names"}],
        "pinned": {"a0.h1": [1.0, 0.0], "m0": [4.0, 1.0]},  # head column, layer row
    }  # fmt: skip
    downloaded = wait_for(lambda: list(browser.downloads.glob("supernodes*.json")), what="download")
    assert json.loads(downloaded[0].read_text()) == exported
    # the file in the run folder: the report's circuit figure draws the group, the page shows it
    (run / "supernodes.json").write_text(json.dumps(exported))
    before = (run / "circuit.svg").read_text()
    assert "supernode-early" not in before
    assert main(["report", str(run)]) == 0
    assert 'id="supernode-early"' in (run / "circuit.svg").read_text()
    _open(browser, run / "explorer.html")
    parents = _js(
        browser,
        "return explorer.cy.nodes(':parent').map(n => [n.data('label'), n.children().map(c => c.data('label')).sort()])",
    )
    assert parents == [["early", ["a0.h1", "m0"]]]
    locked = _js(
        browser, "return explorer.cy.nodes('.pinned').map(n => [n.data('label'), n.locked()])"
    )
    assert sorted(locked) == [["a0.h1", True], ["m0", True]]


def test_supernodes_file_is_checked():
    names = {"a0.h0", "a0.h1", "m0"}
    ok = {"format": "circuit-discovery-supernodes", "schema_version": 1,
          "supernodes": [{"name": "g", "nodes": ["a0.h0"], "annotation": ""}]}  # fmt: skip
    assert Supernodes.from_dict(ok, names).supernodes[0].nodes == ["a0.h0"]
    bad = [
        ({**ok, "format": "other"}, "not a supernodes file"),
        ({**ok, "supernodes": [{"name": "g", "nodes": ["a9.h9"]}]}, "no node named 'a9.h9'"),
        ({**ok, "supernodes": [{"name": "g", "nodes": ["m0"]}, {"name": "h", "nodes": ["m0"]}]},
         "'m0' is in two supernodes"),
        ({**ok, "supernodes": [{"name": "", "nodes": ["m0"]}]}, "has no name"),
        ({**ok, "pinned": {"m0": [1, "x"]}}, "position must be"),
    ]  # fmt: skip
    for data, message in bad:
        with pytest.raises(SupernodeError, match=message):
            Supernodes.from_dict(data, names)


# ------------------------------------------------------------------ compare


def test_spearman_equals_the_rank_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, generator=gen).numpy(), torch.randn(40, generator=gen).numpy()
    ra = a.argsort().argsort() + 1
    rb = b.argsort().argsort() + 1
    n = len(a)
    expected = 1 - 6 * ((ra - rb) ** 2).sum() / (n * (n * n - 1))  # no ties
    assert spearman(a, b) == pytest.approx(expected, abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    # ties take their mean rank: [1, 1, 2] has ranks [1.5, 1.5, 3]
    assert spearman([1, 1, 2], [1.5, 1.5, 3]) == pytest.approx(1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


@needs_browser
def _record_checksums(run) -> None:
    """Record the checksums of a run folder whose graph the test replaced on purpose (every
    reader refuses a graph file that differs from the run record's)."""
    from circuits.app.integrity import file_digests
    from circuits.app.run import RunRecord

    record = RunRecord.load(run)
    record.integrity = file_digests(run)
    record.write(run)


def test_compare_two_runs(browser, small_run_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(small_run_dir, other)
    graph = load_run_graph(small_run_dir)
    changed = graph.copy()
    gen = torch.Generator().manual_seed(3)
    changed.set_scores(
        graph.scores
        + 0.3 * graph.scores.abs().max() * torch.randn(graph.scores.shape, generator=gen)
    )
    ranked = [e.name for e in changed.top_edges(graph.count_included_edges() + 2)]
    mask = torch.zeros_like(graph.in_graph)
    for name in ranked:
        mask[graph.layout.edge_index(name)] = True
    changed.set_in_graph(mask)
    for name in ("scores.safetensors", "graph.json", "graph.graphml"):
        (other / name).unlink()
    save_graph(changed, other / "scores.safetensors")
    _record_checksums(other)

    result = compare_runs(small_run_dir, other)
    a = {e.name for e in graph.edges_in_graph.values()}
    b = set(ranked)
    assert {e["edge"] for e in result["shared"]} == a & b
    assert {e["edge"] for e in result["only_a"]} == a - b
    assert {e["edge"] for e in result["only_b"]} == b - a
    assert result["jaccard"] == pytest.approx(len(a & b) / len(a | b))
    real = graph.real_edges
    assert result["spearman"] == pytest.approx(
        spearman(graph.scores[real].abs().numpy(), changed.scores[real].abs().numpy())
    )
    assert result["spearman"] < 1.0

    out = tmp_path / "compare.html"
    assert main(["compare", str(small_run_dir), str(other), "--out", str(out)]) == 0
    assert f"Jaccard {round(result['jaccard'], 4)}" in capsys.readouterr().out
    _open(browser, out)
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    assert browser.find_element("id", "jaccard").text == f"{result['jaccard']:.4g}"
    counts = _js(
        browser,
        "return [compare.views.a.edges().length, compare.views.b.edges().length, compare.views.a.edges('.only').length]",
    )
    assert counts == [len(a), len(b), len(a - b)]
    # an edge only one run holds lies beneath the shared ones, which it never covers
    for view, only in (("a", a - b), ("b", b - a)):
        geometry = _js(browser, _EDGE_GEOMETRY, view)
        shared = [g["z"] for name, g in geometry.items() if name not in only]
        assert shared and all(geometry[name]["z"] < min(shared) for name in only)


def test_compare_refuses_runs_of_different_models(small_run_dir, tmp_path, capsys):
    from graphs import ModelSpec

    other = tmp_path / "other"
    shutil.copytree(small_run_dir, other)
    for name in ("scores.safetensors", "graph.json", "graph.graphml"):
        (other / name).unlink()
    save_graph(Graph(ModelSpec(n_layers=2, n_heads=2)), other / "scores.safetensors")
    _record_checksums(other)
    assert main(["compare", str(small_run_dir), str(other)]) == 2
    assert "different shapes" in capsys.readouterr().err


# ------------------------------------------------------------------ GPT-2 small's size


@needs_browser
def test_the_page_stays_usable_at_gpt2_small_size(browser, tmp_path):
    """docs/guide.md states the load time measured by benchmarks/bench_explorer.py; this test
    asserts it with a wide margin for a loaded machine."""
    from benchmarks.bench_explorer import gpt2_small_page

    graph = gpt2_small_page(tmp_path / "gpt2.html")
    assert graph.n_edges == 32491
    t0 = time.perf_counter()
    _open(browser, tmp_path / "gpt2.html")
    load = time.perf_counter() - t0
    assert _js(browser, "return explorer.data.edges.up.length") == 32491
    assert browser.find_element("id", "drawn-count").text == "200"
    _set_size(browser, 2000)
    assert browser.find_element("id", "drawn-count").text == "2000"
    assert load < 15, f"loading the GPT-2 small page took {load:.1f} s"


def test_report_of_a_folder_without_graph_files_still_works(small_run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("metrics.json", "circuit.png", "faithfulness_curve.png", "score_histogram.png"):
        shutil.copy(small_run_dir / name, run / name)
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and not (run / "explorer.html").exists()


def _column_page(path: Path) -> Graph:
    """An explorer page of a 4-layer, 3-head model whose circuit (its top edges) runs along
    shared columns: the edges of tests/test_figures.py's COLUMNS."""
    from test_figures import COLUMNS

    from circuits.app.explorer.page import render_explorer
    from graphs import ModelSpec

    graph = Graph(ModelSpec(n_layers=4, n_heads=3, model_name="tiny"))
    scores = torch.zeros(graph.n_forward, graph.n_backward)
    mask = torch.zeros_like(graph.real_edges)
    for name, score in COLUMNS.items():
        scores[graph.layout.edge_index(name)], mask[graph.layout.edge_index(name)] = score, True
    graph.set_scores(scores)
    graph.set_in_graph(mask)
    path.write_text(render_explorer(explorer_data(graph)))
    return graph


# Each drawn edge's path in rendered pixels: Cytoscape's endpoints and control point; in the
# explorer (no argument) or in view arguments[0] of compare.html.
_EDGE_GEOMETRY = """
const cy = arguments[0] ? compare.views[arguments[0]] : explorer.cy;
const z = cy.zoom(), pan = cy.pan(), out = {};
cy.edges(arguments[0] ? '' : '.real').forEach((e) => {
  const s = e.renderedSourceEndpoint(), t = e.renderedTargetEndpoint();
  const cps = e.controlPoints();
  const c = cps && cps.length ? {x: cps[0].x * z + pan.x, y: cps[0].y * z + pan.y}
                              : {x: (s.x + t.x) / 2, y: (s.y + t.y) / 2};
  const name = arguments[0] ? e.data('name') : explorer.edgeName(e.data('rank'));
  out[name] = {s: [s.x, s.y], c: [c.x, c.y], t: [t.x, t.y], z: Number(e.style('z-index')),
    model: cps && cps.length ? [cps[0].x, cps[0].y] : null};
});
return out;
"""


@needs_browser
def test_explorer_routes_edges_of_one_column_apart(browser, tmp_path):
    """No two drawn edges run along each other for more than a small part of their length
    (rendered geometry), and each curve's control point is the circuit figure's."""
    from overlap import quadratic, worst_overlap
    from test_figures import COLUMNS

    from circuits.app.figures import circuit_drawing, control_point

    graph = _column_page(tmp_path / "columns.html")
    _open(browser, tmp_path / "columns.html")
    geometry = _js(browser, _EDGE_GEOMETRY)
    assert sorted(geometry) == sorted(COLUMNS)
    curves = {name: quadratic(g["s"], g["c"], g["t"]) for name, g in geometry.items()}
    fraction, a, b = worst_overlap(curves, tol=3.0)
    assert fraction < 0.25, f"{a} runs along {b} for {fraction:.0%} of its length"
    sx, sy = 70, 55  # explorer.js's figure units to pixels
    for edge in circuit_drawing(graph).edges:
        cx, cy = control_point(edge.start, edge.end, edge.bend)
        model = geometry[edge.name]["model"]
        if edge.bend:
            assert model == pytest.approx([cx * sx, -cy * sy], abs=0.5), edge.name


@needs_browser
def test_live_panel_describes_the_edited_circuit(browser, small_run_dir, tmp_path):
    """In live mode, taking an edge out changes the panel: the edited circuit's edge count and
    "edited" state, and the run's f labelled as the circuit before the edits."""
    from circuits.app.explorer.page import explorer_page

    page = tmp_path / "live.html"  # no server: the panel must not depend on its answer
    page.write_text(explorer_page(small_run_dir, live={"endpoint": "http://127.0.0.1:9/f"}))
    _open(browser, page)
    n = json.loads((small_run_dir / "metrics.json").read_text())["circuit"]["n_edges"]
    text = lambda name: browser.find_element("id", name).text  # noqa: E731
    state = lambda name: browser.find_element("id", "edit-state").get_attribute(name)  # noqa: E731
    assert text("drawn-count") == str(n) and not state("data-edited")
    run_f = text("curve-f")
    assert run_f.startswith("f = ")

    _js(browser, "explorer.cy.getElementById('e0').emit('tap')")  # take the best edge out
    assert text("drawn-count") == str(n - 1)
    assert state("data-edited") == "1" and state("data-edges") == str(n - 1)
    assert f"holds {n - 1} edges" in text("edit-state") and "1 of the top" in text("edit-state")
    assert text("curve-f") == f"before the edits, the run's top {n}: {run_f}"
    assert "f of the circuit drawn" in text("live")

    browser.find_element("id", "reset").click()
    assert text("drawn-count") == str(n) and not state("data-edited")
    assert text("curve-f") == run_f and text("edit-state") == ""
