"""Figures of a run report: circuit drawing, faithfulness curve, score histogram (PNG + SVG)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from circuits.app.figures import (  # noqa: E402
    DPI,
    EMPTY_NOTE,
    PORT_STYLES,
    circuit_drawing,
    circuit_figure,
    draw_circuit,
    faithfulness_figure,
    faithfulness_plot_data,
    plot_faithfulness_curve,
    plot_score_histogram,
    score_histogram_data,
    score_histogram_figure,
    svg_id,
)
from circuits.patchscopes import heatmap_figure  # noqa: E402
from circuits.search.faithfulness import FaithfulnessCurve  # noqa: E402
from circuits.search.minimal import Evaluation, MinimalCircuit  # noqa: E402
from graphs import Graph  # noqa: E402
from graphs.spec import ModelSpec  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"

# name -> score of the test circuit on a 2-layer, 4-head multi-head model
CIRCUIT = {
    "input->a1.h0<q>": 0.5,
    "a0.h1->a1.h0<k>": -2.0,
    "a0.h1->a1.h0<v>": 1.0,
    "a0.h2->m0": 4.0,
    "input->a0.h2<v>": -0.25,
    "m1->logits": 3.0,
    "a1.h3->logits": -1.5,
}
NOT_IN_CIRCUIT = "input->a0.h0<q>"


def _graph(spec: ModelSpec, circuit: dict[str, float]) -> Graph:
    graph = Graph(spec)
    gen = torch.Generator().manual_seed(0)
    graph.set_scores(0.1 * torch.randn(graph.n_forward, graph.n_backward, generator=gen))
    mask = torch.zeros_like(graph.real_edges)
    for name, score in circuit.items():
        edge = graph.edge(name)
        edge.score = score
        mask[edge.index] = True
    graph.set_in_graph(mask)
    return graph


@pytest.fixture
def mha_graph() -> Graph:
    return _graph(ModelSpec(n_layers=2, n_heads=4, d_model=32, model_name="tiny"), CIRCUIT)


@pytest.fixture(scope="module")
def llama_graph() -> Graph:
    """Graph of a tiny random Llama (grouped-query: 4 query heads, 2 key/value heads)."""
    from circuits.models import load_model
    from circuits.models.random import random_hf_model

    bridge = load_model(random_hf_model("LlamaForCausalLM", n_layers=2, n_heads=4, d_model=32))
    return Graph.from_model(bridge)


def _svg(path) -> ET.Element:
    return ET.parse(path).getroot()


def _ids(root: ET.Element, prefix: str) -> set[str]:
    return {el.get("id") for el in root.iter() if (el.get("id") or "").startswith(prefix)}


def _element(root: ET.Element, gid: str) -> ET.Element:
    found = [el for el in root.iter() if el.get("id") == gid]
    assert len(found) == 1, gid
    return found[0]


def _dasharray(root: ET.Element, gid: str) -> str | None:
    """The stroke-dasharray of the path drawn inside ``<g id=gid>`` (None when solid)."""
    (path,) = _element(root, gid).iter(f"{SVG_NS}path")
    match = re.search(r"stroke-dasharray:\s*([^;]+)", path.get("style", ""))
    return match.group(1).strip() if match else None


def _check_files(paths, base, figsize) -> ET.Element:
    png, svg = paths
    assert (png, svg) == (base.with_suffix(".png"), base.with_suffix(".svg"))
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width = mpimg.imread(png).shape[:2]
    assert abs(width - figsize[0] * DPI) <= 1 and abs(height - figsize[1] * DPI) <= 1
    assert width > 0 and height > 0
    assert not [p for p in base.parent.iterdir() if p.name.endswith(".tmp")]
    return _svg(svg)


# --------------------------------------------------------------------------- circuit
def test_svg_ids_are_xml_safe_and_distinct():
    assert svg_id("edge", "a0.h1->a1.kv0<k>") == "edge-a0.h1__a1.kv0_k"
    names = ["a0.h1->a1.h0<k>", "a0.h1->a1.h0<v>", "a0.h1->a1.h0<q>", "a0.h1->m1"]
    ids = [svg_id("edge", n) for n in names]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", i) for i in ids)


def test_draw_circuit_writes_png_and_svg_with_one_path_per_edge(mha_graph, tmp_path):
    base = tmp_path / "new" / "folder" / "circuit"
    paths = draw_circuit(mha_graph, base, title="my circuit")
    drawing = circuit_drawing(mha_graph)
    root = _check_files(paths, base, drawing.figsize)

    edge_ids = _ids(root, "edge-")
    assert len(edge_ids) == mha_graph.count_included_edges() == len(CIRCUIT)
    assert edge_ids == {svg_id("edge", name) for name in CIRCUIT}
    assert svg_id("edge", "a0.h2->m0") in edge_ids
    assert svg_id("edge", NOT_IN_CIRCUIT) not in edge_ids

    # drawn nodes: ends of circuit edges plus input and logits, nothing else
    expected_nodes = {"input", "logits", "a1.h0", "a0.h1", "a0.h2", "m0", "m1", "a1.h3"}
    assert _ids(root, "node-") == {svg_id("node", n) for n in expected_nodes}
    assert not _ids(root, "port-")  # multi-head attention: k/v edges end at the head


def test_circuit_layout_and_edge_styles(mha_graph):
    drawing = circuit_drawing(mha_graph)
    nodes = drawing.nodes
    assert nodes["input"].y < nodes["a0.h1"].y < nodes["m0"].y < nodes["a1.h0"].y
    assert nodes["a1.h0"].y < nodes["m1"].y < nodes["logits"].y
    # positions follow the full grid: head h sits in column h in every layer
    assert nodes["a0.h1"].x == 1 and nodes["a1.h3"].x == 3 and nodes["a1.h0"].x == 0
    edges = {e.name: e for e in drawing.edges}
    # an edge goes from its upstream node to the node that reads the port
    edge = edges["a0.h1->a1.h0<k>"]
    assert (edge.start, edge.end) == ((1.0, 0.0), (nodes["a1.h0"].x, nodes["a1.h0"].y))
    assert edges["a0.h2->m0"].target == "m0" and edges["m1->logits"].target == "logits"

    styles = {e.port_kind: e.linestyle for e in drawing.edges}
    assert set(styles) == {"q", "k", "v", "mlp", "logits"}
    assert len({repr(s) for s in styles.values()}) == 5  # every port kind looks different
    assert styles == {kind: PORT_STYLES[kind] for kind in styles}

    # width ∝ |score| relative to the largest |score| (4.0), colour by sign
    assert drawing.max_abs_score == 4.0
    widest = max(drawing.edges, key=lambda e: e.linewidth)
    assert widest.name == "a0.h2->m0"
    assert edges["a0.h1->a1.h0<k>"].linewidth == pytest.approx(0.5 + 3.5 * 2.0 / 4.0)
    assert edges["a0.h1->a1.h0<k>"].color != edges["a0.h1->a1.h0<v>"].color
    assert edges["m1->logits"].color == edges["a0.h2->m0"].color  # both positive


def test_q_k_v_line_styles_differ_in_svg(mha_graph, tmp_path):
    _, svg = draw_circuit(mha_graph, tmp_path / "c")
    root = _svg(svg)
    q = _dasharray(root, svg_id("edge", "input->a1.h0<q>"))
    k = _dasharray(root, svg_id("edge", "a0.h1->a1.h0<k>"))
    v = _dasharray(root, svg_id("edge", "a0.h1->a1.h0<v>"))
    assert q is None  # solid
    assert k is not None and v is not None and k != v


def test_max_edges_draws_strongest_and_says_so(mha_graph, tmp_path):
    drawing = circuit_drawing(mha_graph, max_edges=2)
    assert {e.name for e in drawing.edges} == {"a0.h2->m0", "m1->logits"}
    assert drawing.truncated and drawing.n_circuit_edges == len(CIRCUIT)
    assert "top 2 of 7" in drawing.title
    _, svg = draw_circuit(mha_graph, tmp_path / "c", max_edges=2)
    assert _ids(_svg(svg), "edge-") == {svg_id("edge", "a0.h2->m0"), svg_id("edge", "m1->logits")}
    assert not circuit_drawing(mha_graph, max_edges=50).truncated
    with pytest.raises(ValueError):
        circuit_drawing(mha_graph, max_edges=-1)


def test_empty_circuit_draws_a_note(tmp_path):
    graph = _graph(ModelSpec(n_layers=2, n_heads=4), {})
    drawing = circuit_drawing(graph)
    assert drawing.edges == [] and drawing.note == EMPTY_NOTE
    assert set(drawing.nodes) == {"input", "logits"}
    base = tmp_path / "empty"
    root = _check_files(draw_circuit(graph, base), base, drawing.figsize)
    assert not _ids(root, "edge-")
    _element(root, "empty-note")
    # text is stored as glyph paths; matplotlib keeps the string as a comment beside them
    assert "empty circuit" in base.with_suffix(".svg").read_text()


def test_grouped_query_graph_renders_shared_kv_ports(llama_graph, tmp_path):
    assert llama_graph.spec.grouped_query and llama_graph.spec.n_kv_heads == 2
    circuit = {
        "input->a1.kv0<k>": 1.0,
        "a0.h0->a1.kv1<v>": -0.5,
        "a0.h3->a1.h2<q>": 0.25,
        "a1.h1->logits": 2.0,
    }
    graph = llama_graph.copy()
    mask = torch.zeros_like(graph.real_edges)
    for name, score in circuit.items():
        graph.edge(name).score = score
        mask[graph.edge(name).index] = True
    graph.set_in_graph(mask)

    drawing = circuit_drawing(graph)
    assert set(drawing.ports) == {"a1.kv0<k>", "a1.kv1<v>"}
    assert drawing.ports["a1.kv0<k>"].readers == ("a1.h0", "a1.h1")
    edges = {e.name: e for e in drawing.edges}
    assert edges["input->a1.kv0<k>"].target == "a1.kv0<k>"
    assert edges["a0.h3->a1.h2<q>"].target == "a1.h2"
    # every query head reading a shared port is drawn
    assert {"a1.h0", "a1.h1", "a1.h2", "a1.h3"} <= set(drawing.nodes)

    base = tmp_path / "llama"
    root = _check_files(draw_circuit(graph, base), base, drawing.figsize)
    assert _ids(root, "edge-") == {svg_id("edge", n) for n in circuit}
    assert {svg_id("port", "a1.kv0<k>"), svg_id("port", "a1.kv1<v>")} <= _ids(root, "port-")


def test_gpt2_small_shape_stays_reasonable():
    graph = _graph(ModelSpec(n_layers=12, n_heads=12), {"a0.h0->a11.h11<q>": 1.0})
    drawing = circuit_drawing(graph)
    width, height = drawing.figsize
    assert 8 <= width <= 26 and 8 <= height <= 30
    assert len(drawing.grid) == 12 * 13  # the full layer grid, for orientation
    small = circuit_drawing(_graph(ModelSpec(n_layers=2, n_heads=4), {}))
    assert small.figsize[0] < width and small.figsize[1] < height


def test_svg_output_is_deterministic_and_no_pyplot_figures_leak(mha_graph, tmp_path):
    before = plt.get_fignums()
    _, svg1 = draw_circuit(mha_graph, tmp_path / "a")
    _, svg2 = draw_circuit(mha_graph, tmp_path / "b")
    assert svg1.read_bytes() == svg2.read_bytes()
    assert plt.get_fignums() == before
    fig = circuit_figure(mha_graph)
    assert fig.get_axes()[0].get_title().startswith("Circuit of tiny: 7 edges")


def test_patchscope_heatmap_uses_the_shared_plotting_helpers(tmp_path):
    from circuits.patchscopes import Heatmap

    heat = Heatmap(torch.tensor([[0.1, 0.9], [0.5, 0.7], [1.0, 0.0]]), [0, 1, 2], [0, 1], n=4)
    before = plt.get_fignums()
    png, svg = heat.save(tmp_path / "a")
    _, svg2 = heat.save(tmp_path / "b")
    assert svg.read_bytes() == svg2.read_bytes() and b"<text" not in svg.read_bytes()
    assert plt.get_fignums() == before
    height, width = mpimg.imread(png).shape[:2]
    assert (width, height) == (round((1.2 + 0.7 * 2) * DPI), round((1.0 + 0.6 * 3) * DPI))
    cells = [t.get_text() for t in heatmap_figure(heat).get_axes()[0].texts]
    assert cells == ["0.10", "0.90", "0.50", "0.70", "1.00", "0.00"]


# --------------------------------------------------------------------------- faithfulness
def _curve(random: bool = True) -> FaithfulnessCurve:
    return FaithfulnessCurve(
        fractions=[0.001, 0.01, 0.1, 0.5, 1.0],
        n_edges=[0, 3, 30, 150, 300],
        f=[0.0, 0.3, 0.85, 0.97, 1.0],
        m_full=2.0,
        m_empty=0.1,
        m_circuits=[0.1, 0.67, 1.7, 1.94, 2.0],
        cpr=0.912,
        cmd=0.088,
        cpr_log=0.812,
        cmd_log=0.134,
        random_f=[0.0, 0.01, 0.05, 0.4, 1.0] if random else None,
    )


def _minimal() -> MinimalCircuit:
    evaluations = [
        Evaluation("exponential", k, f, f >= 0.9)
        for k, f in [(1, 0.1), (2, 0.2), (4, 0.35), (8, 0.5), (16, 0.7), (32, 0.86), (64, 0.93)]
    ] + [Evaluation("binary", 48, 0.91, True), Evaluation("binary", 40, 0.89, False)]
    return MinimalCircuit(
        mask=torch.zeros(1), n_edges=48, f=0.91, target=(0.9, math.inf), reached=True,
        evaluations=evaluations,
    )  # fmt: skip


def test_faithfulness_plot_data_places_the_star_and_drops_size_zero():
    data = faithfulness_plot_data(_curve(), _minimal())
    assert data.minimal == (48, 0.91)
    assert data.n_edges == [3, 30, 150, 300] and data.f == [0.3, 0.85, 0.97, 1.0]
    assert data.random_n_edges == [3, 30, 150, 300] and data.random_f[0] == 0.01
    assert data.n_dropped == 2  # the size-0 point of the curve and of the random baseline
    assert len(data.evaluations) == 9 and (40, 0.89) in data.evaluations
    assert data.target == (0.9, math.inf)
    plain = faithfulness_plot_data(_curve(random=False))
    assert plain.minimal is None and plain.random_f is None and plain.evaluations == []


def test_plot_faithfulness_curve(tmp_path):
    base = tmp_path / "plots" / "curve"
    root = _check_files(
        plot_faithfulness_curve(_curve(), base, minimal=_minimal()), base, (7.5, 4.8)
    )
    ids = _ids(root, "")
    for gid in ("faithfulness-curve", "random-baseline", "minimal-circuit", "target", "f-equals-1"):
        assert gid in ids, gid
    assert "search-evaluations" in ids

    fig = faithfulness_figure(_curve(), minimal=_minimal())
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log"
    (star,) = fig.findobj(lambda a: a.get_gid() == "minimal-circuit")
    assert star.get_marker() == "*"
    assert np.allclose(star.get_xydata(), [[48, 0.91]])
    (target,) = fig.findobj(lambda a: a.get_gid() == "target")
    assert np.allclose(target.get_ydata(), 0.9)
    (dots,) = fig.findobj(lambda a: a.get_gid() == "search-evaluations")
    assert len(dots.get_offsets()) == 9
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "CPR 0.912, CMD 0.088 (MIB's" in legend
    assert "CPR_log 0.812, CMD_log 0.134 (log10" in legend

    _, svg = plot_faithfulness_curve(_curve(random=False), tmp_path / "plain")
    plain_ids = _ids(_svg(svg), "")
    assert "minimal-circuit" not in plain_ids and "random-baseline" not in plain_ids


def test_faithfulness_curve_with_only_size_zero_does_not_crash(tmp_path):
    curve = _curve()
    curve.n_edges = [0] * 5
    png, svg = plot_faithfulness_curve(curve, tmp_path / "zero")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "empty-note" in _ids(_svg(svg), "")


# --------------------------------------------------------------------------- scores
def test_score_histogram_data_counts(mha_graph):
    data = score_histogram_data(mha_graph, bins=25)
    assert len(data.bin_edges) == 26 and len(data.counts) == len(data.circuit_counts) == 25
    assert data.counts.sum() == data.n_edges == mha_graph.n_edges
    assert data.circuit_counts.sum() == data.n_circuit == mha_graph.count_included_edges()
    assert (data.circuit_counts <= data.counts).all()
    # the in-circuit edge with score 4.0 is the maximum: it lands in the last bin
    assert data.bin_edges[-1] == 4.0 and data.circuit_counts[-1] == 1

    mha_graph.scores[mha_graph.edge(NOT_IN_CIRCUIT).index] = float("nan")
    with_nan = score_histogram_data(mha_graph)
    assert with_nan.n_nonfinite == 1 and with_nan.counts.sum() == mha_graph.n_edges - 1
    with pytest.raises(ValueError):
        score_histogram_data(mha_graph, bins=0)


def test_plot_score_histogram(mha_graph, tmp_path):
    base = tmp_path / "hist"
    root = _check_files(plot_score_histogram(mha_graph, base, bins=30), base, (7.5, 4.5))
    ids = _ids(root, "hist-")
    assert {"hist-all", "hist-circuit"} <= ids
    fig = score_histogram_figure(mha_graph)
    ax = fig.get_axes()[0]
    assert ax.get_yscale() == "log"
    assert "m(patched) − m(clean)" in ax.get_xlabel()
    overlay = fig.findobj(lambda a: a.get_gid() == "hist-circuit")
    assert overlay  # the in-circuit bars

    empty = _graph(ModelSpec(n_layers=2, n_heads=4), {})
    _, svg = plot_score_histogram(empty, tmp_path / "hist_empty")
    ids = _ids(_svg(svg), "hist-")
    assert "hist-all" in ids and "hist-circuit" not in ids


def test_circuit_nodes_are_labelled_by_name(mha_graph):
    from circuits.app.figures import circuit_figure

    fig = circuit_figure(mha_graph)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"input", "logits", "a0.h1", "m0", "a1.h3"} <= labels


def test_curve_legend_names_the_split_of_the_search_and_of_the_curve():
    from circuits.app.figures import faithfulness_figure

    fig = faithfulness_figure(_curve(), minimal=_minimal())
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("search evaluations" in t and "train split" in t for t in legend)
    assert any("top edges" in t and "test split" in t for t in legend)
    assert any("random circuits" in t and "test split" in t for t in legend)
    assert any("minimal circuit" in t and "on train" in t for t in legend)


# Edges along shared columns of a 4-layer, 3-head model: the MLP column (m0 -> m1, m2, m3),
# head 1's column, which input and logits share (3 heads: the centre is column 1), q/k/v
# between the same two nodes, and a diagonal a0.h0 -> a1.h1 -> a2.h2.
COLUMNS = {
    "m0->m1": 1.0,
    "m0->m2": 0.9,
    "m0->m3": 0.8,
    "input->a0.h1<q>": 0.7,
    "input->a2.h1<q>": 0.6,
    "a0.h1->a2.h1<q>": 0.5,
    "a0.h1->a2.h1<k>": -0.5,
    "a0.h1->a2.h1<v>": 0.4,
    "a0.h0->a1.h1<q>": 0.3,
    "a0.h0->a2.h2<q>": -0.3,
    "a1.h1->logits": 0.25,
    "a3.h1->logits": 0.2,
}


def test_edges_sharing_a_column_do_not_run_along_each_other():
    """No drawn edge lies on another along more than a small part of its length (display
    pixels, from the drawn patches' paths), and every curve stays inside the axes."""
    from matplotlib.patches import PathPatch
    from overlap import patch_points, worst_overlap

    graph = _graph(ModelSpec(n_layers=4, n_heads=3, model_name="tiny"), COLUMNS)
    fig = circuit_figure(graph)
    fig.canvas.draw()
    (ax,) = fig.axes
    patches = [p for p in ax.patches if isinstance(p, PathPatch)]
    assert len(patches) == len(COLUMNS)
    curves = {p.get_gid(): patch_points(p) for p in patches}
    fraction, a, b = worst_overlap(curves, tol=3.0)
    assert fraction < 0.25, f"{a} runs along {b} for {fraction:.0%} of its length"
    box = ax.get_window_extent()
    for gid, points in curves.items():
        assert box.contains(*points.min(axis=0)) and box.contains(*points.max(axis=0)), gid


def test_every_roc_curve_stays_visible_when_curves_coincide(tmp_path):
    """Four methods with the same perfect ROC curve and one other: each method's colour shows
    in the PNG (none is hidden under another), the line styles differ, and the panel names the
    coinciding ones."""
    from circuits.groundtruth.roc_figure import coinciding, draw_roc_curves

    perfect = ([0.0, 0.0, 0.5, 1.0], [0.0, 1.0, 1.0, 1.0])
    curves = {m: perfect for m in ("eap", "clean-corrupted", "eap-ig-inputs", "exact")}
    curves["random"] = ([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
    assert coinciding(curves) == [["eap", "clean-corrupted", "eap-ig-inputs", "exact"]]
    png, svg = draw_roc_curves({"gt-x": curves}, tmp_path / "roc.png")
    root = _svg(svg)
    assert _ids(root, "roc-same-") == {"roc-same-gt-x"}
    image = mpimg.imread(png)[..., :3]
    styles = set()
    for method in curves:
        line = next(_element(root, f"roc-gt-x-{method}").iter(f"{SVG_NS}path"))  # then markers
        style = line.get("style", "")
        colour = re.search(r"stroke:\s*(#[0-9a-f]{6})", style).group(1)
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        shown = int((np.abs(image - rgb).max(axis=2) < 0.06).sum())
        assert shown > 150, f"{method}'s curve is hidden ({shown} pixels of its colour)"
        dashes = re.search(r"stroke-dasharray:\s*([^;]+)", style)
        styles.add(dashes.group(1).strip() if dashes else None)
    assert len(styles) == len(curves)


def test_route_offsets_grow_with_the_nodes_a_line_would_cross():
    from circuits.app.figures import control_point, nodes_crossed, route_offsets

    column = np.array([[0.0, 2.0 * k] for k in range(5)])  # m0..m4 of one column
    starts, ends = np.zeros((3, 2)), np.array([[0.0, 2.0], [0.0, 4.0], [0.0, 6.0]])
    assert nodes_crossed(starts, ends, column).tolist() == [0, 1, 2]
    assert route_offsets(starts, ends, [0, 0, 0], column, step=0.3).tolist() == pytest.approx(
        [0.0, 0.3, 0.6]
    )
    # the detour goes the port bend's way (here right: negative), or the given side
    bent = route_offsets(starts, ends, [-0.1] * 3, column, step=0.3)
    assert bent.tolist() == pytest.approx([-0.2, -0.4 - 0.3, -0.6 - 0.6])
    right = route_offsets(starts, ends, [0, 0, 0], column, step=0.3, sides=[-1, -1, -1])
    assert right.tolist() == pytest.approx([0.0, -0.3, -0.6])
    assert control_point((0.0, 0.0), (0.0, 4.0), 0.3) == pytest.approx((-0.3, 2.0))  # left
