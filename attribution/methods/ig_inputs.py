"""EAP-IG on the inputs: ``Δ_u · ∫₀¹ ∂m/∂x_v dα`` along the path where the input embedding
moves from its ablated to its clean value, ``e(α) = e_abl + α(e_clean - e_abl)``, with
everything downstream recomputed (Hanna et al. 2024)."""

from __future__ import annotations

from attribution.data import PromptPairs
from attribution.methods.base import INTEGRATION_OPTIONS, BatchRuns, Job
from attribution.methods.gradient import GradientMethod, ig_rows_per_pass, integrate
from attribution.sites import INPUT_HOOK


class EAPIGInputs(GradientMethod):
    """Integrated gradients over the input embedding. Completeness: the scores of the edges
    leaving ``input`` sum to ``m(ablated) - m(clean)`` up to the quadrature error, reported
    as ``ig_gap`` (relative)."""

    name = "eap-ig-inputs"
    description = "Δ·gradient integrated along the input interpolation"
    integrates = True
    options = INTEGRATION_OPTIONS
    reports_gap = True

    def rows_per_pass(self, batch_size, device) -> int:
        return ig_rows_per_pass(self, batch_size, device)

    def rows_per_example(self, graph) -> int:
        return self.steps

    def port_gradients(self, job: Job, batch: PromptPairs, runs: BatchRuns, grads) -> None:
        e_clean, e_abl = runs.clean_writes[:, :, 0], runs.ablated[:, :, 0]
        integrate(self, job, batch, runs.clean_logits, grads, INPUT_HOOK, e_clean, e_abl)
