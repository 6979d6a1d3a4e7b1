"""Optimal ablation (Li & Janson 2024, "Optimal ablation for interpretability"): each node's
write is replaced by the constant that does the least harm.

For every upstream node ``u`` a vector ``c_u`` (``[d_model]``) is fit on reference prompts to
minimise ``L_u(c) = mean_i (m_i(u ← c) − m_i(clean))²``: the squared change of the task metric
when ``u``'s write is replaced by ``c`` for every node reading it (all edges leaving ``u``
ablated at once, through the evaluator's own hooks, :mod:`attribution.edge_ablation`). The
paper measures the loss on the model's output distribution; the task metric is used here so
that the constant keeps what the circuit is judged by (for ``kl`` the loss is KL²).

The fit starts from the mean write (the mean ablation), takes ``steps`` Adam steps per node on
minibatches drawn with ``seed``, and keeps, per node, whichever of the mean and the fitted
constant has the lower loss on the reference data: the result is never worse than the mean
ablation there. Cost: ``steps`` forward and backward passes of one batch per upstream node,
plus two full passes over the reference data per node to compare losses; fitted once per model
and cached on the ablation object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from attribution.ablation import Ablation, mean_writes
from attribution.data import PromptPairs
from attribution.edge_ablation import soft_ablation_hooks
from attribution.metrics import Metric, get_metric
from attribution.passes import at_positions, collect_writes, frozen_parameters
from graphs import Graph


@dataclass(frozen=True, repr=False)
class OptimalAblation(Ablation):
    """Per-node constants fit on ``reference`` to minimise the metric's squared change (see
    the module docstring); ``losses`` (after a fit) maps each node's forward index to
    ``(loss with the mean, loss with the chosen constant)``."""

    reference: PromptPairs
    metric: str | Metric = "logit_diff"
    steps: int = 50
    lr: float = 0.05
    batch_size: int = 8
    seed: int = 0
    quiet: bool = True
    name: ClassVar[str] = "optimal"
    _cache: dict = field(default_factory=dict, init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        get_metric(self.metric)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(
                f"optimal ablation steps must be a whole number >= 0, got {self.steps}"
            )
        if not self.lr > 0:
            raise ValueError(f"optimal ablation lr must be > 0, got {self.lr}")

    @property
    def reference_data(self) -> PromptPairs:
        return self.reference

    @property
    def losses(self) -> dict[int, tuple[float, float]]:
        return self._cache.get("losses", {})

    def means(self, model, graph, batch_size, dtype, device):
        key = (id(model), graph.spec, dtype, str(device))
        if self._cache.get("key") != key:
            constants, losses = fit_constants(
                model, graph, self.reference.to(device), get_metric(self.metric),
                steps=self.steps, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                dtype=dtype, quiet=self.quiet,
            )  # fmt: skip
            self._cache.update(key=key, constants=constants, losses=losses)
        return self._cache["constants"]

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        ref = means if nodes is None else means[nodes.start : nodes.stop]
        return ref.expand_as(clean_writes).clone(), None

    def __repr__(self) -> str:
        return f"OptimalAblation({len(self.reference)} prompts, metric={self.metric!r})"


def node_loss(
    model,
    graph: Graph,
    batch: PromptPairs,
    metric: Metric,
    clean_logits: torch.Tensor,
    m_clean: torch.Tensor,
    node: int,
    constant: torch.Tensor,
) -> torch.Tensor:
    """Per-example ``(m(u ← constant) − m(clean))²`` ``[n]`` for node ``node`` (differentiable
    in ``constant``, ``[d_model]``)."""
    n, pos = batch.clean.shape
    ablated = constant.expand(n, pos, graph.n_forward, constant.shape[-1])
    amount = torch.zeros(graph.real_edges.shape, dtype=constant.dtype, device=constant.device)
    amount[node] = 1.0
    with model.hooks(fwd_hooks=soft_ablation_hooks(model, graph, ablated, amount)):
        logits = model(batch.clean, attention_mask=batch.attention_mask)
    m = metric(at_positions(logits, batch.positions), clean_logits, batch)
    return (m - m_clean) ** 2


def fit_constants(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: Metric,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    dtype: torch.dtype,
    quiet: bool = True,
) -> tuple[torch.Tensor, dict[int, tuple[float, float]]]:
    """The constants ``[n_forward, d_model]`` and each node's ``(mean loss, chosen loss)``."""
    means = mean_writes(model, graph, data, batch_size, dtype)
    clean: list[tuple[PromptPairs, torch.Tensor, torch.Tensor]] = []
    for _, batch in data.batches(batch_size):
        _, logits = collect_writes(model, graph, batch.clean, batch.attention_mask, dtype)
        clean_logits = at_positions(logits, batch.positions)
        clean.append((batch, clean_logits, metric(clean_logits, clean_logits, batch).detach()))
    generator = torch.Generator().manual_seed(seed)
    # nodes with no edge leaving them (none in practice) keep the mean
    nodes = [u for u in range(graph.n_forward) if bool(graph.real_edges[u].any())]

    def full_loss(node: int, constant: torch.Tensor) -> float:
        total = 0.0
        with torch.no_grad():
            for batch, clean_logits, m_clean in clean:
                args = (model, graph, batch, metric, clean_logits, m_clean)
                total += float(node_loss(*args, node, constant).sum())
        return total / len(data)

    constants = means.clone()
    losses: dict[int, tuple[float, float]] = {}
    with frozen_parameters(model):
        for node in tqdm(nodes, desc="optimal ablation", unit="node", disable=quiet):
            c = means[node].detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([c], lr=lr)
            for _ in range(steps):
                batch, clean_logits, m_clean = clean[
                    int(torch.randint(len(clean), (1,), generator=generator))
                ]
                loss = node_loss(model, graph, batch, metric, clean_logits, m_clean, node, c)
                optimizer.zero_grad()
                loss.mean().backward()
                optimizer.step()
            mean_loss, fit_loss = full_loss(node, means[node]), full_loss(node, c.detach())
            if fit_loss < mean_loss:
                constants[node] = c.detach()
            losses[node] = (mean_loss, min(mean_loss, fit_loss))
    return constants, losses


__all__ = ["OptimalAblation", "fit_constants", "node_loss"]
