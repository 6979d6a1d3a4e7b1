"""The circuit figure's shapes: one drawing code path, the graph's shape a parameter, so that a
new shape of graph is one class and one SHAPES line (circuits.app.figures.shapes)."""

from __future__ import annotations

import pytest
import torch

from circuits.app.figures import (
    SHAPES,
    FigureError,
    LayerGrid,
    circuit_drawing,
    circuit_figure,
    position_circuit_drawing,
)
from graphs import Circuit, Graph, GraphMismatchError, ModelSpec

CIRCUIT = {"input->a1.h0<q>": 0.5, "a0.h1->a1.h0<k>": -2.0, "a0.h2->m0": 4.0, "m1->logits": 3.0}


def _graph() -> Graph:
    graph = Graph(ModelSpec(n_layers=2, n_heads=4, model_name="tiny"))
    graph.set_scores(torch.zeros(graph.n_forward, graph.n_backward))
    mask = torch.zeros_like(graph.real_edges)
    for name, score in CIRCUIT.items():
        edge = graph.edge(name)
        edge.score = score
        mask[edge.index] = True
    graph.set_in_graph(mask)
    return graph


class Mirrored(LayerGrid):
    """The layer grid seen in a mirror: head h at x = H - h, the MLPs on the left."""

    name = "mirrored"
    edge_alpha = 0.5

    def place(self, node, column, n_layers, n_heads):
        x, y = super().place(node, column, n_layers, n_heads)
        return n_heads - x, y


def test_a_shape_registered_from_outside_is_drawn_by_the_same_code(monkeypatch):
    graph = _graph()
    monkeypatch.setitem(SHAPES, "mirrored", Mirrored())
    plain = circuit_drawing(graph)
    mirrored = circuit_drawing(graph, shape="mirrored")
    assert mirrored.shape == "mirrored" and set(mirrored.nodes) == set(plain.nodes)
    for name, node in plain.nodes.items():
        assert (mirrored.nodes[name].x, mirrored.nodes[name].y) == (4 - node.x, node.y)
    assert [e.gid for e in mirrored.edges] == [e.gid for e in plain.edges]
    for edge in mirrored.edges:  # every edge's ends moved with its nodes
        assert edge.start == (mirrored.nodes[edge.upstream].x, mirrored.nodes[edge.upstream].y)
    (ax,) = circuit_figure(graph, shape="mirrored").axes
    alphas = {p.get_gid(): p.get_alpha() for p in ax.patches}
    assert alphas == {e.gid: 0.5 for e in mirrored.edges}  # drawn with the shape's style


def test_unknown_shape_and_supernodes_off_the_layer_grid_are_refused():
    graph = _graph()
    with pytest.raises(FigureError, match="unknown circuit figure shape 'feature'"):
        circuit_drawing(graph, shape="feature")
    with pytest.raises(FigureError, match="supernodes"):
        circuit_drawing(graph, shape="spans", supernodes=[("g", ["m0"])])


def test_the_layer_grid_draws_a_given_circuit_as_the_graphs_own():
    graph = _graph()
    own = circuit_drawing(graph)
    given = circuit_drawing(graph, Circuit(graph.in_graph.clone(), torch.ones(1, dtype=bool)))
    assert given == own
    half = graph.in_graph.clone()
    half[graph.edge("m1->logits").index] = False
    fewer = circuit_drawing(graph, Circuit(half, torch.ones(1, dtype=bool)))
    assert {e.name for e in fewer.edges} == set(CIRCUIT) - {"m1->logits"}
    with pytest.raises(GraphMismatchError, match="upstream, port"):
        circuit_drawing(graph, Circuit(half[:3], torch.ones(1, dtype=bool)))


def test_the_position_drawing_is_the_spans_shape_of_the_circuit_drawing():
    graph = _graph()
    spans = ("a", "b")
    scores = torch.zeros(len(spans), graph.n_forward, graph.n_backward)
    scores[1] = graph.scores
    graph.set_position_scores(spans, scores)
    drawing = position_circuit_drawing(graph, Circuit(graph.in_graph, torch.ones(1, dtype=bool)))
    assert drawing.shape == "spans" and drawing.spans == spans
    assert drawing == circuit_drawing(
        graph, Circuit(graph.in_graph, torch.ones(1, dtype=bool)), shape="spans", max_edges=200
    )
    # the agnostic circuit at both spans: every edge twice, keyed (name, span)
    assert sorted((e.span, e.name) for e in drawing.edges) == sorted(
        (s, name) for s in (0, 1) for name in CIRCUIT
    )
    assert drawing.dots is drawing.nodes and ("m0", 1) in drawing.nodes
    # the same graph on the layer grid: one column, no spans, no attention arcs
    plain = circuit_drawing(graph)
    assert plain.spans == () and plain.links == [] and {e.span for e in plain.edges} == {None}
