"""EAP-IG on the activations: for the edges leaving each writer site (the input, a layer's
heads, a layer's MLP) the path interpolates that site's output alone,
``a(α) = a_abl + α(a_clean - a_abl)``, and ``score(u -> v) = Δ_u · ∫₀¹ ∂m/∂x_v dα``.

Each edge uses the interpolation of its own writer site (the reference implementation averages
over all sites)."""

from __future__ import annotations

import torch

from attribution.data import PromptPairs
from attribution.methods.base import AttributionMethod, Job, batch_runs
from attribution.methods.gradient import ig_rows_per_pass, integrate
from attribution.sites import writer_sites


class EAPIGActivations(AttributionMethod):
    """Integrated gradients per writer site: one integration per site and batch."""

    name = "eap-ig-activations"
    description = "Δ·gradient integrated along each writer site's interpolation"
    integrates = True

    def check(self, graph, ablation) -> None:
        super().check(graph, ablation)
        if ablation.name != "patching" and graph.spec.architecture == "Gemma2ForCausalLM":
            raise ValueError(
                "eap-ig-activations on Gemma-2 supports ablation='patching' only "
                "(it interpolates the raw head results)"
            )

    def rows_per_pass(self, batch_size, device) -> int:
        return ig_rows_per_pass(self, batch_size, device)

    def rows_per_example(self, graph) -> int:
        return (2 * graph.spec.n_layers + 1) * self.steps

    def score_batch(self, job: Job, batch: PromptPairs, scores: torch.Tensor):
        graph = job.graph
        runs = batch_runs(job, batch)
        grads = torch.zeros(
            len(batch), batch.n_pos, graph.n_backward, runs.delta.shape[-1],
            dtype=job.dtype, device=runs.delta.device,
        )  # fmt: skip
        for site in writer_sites(graph):
            grads.zero_()
            rows = list(site.rows)
            clean_out, abl_out = _site_outputs(job.model, batch, site, runs)
            integrate(self, job, batch, runs.clean_logits, grads, site.hook, clean_out, abl_out)
            scores[rows] += torch.einsum(
                "bpfd,bpkd->fk", runs.delta[:, :, rows].to(scores.dtype), grads.to(scores.dtype)
            )
        return runs.m_clean, runs.m_ablated


def _site_outputs(model, batch: PromptPairs, site, runs) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and ablated values of a writer site's hook output (shape as the hook's)."""
    if site.post_norm is None:
        if site.per_head:
            rows = list(site.rows)
            return runs.clean_writes[:, :, rows], runs.ablated[:, :, rows]
        return runs.clean_writes[:, :, site.rows[0]], runs.ablated[:, :, site.rows[0]]
    # Gemma-2: interpolate the raw head results (before the post-attention norm)
    raw = {}
    for name, tokens in (("clean", batch.clean), ("ablated", batch.corrupted)):

        def keep(t, hook, name=name):
            raw.setdefault(name, t.detach())

        with torch.no_grad(), model.hooks(fwd_hooks=[(site.hook, keep)]):
            model(tokens, attention_mask=batch.attention_mask)
    return raw["clean"], raw["ablated"]
