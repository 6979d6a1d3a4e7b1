"""Clean-corrupted: ``Δ_u · ½(∂m/∂x_v|clean + ∂m/∂x_v|corrupted)`` (Hanna et al. 2024)."""

from __future__ import annotations

from attribution.data import PromptPairs
from attribution.methods.base import BatchRuns, Job
from attribution.methods.eap import backward_at
from attribution.methods.gradient import GradientMethod


class CleanCorrupted(GradientMethod):
    """The average of the gradients at the clean and the corrupted run; it takes gradients on
    the corrupted prompts, so it supports patching only."""

    name = "clean-corrupted"
    description = "Δ·mean of the clean and corrupted gradients"
    ablations = ("patching",)
    needs_corrupted = True

    def rows_per_example(self, graph) -> int:
        return 2

    def port_gradients(self, job: Job, batch: PromptPairs, runs: BatchRuns, grads) -> None:
        backward_at(job, batch, runs, grads, [(batch.clean, 0.5), (batch.corrupted, 0.5)])
