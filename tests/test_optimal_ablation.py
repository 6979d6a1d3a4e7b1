"""Optimal ablation (``"optimal"``): per-node constants fit on the reference prompts are never
worse than the mean write there, node by node, as re-computed by replacing each node's write at
its source with hand-written hooks (float64); the faithfulness evaluator ablates with them;
fitting is deterministic given its seed."""

from __future__ import annotations

import pytest
import torch

from attribution import OptimalAblation, attribute
from attribution.ablations import as_ablation
from attribution.ablations.mean import mean_writes
from attribution.ablations.optimal import fit_constants
from attribution.metrics import get_metric
from circuits import load_model
from circuits.groundtruth import registry
from circuits.search.faithfulness import CircuitEvaluator
from graphs import Graph


@pytest.fixture(scope="module")
def fitted():
    truth = registry.build("gt-ioi")
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=torch.float64)
    graph = Graph.from_model(bridge)
    ablation = OptimalAblation(truth.data, metric=truth.metric, steps=30, seed=0)
    constants = ablation.means(bridge, graph, 8, torch.float64, torch.device("cpu"))
    return truth, bridge, graph, ablation, constants


def _source_hook(graph: Graph, node: int) -> tuple[str, int | None]:
    """The hook holding ``node``'s write and its head index (None: the whole tensor)."""
    spec, layout = graph.spec, graph.layout
    if node == 0:
        return "blocks.0.hook_resid_pre", None
    for layer in range(spec.n_layers):
        for head in range(spec.n_heads):
            if layout.head_index(layer, head) == node:
                return f"blocks.{layer}.attn.hook_result", head
        if layout.mlp_index(layer) == node:
            return f"blocks.{layer}.hook_mlp_out", None
    raise AssertionError(node)


def _brute_force_loss(truth, bridge, graph, node: int, constant: torch.Tensor) -> float:
    """mean (m(node's write := constant) − m(clean))², the write replaced where it is made."""
    metric = get_metric(truth.metric)
    data = truth.data
    hook, head = _source_hook(graph, node)

    def replace(t, hook):
        t = t.clone()
        if head is None:
            t[:] = constant
        else:
            t[:, :, head] = constant
        return t

    with torch.no_grad():
        clean = bridge(data.clean, attention_mask=data.attention_mask)
        clean = clean[torch.arange(len(data)), data.positions]
        with bridge.hooks(fwd_hooks=[(hook, replace)]):
            out = bridge(data.clean, attention_mask=data.attention_mask)
        out = out[torch.arange(len(data)), data.positions]
    m_clean, m = metric(clean, clean, data), metric(out, clean, data)
    return float(((m - m_clean) ** 2).mean())


def test_optimal_constants_are_never_worse_than_the_mean_node_by_node(fitted):
    truth, bridge, graph, ablation, constants = fitted
    means = mean_writes(bridge, graph, truth.data, 8, torch.float64)
    mean_total = optimal_total = 0.0
    for node in range(graph.n_forward):
        mean_loss = _brute_force_loss(truth, bridge, graph, node, means[node])
        optimal_loss = _brute_force_loss(truth, bridge, graph, node, constants[node])
        assert optimal_loss <= mean_loss + 1e-9, node
        # the fit's own bookkeeping matches the independent re-computation
        assert ablation.losses[node][0] == pytest.approx(mean_loss, rel=1e-9, abs=1e-12)
        assert ablation.losses[node][1] == pytest.approx(optimal_loss, rel=1e-9, abs=1e-12)
        mean_total += mean_loss
        optimal_total += optimal_loss
    assert mean_total > 1.0  # the nodes matter, so there is something to fit
    assert optimal_total < 0.5 * mean_total


def test_evaluator_ablates_with_the_fitted_constants(fitted):
    truth, bridge, graph, ablation, constants = fitted
    node = max(ablation.losses, key=lambda u: ablation.losses[u][0])
    evaluator = CircuitEvaluator(bridge, graph, truth.data, truth.metric, ablation=ablation)
    keep = graph.real_edges.clone()
    keep[node] = False  # every edge leaving the node ablated: the node is ablated
    (m,) = evaluator.metrics([keep])
    loss = float(((m - evaluator.m_full) ** 2).mean())
    assert loss == pytest.approx(_brute_force_loss(truth, bridge, graph, node, constants[node]))
    assert loss < ablation.losses[node][0]  # strictly better than the mean for this node


def test_optimal_by_name_in_attribute_and_determinism():
    truth = registry.build("gt-prev-token")
    bridge = load_model(truth.model, tokenizer=truth.tokenizer, dtype=torch.float64)
    graph = Graph.from_model(bridge)

    def fit(seed):
        ablation = OptimalAblation(
            truth.data, metric=truth.metric, steps=4, batch_size=4, seed=seed
        )
        return ablation.means(bridge, graph, 8, torch.float64, torch.device("cpu"))

    assert torch.equal(fit(1), fit(1))
    assert not torch.equal(fit(1), fit(2))  # the seed draws the minibatches
    result = attribute(
        bridge, graph, truth.data, truth.metric, method="exact", ablation="optimal",
        mean_data=truth.data, quiet=True,
    )  # fmt: skip
    assert result.settings["ablation"] == "optimal"
    assert result.scores.abs().max() > 0.1


def test_optimal_needs_reference_data():
    with pytest.raises(ValueError, match="ablation='optimal' needs mean_data"):
        as_ablation("optimal")


def test_fitting_many_nodes_per_pass_equals_one_node_per_pass(fitted):
    """With one minibatch (so both draw the same ones) the batched fit (GPUs' default) gives
    the node-by-node fit's constants: the losses are separate and Adam is per coordinate."""
    truth, bridge, graph, _, _ = fitted
    metric = get_metric(truth.metric)
    kwargs = dict(steps=5, lr=0.05, batch_size=16, seed=0, dtype=torch.float64)
    one, one_losses = fit_constants(bridge, graph, truth.data, metric, max_rows=16, **kwargs)
    many, many_losses = fit_constants(bridge, graph, truth.data, metric, max_rows=1000, **kwargs)
    torch.testing.assert_close(many, one, rtol=1e-9, atol=1e-9)
    for node, (mean_loss, loss) in one_losses.items():
        assert many_losses[node] == pytest.approx((mean_loss, loss), rel=1e-9, abs=1e-12)
    assert any(loss < mean_loss for mean_loss, loss in one_losses.values())
