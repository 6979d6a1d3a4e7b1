"""The position-aware circuit figure: one column per span, the expected edges, dots and
attention arcs for a known circuit, and files that decode to a drawn (not blank) image."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, PathPatch

from circuits.app.figures import (
    NEGATIVE,
    POSITIVE,
    FigureError,
    draw_position_circuit,
    position_circuit_drawing,
    position_circuit_figure,
)
from circuits.search import position_circuit
from graphs import Circuit, Graph, GraphMismatchError, ModelSpec
from graphs.positions import PositionError

MHA = ModelSpec(n_layers=3, n_heads=4, model_name="tiny-mha")
GQA = ModelSpec(n_layers=2, n_heads=4, n_kv_heads=2, model_name="tiny-gqa")
SPANS = ("prefix", "IO", "S1+1", "end")
# (span, edge, score): a head reading keys and values at span 1 and used at span 3
CIRCUIT = [
    (1, "input->a1.h2<k>", 0.5),
    (1, "a0.h0->a1.h2<v>", -2.0),
    (3, "input->a1.h2<q>", 0.25),
    (3, "m0->a1.h2<q>", -0.1),
    (3, "a1.h2->logits", 1.0),
]
DOTS = {"input@1", "a0.h0@1", "a1.h2@1", "input@3", "m0@3", "a1.h2@3", "logits@3"}


def _graph(spec: ModelSpec, circuit: list[tuple[int, str, float]]) -> tuple[Graph, Circuit]:
    graph = Graph(spec)
    shape = (len(SPANS), graph.n_forward, graph.n_backward)
    gen = torch.Generator().manual_seed(0)
    scores = 1e-3 * torch.randn(shape, generator=gen)  # edges outside the circuit score too
    mask = torch.zeros(shape, dtype=torch.bool)
    for s, name, score in circuit:
        up, port = graph.layout.edge_index(name)
        scores[s, up, port], mask[s, up, port] = score, True
    graph.set_position_scores(SPANS, scores)
    return graph, position_circuit(graph, mask)


def _artists(fig, kind, prefix):
    (ax,) = fig.axes
    found = [*ax.patches, *ax.lines]
    return [a for a in found if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def test_known_circuit_draws_its_edges_dots_and_one_attention_arc():
    graph, circuit = _graph(MHA, CIRCUIT)
    drawing = position_circuit_drawing(graph, circuit)
    assert {f"{d.name}@{d.span}" for d in drawing.dots.values()} == DOTS
    assert [(e.span, e.name) for e in drawing.edges] == sorted(
        [(s, n) for s, n, _ in CIRCUIT],
        key=lambda x: (x[0], *graph.layout.edge_index(x[1])),
    )
    by_name = {e.name: e for e in drawing.edges}
    v = by_name["a0.h0->a1.h2<v>"]
    assert v.color == NEGATIVE and v.linewidth == pytest.approx(4.0)  # the largest |score|
    assert by_name["a1.h2->logits"].color == POSITIVE
    assert by_name["a1.h2->logits"].linewidth == pytest.approx(0.5 + 3.5 * 1.0 / 2.0)
    # a key edge stays inside its span's column; the move to the query span is the arc
    for e in drawing.edges:
        assert all(e.span - 0.5 < x < e.span + 0.5 for x in (e.start[0], e.end[0]))
    (link,) = drawing.links
    assert (link.head, link.key_span, link.query_span) == ("a1.h2", 1, 3)
    heads = drawing.dots["a1.h2", 1], drawing.dots["a1.h2", 3]
    assert (link.start, link.end) == ((heads[0].x, heads[0].y), (heads[1].x, heads[1].y))
    assert heads[0].y == heads[1].y == 2.0  # layer 1's heads row, input below, logits on top
    assert drawing.dots["input", 1].y < heads[0].y < drawing.dots["logits", 3].y

    fig = position_circuit_figure(graph, circuit)
    assert len(_artists(fig, PathPatch, "edge-")) == len(CIRCUIT)
    assert len(_artists(fig, Line2D, "node-")) == len(DOTS)
    assert len(_artists(fig, FancyArrowPatch, "attention-")) == 1
    assert not _artists(fig, FancyArrowPatch, "edge-")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == list(SPANS)
    assert list(ax.get_xticks()) == [0, 1, 2, 3]
    # the graph's own circuit is drawn by default
    graph.set_circuit(circuit)
    again = position_circuit_drawing(graph)
    assert [e.gid for e in again.edges] == [e.gid for e in drawing.edges]


def test_max_edges_keeps_the_largest_and_says_so():
    graph, circuit = _graph(MHA, CIRCUIT)
    drawing = position_circuit_drawing(graph, circuit, max_edges=2)
    assert {e.name for e in drawing.edges} == {"a0.h0->a1.h2<v>", "a1.h2->logits"}
    assert drawing.truncated and "top 2 of 5" in drawing.title
    # the value read at span 1 and the output at span 3 are both drawn: the arc stays
    assert [(x.key_span, x.query_span) for x in drawing.links] == [(1, 3)]
    alone = position_circuit_drawing(graph, circuit, max_edges=1)
    assert [e.name for e in alone.edges] == ["a0.h0->a1.h2<v>"] and alone.links == []
    assert len(position_circuit_drawing(graph, circuit, max_edges=None).edges) == len(CIRCUIT)


def test_a_plain_circuit_is_drawn_at_every_span_and_shared_ports_get_a_diamond():
    graph, _ = _graph(GQA, [])
    plain = graph.circuit_of(torch.zeros_like(graph.real_edges))
    plain.edges[graph.layout.edge_index("input->a1.kv0<k>")] = True
    drawing = position_circuit_drawing(graph, plain)
    assert len(drawing.edges) == len(SPANS)
    assert sorted(drawing.ports) == [("a1.kv0<k>", s) for s in range(len(SPANS))]
    # both query heads of the group are drawn, joined to the diamond, not as edges
    assert {(d.name, d.span) for d in drawing.dots.values()} == {
        (n, s) for n in ("input", "a1.h0", "a1.h1") for s in range(len(SPANS))
    }
    fig = position_circuit_figure(graph, plain)
    assert len(_artists(fig, PathPatch, "edge-")) == len(SPANS)
    assert len(_artists(fig, Line2D, "port-")) == len(SPANS) * 3  # diamond + 2 reader lines


def test_files_render_and_are_not_blank(tmp_path):
    graph, circuit = _graph(MHA, CIRCUIT)
    path = draw_position_circuit(graph, tmp_path / "sub" / "positions", circuit)
    assert path == tmp_path / "sub" / "positions.png"
    image = imread(path)[..., :3]
    fig = position_circuit_figure(graph, circuit)
    w, h = fig.get_size_inches() * 150
    assert image.shape[:2] == (round(h), round(w))

    def near(colour: str) -> int:
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        return int((np.abs(image - rgb).max(axis=2) < 0.08).sum())

    assert (image < 0.9).any(axis=2).mean() > 0.01  # something is drawn
    assert near(POSITIVE) > 30 and near(NEGATIVE) > 30  # edges of both signs
    svg = draw_position_circuit(graph, tmp_path / "p.svg", circuit, max_edges=4)
    text = svg.read_text()
    assert len(re.findall(r'<g id="edge-s\d-', text)) == 4
    assert len(re.findall(r'<g id="node-s\d-', text)) == len(DOTS) - 1  # m0@3 not drawn
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_input_is_refused():
    graph, circuit = _graph(MHA, CIRCUIT)
    with pytest.raises(PositionError, match="no position axis"):
        position_circuit_figure(Graph(MHA))
    wrong = Circuit(circuit.edges[:2], circuit.nodes)
    with pytest.raises(GraphMismatchError, match=r"\(2, 16, 40\)"):
        position_circuit_figure(graph, wrong)
    with pytest.raises(FigureError, match="suffix"):
        draw_position_circuit(graph, "figure.jpg", circuit)
    with pytest.raises(FigureError, match="max_edges"):
        position_circuit_figure(graph, circuit, max_edges=-1)


def _busy_end_column() -> tuple[Graph, Circuit]:
    """8 heads a layer; the `end` span holds the MLP chain m0 -> m1, m2, m3 (one lane), edges
    along the heads' columns (a0.hX -> a2.hX crosses a1.hX), and every head of layer 2 into
    the logits."""
    spec = ModelSpec(n_layers=4, n_heads=8, model_name="tiny-wide")
    end = SPANS.index("end")
    chain = ["m0->m1", "m0->m2", "m0->m3", "input->m0", "input->m2", "m3->logits"]
    heads = [f"input->a0.h{h}<q>" for h in (0, 3, 7)]
    heads += [f"a0.h{h}->a2.h{h}<q>" for h in range(8)]
    heads += [f"a2.h{h}->logits" for h in range(8)]
    edges = chain + heads
    return _graph(spec, [(end, name, 1.0 - 0.01 * i) for i, name in enumerate(edges)])


def test_the_end_column_is_readable():
    """A busy span: no two labels of its dots overlap, and no edge runs along another for more
    than a small part of its length (display pixels, from the drawn patches' paths)."""
    from overlap import patch_points, worst_overlap

    graph, circuit = _busy_end_column()
    fig = position_circuit_figure(graph, circuit)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    labels = [t for t in ax.texts if (t.get_gid() or "").startswith("label-node-s3-")]
    assert len(labels) == len(position_circuit_drawing(graph, circuit).dots)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):
        for j in range(i):
            assert not a.overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    patches = _artists(fig, PathPatch, "edge-")
    fraction, a, b = worst_overlap({p.get_gid(): patch_points(p) for p in patches}, tol=3.0)
    assert fraction < 0.25, f"{a} runs along {b} for {fraction:.0%} of its length"
