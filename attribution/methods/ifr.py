"""Information-flow routes (IFR; Ferrando & Voita 2024): forward-only edge importances from
how close each upstream write lies to the port input it is part of.

A port's input (what its reader hook holds, and what edge patching adds ``Δ`` into) is, at
every position, the exact sum of the writes of the upstream nodes with an edge into it plus a
remainder (output biases the graph has no node for): ``y = Σ_u c_u + r``. The paper's
proximity rule scores a contributor ``c`` of a sum ``y`` by

    prox(c, y) = max(0, ||y||₁ − ||y − c||₁),   importance(c) = prox(c, y) / Σ_j prox(c_j, y)

(the normaliser runs over every contributor, the remainder included). An edge's score is its
importance summed over the example's real positions and averaged over examples, so it lies in
``[0, n_positions]`` and the edges into one port sum to at most the number of positions.

The norm comes after the port (the port is the residual the reader takes in, before its
LayerNorm / RMSNorm), so no linearisation of the norm is needed: the decomposition is exact.
The paper folds LayerNorm into the contributions (its centering and gain); that variant is not
implemented here, which makes the ``q``, ``k`` and ``v`` ports of one layer (and the MLP port of
a parallel-attention layer) read the same sum and so get equal importances from each upstream
node. Sign convention: importances are non-negative and say how much, not which way; rankings
by ``|score|`` (the selection default) rank them as intended.
"""

from __future__ import annotations

import functools

import torch

from attribution.data import PromptPairs
from attribution.methods.base import AttributionMethod, Job
from attribution.passes import check_finite, unembed_at
from attribution.sites import reader_sites, writer_hooks


def proximity_importances(contributions: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``contributions`` ``[..., C, d]`` of sums ``total`` ``[..., d]`` -> importances
    ``[..., C]``: ``max(0, ||y||₁ − ||y − c||₁)`` normalised over the ``C`` contributors
    (all zero where no contributor is close)."""
    prox = total.abs().sum(-1, keepdim=True) - (total.unsqueeze(-2) - contributions).abs().sum(-1)
    prox = prox.clamp(min=0)
    norm = prox.sum(-1, keepdim=True)
    return torch.where(norm > 0, prox / norm.clamp(min=torch.finfo(prox.dtype).tiny), 0.0)


class IFR(AttributionMethod):
    """Information-flow routes: one clean forward pass per batch, no gradients and no corrupted
    prompts; scores are non-negative importances (see the module docstring)."""

    name = "ifr"
    description = "information-flow routes: proximity of each write to its port's input"
    needs_gradients = False
    needs_corrupted = False

    def score_batch(self, job: Job, batch: PromptPairs, scores: torch.Tensor):
        model, graph = job.model, job.graph
        inputs: dict[str, torch.Tensor] = {}
        sites = reader_sites(graph)

        def keep(t, hook, name):
            inputs[name] = t.detach().to(job.dtype)

        n, pos = batch.clean.shape
        d_model = graph.spec.d_model or model.cfg.d_model
        writes = torch.zeros(n, pos, graph.n_forward, d_model, dtype=job.dtype)  # [b, p, F, d]
        writes = writes.to(batch.clean.device)
        hooks = (
            writer_hooks(model, graph, writes)
            + [(site.hook, functools.partial(keep, name=site.hook)) for site in sites]
            + [unembed_at(batch.positions)]
        )
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(batch.clean, attention_mask=batch.attention_mask)
        real = graph.real_edges.to(writes.device)
        pad = batch.attention_mask.to(writes.device, job.dtype)  # [b, p]
        for site in sites:
            y = inputs[site.hook]
            y = y if site.per_head else y.unsqueeze(2)  # [b, p, ports, d]
            for i, col in enumerate(site.cols):
                ups = torch.nonzero(real[:, col]).flatten()
                c = writes[:, :, ups]  # [b, p, U, d]
                rest = y[:, :, i] - c.sum(2)  # biases without a node
                imp = proximity_importances(torch.cat([c, rest.unsqueeze(2)], 2), y[:, :, i])
                scores[ups, col] += (imp[..., :-1] * pad[..., None]).sum((0, 1)).to(scores.dtype)
        clean_logits = logits[:, 0]
        m_clean = job.metric_fn(clean_logits, clean_logits, batch)
        check_finite(m_clean, torch.arange(len(batch)))
        job.progress.update(len(batch))
        m_ablated = self._ablated_metric(job, batch, clean_logits, writes)
        return m_clean, m_ablated

    @staticmethod
    def _ablated_metric(job: Job, batch: PromptPairs, clean_logits, writes) -> torch.Tensor:
        """The ablated run's metric for the diagnostics (one more forward pass), NaN when the
        ablation would need corrupted prompts the data lacks; the scores never use it."""
        if job.ablation.reads_corrupted and not batch.has_corrupted:
            return torch.full((len(batch),), float("nan"), dtype=torch.float64)
        from attribution.methods.base import _input_ablated_logits

        ablated, ablated_full = job.ablation.writes(
            job.model, job.graph, batch, job.means, writes[:, :, :1], range(1)
        )
        with torch.no_grad():
            logits = (
                ablated_full
                if ablated_full is not None
                else _input_ablated_logits(job.model, batch, ablated[:, :, 0])
            )
            return job.metric_fn(logits, clean_logits, batch)
