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

from attribution.ablations.base import Ablation, AblationError
from attribution.ablations.mean import mean_writes
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
    description: ClassVar[str] = (
        "a per-node constant fit on the train prompts to change the metric least"
    )
    needs_reference: ClassVar[bool] = True
    fits: ClassVar[bool] = True
    _cache: dict = field(default_factory=dict, init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        get_metric(self.metric)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise AblationError(
                f"optimal ablation steps must be a whole number >= 0, got {self.steps}"
            )
        if not self.lr > 0:
            raise AblationError(f"optimal ablation lr must be > 0, got {self.lr}")

    @classmethod
    def build(cls, reference, *, metric="logit_diff", seed=0, quiet=True):
        return cls(reference, metric=metric, seed=seed, quiet=quiet)

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
                # one node per pass on CPUs, where rows cost alike however they are grouped
                max_rows=256 if torch.device(device).type == "cuda" else self.batch_size,
            )  # fmt: skip
            self._cache.update(key=key, constants=constants, losses=losses)
        return self._cache["constants"]

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        ref = means if nodes is None else means[nodes.start : nodes.stop]
        return ref.expand_as(clean_writes).clone(), None

    def __repr__(self) -> str:
        return f"OptimalAblation({len(self.reference)} prompts, metric={self.metric!r})"


def node_losses(
    model,
    graph: Graph,
    batch: PromptPairs,
    metric: Metric,
    clean_logits: torch.Tensor,
    m_clean: torch.Tensor,
    nodes: list[int],
    constants: torch.Tensor,
) -> torch.Tensor:
    """``(m(u ← c_u) − m(clean))²`` ``[len(nodes), n]`` for each node ``u`` of ``nodes`` with its
    constant ``constants[j]`` (``[len(nodes), d_model]``, differentiable): one pass, the batch
    repeated once per node, each copy ablating its own node."""
    k, (n, pos) = len(nodes), batch.clean.shape
    d, device = constants.shape[-1], constants.device
    rows = batch.select(torch.arange(n).repeat(k))
    nodes_t = torch.tensor(nodes, device=device)
    # built out of place from the constants, so their gradient reaches the ablated writes
    onehot = torch.nn.functional.one_hot(nodes_t, graph.n_forward).to(constants.dtype)  # [k, F]
    ablated = onehot[:, None, None, :, None] * constants[:, None, None, None, :]
    ablated = ablated.expand(k, n, pos, graph.n_forward, d).reshape(k * n, pos, graph.n_forward, d)
    amount = torch.zeros(k, *graph.real_edges.shape, dtype=constants.dtype, device=device)
    amount[torch.arange(k, device=device), nodes_t] = 1.0
    amount = amount.repeat_interleave(n, dim=0)  # row block j ablates node j only
    with model.hooks(fwd_hooks=soft_ablation_hooks(model, graph, ablated, amount)):
        logits = model(rows.clean, attention_mask=rows.attention_mask)
    m = metric(at_positions(logits, rows.positions), clean_logits.repeat(k, 1), rows)
    return ((m - m_clean.repeat(k)) ** 2).view(k, n)


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
    max_rows: int = 256,
) -> tuple[torch.Tensor, dict[int, tuple[float, float]]]:
    """The constants ``[n_forward, d_model]`` and each node's ``(mean loss, chosen loss)``.

    Nodes are fit ``max_rows // batch_size`` at a time in one pass (the batch repeated per
    node). Their losses are separate and Adam is per coordinate, so this gives what fitting
    each node alone on the same minibatches would."""
    means = mean_writes(model, graph, data, batch_size, dtype)
    clean: list[tuple[PromptPairs, torch.Tensor, torch.Tensor]] = []
    for _, batch in data.batches(batch_size):
        _, logits = collect_writes(model, graph, batch.clean, batch.attention_mask, dtype)
        clean_logits = at_positions(logits, batch.positions)
        clean.append((batch, clean_logits, metric(clean_logits, clean_logits, batch).detach()))
    generator = torch.Generator().manual_seed(seed)
    # nodes with no edge leaving them (none in practice) keep the mean
    nodes = [u for u in range(graph.n_forward) if bool(graph.real_edges[u].any())]
    per_pass = max(1, max_rows // batch_size)
    chunks = [nodes[i : i + per_pass] for i in range(0, len(nodes), per_pass)]

    def full_loss(chunk: list[int], constants: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(chunk), dtype=torch.float64)
        with torch.no_grad():
            for batch, clean_logits, m_clean in clean:
                args = (model, graph, batch, metric, clean_logits, m_clean)
                total += node_losses(*args, chunk, constants).double().sum(1).cpu()
        return total / len(data)

    constants = means.clone()
    losses: dict[int, tuple[float, float]] = {}
    progress = tqdm(
        total=len(nodes) * steps, desc="optimal ablation", unit="node-step", disable=quiet
    )
    with frozen_parameters(model):
        for chunk in chunks:
            c = means[chunk].detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([c], lr=lr)
            for _ in range(steps):
                pick = int(torch.randint(len(clean), (1,), generator=generator))
                batch, clean_logits, m_clean = clean[pick]
                loss = node_losses(model, graph, batch, metric, clean_logits, m_clean, chunk, c)
                optimizer.zero_grad()
                loss.mean(1).sum().backward()
                optimizer.step()
                progress.update(len(chunk))
            mean_loss, fit_loss = full_loss(chunk, means[chunk]), full_loss(chunk, c.detach())
            for j, node in enumerate(chunk):
                if fit_loss[j] < mean_loss[j]:
                    constants[node] = c.detach()[j]
                losses[node] = (float(mean_loss[j]), float(min(mean_loss[j], fit_loss[j])))
    progress.close()
    return constants, losses


__all__ = ["OptimalAblation", "fit_constants", "node_losses"]
