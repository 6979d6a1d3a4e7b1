"""Gradient methods: ``score(u -> v) = Σ_{positions} Δ_u · g_v`` with ``g_v`` a (weighted,
possibly integrated) gradient of the metric at port ``v``'s input.

:class:`GradientMethod` holds what they share: the port-gradient buffer, the contraction with
``Δ`` and node chunking; a subclass only says how :meth:`GradientMethod.port_gradients` fills
the buffer. :func:`integrate` is the batched integrated-gradients loop both IG methods use.
"""

from __future__ import annotations

import torch

from attribution.contraction import contract
from attribution.data import PromptPairs
from attribution.methods.base import AttributionMethod, BatchRuns, Job, batch_runs, masked_delta
from attribution.passes import collect_writes, metric_backward
from attribution.quadrature import quadrature
from attribution.sites import INPUT_HOOK


class GradientMethod(AttributionMethod):
    """A method whose scores are one contraction of ``Δ`` with port gradients."""

    position_aware = True

    node_chunking = True

    def port_gradients(
        self, job: Job, batch: PromptPairs, runs: BatchRuns, grads: torch.Tensor
    ) -> None:
        """Add the method's gradient of the metric at every port into ``grads``
        ``[batch, pos, n_backward, d_model]``."""
        raise NotImplementedError

    def score_batch(self, job: Job, batch: PromptPairs, scores: torch.Tensor):
        """With ``job.node_chunk``, the write buffers hold that many upstream nodes at a time:
        the first chunk comes with the runs that give the metric, the others from extra
        no-grad clean (and ablated) runs after the backward pass, each contracted with the
        port gradients at once."""
        graph = job.graph
        chunk = job.node_chunk
        chunked = chunk is not None and chunk < graph.n_forward
        runs = batch_runs(job, batch, range(chunk) if chunked else None)
        grads = torch.zeros(
            len(batch), batch.n_pos, graph.n_backward, runs.delta.shape[-1],
            dtype=job.dtype, device=runs.delta.device,
        )  # fmt: skip
        self.port_gradients(job, batch, runs, grads)
        real = graph.real_edges.to(grads.device)
        contract(
            scores, runs.delta, grads, 0, real=real,
            port_chunk=chunk if chunked else None, spans=batch.spans,
        )  # fmt: skip
        if chunked:
            pad_mask = runs.pad_mask
            m_clean, m_ablated = runs.m_clean, runs.m_ablated
            del runs  # free the first chunk before the next
            for start in range(chunk, graph.n_forward, chunk):
                nodes = range(start, min(start + chunk, graph.n_forward))
                clean, _ = collect_writes(
                    job.model, graph, batch.clean, batch.attention_mask, job.dtype, nodes
                )
                ablated, _ = job.ablation.writes(job.model, graph, batch, job.means, clean, nodes)
                delta = masked_delta(ablated, clean, pad_mask)
                contract(
                    scores, delta, grads, start, real=real, port_chunk=chunk,
                    spans=batch.spans,
                )  # fmt: skip
            return m_clean, m_ablated
        return runs.m_clean, runs.m_ablated


def ig_rows_per_pass(method: AttributionMethod, batch_size: int, device: torch.device) -> int:
    """IG stacks its steps into one pass on GPUs; on CPUs larger passes are slower per row
    (measured: GPT-2-small IG, 40 rows per pass 12.0 s, 8 rows 7.4 s), so there it runs a
    step a pass."""
    return batch_size * (method.steps if device.type != "cpu" else 1)


def integrate(
    method: AttributionMethod,
    job: Job,
    batch: PromptPairs,
    clean_logits: torch.Tensor,
    grads: torch.Tensor,
    hook: str,
    clean_out: torch.Tensor,
    abl_out: torch.Tensor,
) -> None:
    """Accumulate ``Σ_k w_k ∂m/∂x_v`` at α_k into ``grads``, with ``hook``'s output set to
    ``abl + α(clean - abl)``; steps are stacked into the batch in chunks of ``max_rows``.
    At the input write (``blocks.0.hook_resid_pre``) the interpolated value is the backward
    leaf itself; any later site is patched downstream of the usual leaf."""
    precision = torch.float64 if clean_out.dtype == torch.float64 else torch.float32
    weights, alphas = quadrature(method.quadrature_rule, method.steps, precision)
    leaf = hook == INPUT_HOOK
    n = len(batch)
    device = clean_out.device
    pairs = [(s, i) for s in range(len(alphas)) for i in range(n)]  # step-major rows
    per_chunk = max(1, job.max_rows)
    for start in range(0, len(pairs), per_chunk):
        chunk = pairs[start : start + per_chunk]
        example = torch.tensor([i for _, i in chunk], device=device)
        alpha = torch.tensor([alphas[s] for s, _ in chunk], device=device, dtype=clean_out.dtype)
        weight = torch.tensor([weights[s] for s, _ in chunk], device=device, dtype=torch.float64)
        shape = (-1,) + (1,) * (clean_out.dim() - 1)
        value = abl_out[example] + alpha.view(shape) * (clean_out[example] - abl_out[example])

        def interpolate(t, hook, value=value):
            if leaf:
                return value.detach().to(t.device).requires_grad_(True)
            return value.to(device=t.device, dtype=t.dtype)

        hook_args = {"leaf_hook": interpolate} if leaf else {"extra_hooks": [(hook, interpolate)]}
        metric_backward(
            job.model, job.graph, batch, job.metric_fn, clean_logits, grads,
            tokens=batch.clean[example], example=example, weight=weight, **hook_args,
        )  # fmt: skip
        job.progress.update(len(chunk))
