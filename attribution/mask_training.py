"""Training a learned edge mask (Edge Pruning, Bhaskar et al. 2024) with hard-concrete gates.

Each real edge ``u -> v`` has a gate ``z_uv`` in [0, 1]; the masked model is the faithfulness
evaluator's patched run (:func:`attribution.edge_ablation.soft_ablation_hooks`) with ablation
amount ``1 − z``: port ``v`` reads ``z·a_u(this run) + (1 − z)·a_u(ablated)``. At ``z = 1`` it
is the full model and at ``z = 0`` the evaluator's empty circuit.

Gates are hard-concrete (Louizos et al. 2018, "Learning sparse neural networks through L0
regularization"): ``s = σ((log u − log(1 − u) + log α) / β)``, ``z = clamp(s·(r − l) + l, 0, 1)``
with ``u ~ U(0, 1)``, ``β = 2/3``, ``l = −0.1``, ``r = 1.1``; the expected number of open gates
``E[L0] = Σ σ(log α − β log(−l / r))`` is differentiable.

Loss per step, on one batch: ``mean_i ((m_i(masked) − m_i(clean)) / (m̄(M) − m̄(∅)))²`` (each
example's ``(1 − f)²`` in faithfulness units, so it does not depend on the metric's scale) plus
``λ · relu(E[L0] − K_t) / n_edges``, where the allowed count ``K_t`` ramps linearly from all
edges down to the target ``K`` over the first ``ramp`` fraction of the steps (``K = 0`` when
no target is given: a plain L0 penalty whose weight effectively ramps up). Model parameters stay
frozen; only ``log α`` is trained (Adam).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from attribution.data import PromptPairs
from attribution.edge_ablation import soft_ablation_hooks
from attribution.metrics import Metric
from attribution.passes import check_finite, unembed_at
from graphs import Graph
from graphs.errors import CircuitDiscoveryError

BETA, LEFT, RIGHT = 2.0 / 3.0, -0.1, 1.1


class MaskTrainingError(CircuitDiscoveryError, ValueError):
    """A learned mask cannot be trained as asked (bad target, or nothing to learn from)."""


@dataclass(frozen=True)
class MaskBatch:
    """One batch's fixed inputs: its data, the clean logits ``[n, vocab]``, the clean metric
    ``[n]`` and the ablated writes ``[n, pos, n_forward, d_model]``."""

    data: PromptPairs
    clean_logits: torch.Tensor
    m_clean: torch.Tensor
    ablated: torch.Tensor


def keep_probability(log_alpha: torch.Tensor) -> torch.Tensor:
    """``P(z > 0)`` per gate: the expected L0 norm's terms, in (0, 1); higher = keep."""
    return torch.sigmoid(log_alpha - BETA * math.log(-LEFT / RIGHT))


def sample_gates(log_alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One hard-concrete sample of every gate (``[n_forward, n_backward]``, in [0, 1])."""
    u = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype)
    u = u.clamp(1e-6, 1 - 1e-6).to(log_alpha.device)
    s = torch.sigmoid((u.log() - (-u).log1p() + log_alpha) / BETA)
    return (s * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def deterministic_gates(log_alpha: torch.Tensor) -> torch.Tensor:
    """The test-time gates: ``clamp(σ(log α)·(r − l) + l, 0, 1)``."""
    return (torch.sigmoid(log_alpha) * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def masked_metric(
    model, graph: Graph, batch: MaskBatch, metric: Metric, gates: torch.Tensor
) -> torch.Tensor:
    """Per-example metric ``[n]`` of the masked model with gates ``[n_forward, n_backward]``
    (differentiable in ``gates``)."""
    hooks = soft_ablation_hooks(model, graph, batch.ablated, 1.0 - gates)
    hooks.append(unembed_at(batch.data.positions))
    with model.hooks(fwd_hooks=hooks):
        logits = model(batch.data.clean, attention_mask=batch.data.attention_mask)
    return metric(logits[:, 0], batch.clean_logits, batch.data)


def check_target(graph: Graph, target_edges: int | None) -> None:
    """Raise MaskTrainingError for a target edge count outside ``1 .. graph.n_edges``."""
    if target_edges is None:
        return
    if isinstance(target_edges, bool) or not isinstance(target_edges, int):
        raise MaskTrainingError(f"target_edges must be a whole number, got {target_edges!r}")
    if not 1 <= target_edges <= graph.n_edges:
        raise MaskTrainingError(
            f"target_edges must be between 1 and the graph's {graph.n_edges} edges, got "
            f"{target_edges}; pass a count in that range, or None for a plain L0 penalty"
        )


def train_mask(
    model,
    graph: Graph,
    batches: list[MaskBatch],
    metric: Metric,
    init_log_alpha: torch.Tensor,
    *,
    train_steps: int,
    lr: float,
    penalty: float,
    target_edges: int | None,
    ramp: float,
    seed: int,
    quiet: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Train ``log α`` ``[n_forward, n_backward]`` from ``init_log_alpha``, cycling through
    ``batches`` in order, one batch per step; returns the trained ``log α`` (detached) and
    diagnostics (final loss terms, expected edge count, normaliser)."""
    dtype = batches[0].ablated.dtype
    real = graph.real_edges.to(init_log_alpha.device)
    n_edges = graph.n_edges
    with torch.no_grad():
        m_full = torch.cat([b.m_clean for b in batches]).double().mean()
        zero = torch.zeros(real.shape, dtype=dtype, device=real.device)
        m_empty = torch.cat([masked_metric(model, graph, b, metric, zero) for b in batches])
        m_empty = m_empty.double().mean()
    scale = float(m_full - m_empty)
    if abs(scale) <= 1e-12 * max(1.0, abs(float(m_full))):
        raise MaskTrainingError(
            f"the full model and the empty circuit score the same (m(M) = {float(m_full):.6g}, "
            f"m(∅) = {float(m_empty):.6g}), so no mask keeps anything; choose data whose clean "
            "and corrupted prompts differ in what the metric measures"
        )
    log_alpha = init_log_alpha.detach().clone().to(dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([log_alpha], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    target = 0 if target_edges is None else target_edges
    ramp_steps = max(1, round(ramp * train_steps))
    fidelity = sparsity = expected = torch.zeros(())
    for step in tqdm(range(train_steps), desc="mask", unit="step", disable=quiet):
        batch = batches[step % len(batches)]
        gates = sample_gates(log_alpha, generator) * real
        m = masked_metric(model, graph, batch, metric, gates)
        check_finite(
            m.detach(), torch.arange(len(m)) + step % len(batches) * len(batches[0].m_clean)
        )
        fidelity = (((m - batch.m_clean) / scale) ** 2).mean()
        expected = (keep_probability(log_alpha) * real).sum()
        allowed = n_edges + (target - n_edges) * min(1.0, (step + 1) / ramp_steps)
        sparsity = torch.relu(expected - allowed) / n_edges
        loss = fidelity + penalty * sparsity
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    diagnostics = {
        "mask_fidelity_loss": float(fidelity.detach()),
        "mask_sparsity_loss": float(sparsity.detach()),
        "mask_expected_edges": float(expected.detach()),
        "mask_open_gates": float((deterministic_gates(log_alpha.detach()) > 0)[real].sum()),
        "mask_metric_scale": scale,
    }
    return log_alpha.detach(), diagnostics
