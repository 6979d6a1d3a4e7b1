"""EAP (edge attribution patching): ``score(u -> v) = Δ_u · ∂m/∂x_v`` at the clean run."""

from __future__ import annotations

import torch

from attribution.data import PromptPairs
from attribution.methods.base import BatchRuns, Job
from attribution.methods.gradient import GradientMethod
from attribution.passes import metric_backward


class EAP(GradientMethod):
    """``Δ_u · ∂m/∂x_v`` with the gradient taken on the clean run (Nanda 2023; Syed et al.)."""

    name = "eap"
    description = "Δ·gradient at the clean run"

    def port_gradients(self, job: Job, batch: PromptPairs, runs: BatchRuns, grads) -> None:
        backward_at(job, batch, runs, grads, [(batch.clean, 1.0)])


def backward_at(job: Job, batch: PromptPairs, runs: BatchRuns, grads, ends) -> None:
    """Add ``Σ_(tokens, w) w · ∂m/∂x_v`` at the runs on ``tokens`` into ``grads``."""
    n = len(batch)
    device = runs.delta.device
    example = torch.arange(n, device=device)
    for tokens, w in ends:
        metric_backward(
            job.model, job.graph, batch, job.metric_fn, runs.clean_logits, grads,
            tokens=tokens, example=example, weight=torch.full((n,), w, device=device),
        )  # fmt: skip
        job.progress.update(n)
