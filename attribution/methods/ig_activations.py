"""EAP-IG on the activations: for the edges leaving each writer site (the input, a layer's
heads, a layer's MLP) the path interpolates that site's output alone,
``a(α) = a_abl + α(a_clean - a_abl)``, and ``score(u -> v) = Δ_u · ∫₀¹ ∂m/∂x_v dα``.

Each edge uses the interpolation of its own writer site (the reference implementation averages
over all sites).

Completeness check (``ig_gap``): IG along one site's path is exact for that path, so per site
``s`` the edges leaving ``s`` sum to ``m(clean run with s's output set to its ablated value,
everything downstream recomputed) - m(clean)``, once the integral is accurate. That endpoint
costs one extra no-grad forward pass per site and batch. The reported gap is relative:
``Σ_s |Σ_{edges leaving s} score - Δm_s| / Σ_s |Δm_s|``. Gemma-2's head sites are left out
(their path moves the raw results, their edges carry the post-norm writes, so the identity
does not hold there)."""

from __future__ import annotations

import torch

from attribution.contraction import contract
from attribution.data import PromptPairs
from attribution.distributed import all_reduce_sum
from attribution.methods.base import (
    INTEGRATION_OPTIONS,
    AttributionMethod,
    Job,
    MethodError,
    batch_runs,
)
from attribution.methods.gradient import ig_rows_per_pass, integrate
from attribution.passes import unembed_at
from attribution.sites import writer_sites


class EAPIGActivations(AttributionMethod):
    """Integrated gradients per writer site: one integration per site and batch."""

    position_aware = True

    name = "eap-ig-activations"
    description = "Δ·gradient integrated along each writer site's interpolation"
    integrates = True
    options = INTEGRATION_OPTIONS
    reports_gap = True
    gap_definition = (
        "relative, per writer site s: Σ_s |Σ scores of edges leaving s − (m(s alone ablated) − "
        "m(clean))| / Σ_s |m(s alone ablated) − m(clean)|"
    )

    def check(self, graph, ablation) -> None:
        super().check(graph, ablation)
        if not ablation.corrupted_run and graph.spec.architecture == "Gemma2ForCausalLM":
            raise MethodError(
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
        sites = writer_sites(graph)
        real = graph.real_edges.to(grads.device)
        if getattr(self, "_gap_job", None) is not job:  # a new attribute() call: reset the sums
            self._gap_job, self._site_sums = job, torch.zeros(len(sites) + 1, dtype=torch.float64)
        for i, site in enumerate(sites):
            grads.zero_()
            rows = list(site.rows)
            clean_out, abl_out = _site_outputs(job.model, batch, site, runs)
            integrate(self, job, batch, runs.clean_logits, grads, site.hook, clean_out, abl_out)
            contract(
                scores, runs.delta[:, :, rows[0] : rows[-1] + 1], grads, rows[0], real=real,
                spans=batch.spans,
            )  # fmt: skip
            if site.post_norm is None:
                m_site = _site_ablated_metric(job, batch, site, runs, abl_out)
                self._site_sums[i] += float((m_site - runs.m_clean).double().sum())
        self._site_sums[-1] += len(batch)
        return runs.m_clean, runs.m_ablated

    def diagnostics(self, scores: torch.Tensor, diagnostics: dict[str, float]) -> None:
        """``ig_gap``: the relative per-site completeness gap (see the module docstring)."""
        sums = all_reduce_sum(self._site_sums)
        expected = sums[:-1] / max(float(sums[-1]), 1.0)
        graph, self._gap_job = self._gap_job.graph, None  # do not keep the model alive
        gap = total = 0.0
        for i, site in enumerate(writer_sites(graph)):
            if site.post_norm is not None:
                continue
            real = graph.real_edges[list(site.rows)].to(scores.device)
            edge_sum = float(torch.where(real, scores[list(site.rows)], 0.0).sum())
            gap += abs(edge_sum - float(expected[i]))
            total += abs(float(expected[i]))
        diagnostics["ig_gap"] = gap / max(total, 1e-12)
        diagnostics["site_ablation_sum"] = total


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


def _site_ablated_metric(job: Job, batch: PromptPairs, site, runs, abl_out) -> torch.Tensor:
    """Per-example metric of the clean run with ``site``'s output set to its ablated value
    (the α = 0 end of the site's path)."""

    def replace(t, hook):
        return abl_out.to(device=t.device, dtype=t.dtype)

    hooks = [(site.hook, replace), unembed_at(batch.positions)]
    with torch.no_grad(), job.model.hooks(fwd_hooks=hooks):
        logits = job.model(batch.clean, attention_mask=batch.attention_mask)
    return job.metric_fn(logits[:, 0], runs.clean_logits, batch)
