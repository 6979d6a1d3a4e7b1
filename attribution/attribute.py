"""Edge attribution: one entry point, :func:`attribute`, for every scoring method.

For an edge ``u -> v`` with ``Δ_u = a_u(ablated) - a_u(clean)`` (the corrupted, mean or zero
write of ``u`` minus its clean write):

- ``eap``: ``Δ_u · ∂m/∂x_v`` at the clean run.
- ``clean-corrupted``: ``Δ_u · ½(∂m/∂x_v|clean + ∂m/∂x_v|corrupted)``.
- ``eap-ig-inputs``: ``Δ_u · ∫ ∂m/∂x_v dα`` along the path where the input embedding moves
  from its ablated to its clean value (``e(α) = e_abl + α(e_clean - e_abl)``) and everything
  downstream is recomputed.
- ``eap-ig-activations``: like the above, but for the edges leaving each writer site (the
  input, a layer's heads, a layer's MLP) the path interpolates that site's output alone.
- ``exact``: patch each edge on its own (``x_v += Δ_u`` in the clean run) and measure
  ``m(patched) - m(clean)``: the brute-force ground truth.

Scores are summed over positions and averaged over examples; their sign convention is
``m(patched) - m(clean)`` (see :mod:`attribution.metrics`).

Integrated gradients are batched: the interpolation steps of a batch are stacked into the batch
dimension in chunks of at most ``max_rows`` rows, and the step-weighted gradients are
accumulated per example before one contraction with ``Δ`` per batch. Step positions and weights
come from captum's approximation methods.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from attribution.ablation import ABLATIONS, ablated_writes, check_inputs, mean_writes
from attribution.data import PromptPairs
from attribution.distributed import all_reduce_sum, is_main_process, shard_range
from attribution.memory import (
    CHUNKED_METHODS,
    attribution_peak_bytes,
    node_chunk_within,
    rows_within,
)
from attribution.metrics import Metric, get_metric
from attribution.passes import (
    NonFiniteMetricError,
    at_positions,
    check_finite,
    collect_writes,
    frozen_parameters,
    metric_backward,
)
from attribution.quadrature import quadrature
from attribution.sites import INPUT_HOOK, writer_sites
from graphs import Graph

METHODS = ("eap", "clean-corrupted", "eap-ig-inputs", "eap-ig-activations", "exact")
EXACT_EDGE_WARNING = 5_000


@dataclass
class AttributionResult:
    """What :func:`attribute` did.

    Attributes:
        scores: float ``[n_forward, n_backward]`` edge scores (also written into the graph).
        method, settings: the method and every setting used.
        timings: seconds per phase.
        diagnostics: ``metric_clean`` and ``metric_ablated`` (means over examples), and for
            ``eap-ig-inputs`` the completeness check: ``input_edge_sum`` (sum of the scores of
            edges leaving ``input``, which should equal ``metric_ablated - metric_clean``) and
            ``ig_gap`` (its relative error); ``total_score``.
    """

    scores: torch.Tensor
    method: str
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)


def attribute(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: str | Metric = "logit_diff",
    *,
    method: str = "eap-ig-inputs",
    steps: int = 5,
    quadrature_rule: str = "riemann_left",
    ablation: str = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    max_rows: int | None = None,
    memory_budget_gb: float = 4.0,
    node_chunk: int | None = None,
    quiet: bool = False,
) -> AttributionResult:
    """Score every edge of ``graph`` for ``data`` and write the scores into the graph.

    Args:
        model: a TransformerBridge from ``circuits.load_model`` (edge hooks on).
        graph: the model's graph (``Graph.from_model(model)``).
        data: clean/corrupted prompt pairs with answers.
        metric: ``"logit_diff"``, ``"prob_diff"``, ``"log_prob"``, ``"kl"`` or a callable
            ``(logits [n, vocab], clean_logits [n, vocab], data) -> [n]``.
        method: one of :data:`METHODS`.
        steps: integration steps for the IG methods.
        quadrature_rule: ``riemann_left`` (the reference's k/m, k=0..m-1), ``riemann_right``,
            ``riemann_middle``, ``riemann_trapezoid`` or ``gausslegendre``.
        ablation: what replaces a clean write: ``patching`` (the corrupted prompt's), ``mean``
            (mean write over ``mean_data``'s real tokens) or ``zero``.
        batch_size: examples per batch; memory does not grow with ``len(data)``.
        max_rows: at most this many rows (examples × steps, or examples × edges for ``exact``)
            per forward pass; default ``batch_size * steps`` on GPUs, ``batch_size`` on CPUs
            (where bigger passes are slower per row) and for EAP,
            lowered to what fits in ``memory_budget_gb`` (see :mod:`attribution.memory`).
        memory_budget_gb: memory the attribution may use besides the weights; sizes
            ``max_rows`` and, when the full write buffers would not fit, ``node_chunk``.
        node_chunk: build the activation-difference buffer ``[batch, pos, nodes, d_model]``
            this many upstream nodes at a time (eap, clean-corrupted, eap-ig-inputs), at the
            cost of one extra clean (and corrupted) forward pass per further chunk; the
            scores do not change. Default: all nodes, unless the budget requires chunks.
        quiet: no progress bars, and no printed memory prediction.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "clean-corrupted" and ablation != "patching":
        raise ValueError(
            "clean-corrupted needs ablation='patching' (it takes gradients on the corrupted prompts)"
        )
    gemma = graph.spec.architecture == "Gemma2ForCausalLM"
    if method == "eap-ig-activations" and ablation != "patching" and gemma:
        raise ValueError(
            "eap-ig-activations on Gemma-2 supports ablation='patching' only "
            "(it interpolates the raw head results)"
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    metric_fn = get_metric(metric)
    weights_alphas = quadrature(quadrature_rule, steps)  # validates the rule early
    check_inputs(model, graph, data, ablation, mean_data)
    if method == "exact" and graph.n_edges > EXACT_EDGE_WARNING:
        warnings.warn(
            f"exact patching runs one patched forward pass per edge per batch: {graph.n_edges} edges "
            f"x {-(-len(data) // batch_size)} batches; use it on small graphs to check other methods",
            stacklevel=2,
        )

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    score_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    # exact patching runs many edges per pass (forward only, so rows are cheaper). IG stacks
    # its steps into one pass on GPUs; on CPUs larger passes are slower per row (measured:
    # GPT-2-small IG, 40 rows per pass 12.0 s, 8 rows 7.4 s), so there it runs a step a pass.
    ig_rows = steps if device.type != "cpu" else 1
    per_method = {"exact": 32, "eap-ig-inputs": ig_rows, "eap-ig-activations": ig_rows}
    wanted = batch_size * per_method.get(method, 1)
    budget = memory_budget_gb * 1024**3
    if max_rows is None:
        max_rows = rows_within(model, data.n_pos, budget, wanted)
    sizes = dict(
        batch_size=min(batch_size, len(data)), n_pos=data.n_pos, rows=max_rows, method=method
    )
    if node_chunk is None and method in CHUNKED_METHODS:
        node_chunk = node_chunk_within(model, graph, budget, **sizes)
    if node_chunk is not None and node_chunk < 1:
        raise ValueError(f"node_chunk must be >= 1, got {node_chunk}")
    peak = attribution_peak_bytes(model, graph, node_chunk=node_chunk, **sizes)
    if not quiet and is_main_process():
        tqdm.write(
            f"predicted peak memory {peak['total'] / 2**30:.2f} GiB besides the weights "
            f"(activations {peak['activations'] / 2**30:.2f}, port gradients "
            f"{peak['port_gradients'] / 2**30:.2f}, write buffers {peak['write_buffers'] / 2**30:.2f}"
            + (
                f", {node_chunk} node{'s' if node_chunk > 1 else ''} at a time"
                if node_chunk
                else ""
            )
            + ")",
            file=sys.stderr,
        )
    settings = dict(
        method=method,
        steps=steps,
        quadrature_rule=quadrature_rule,
        ablation=ablation,
        batch_size=batch_size,
        max_rows=max_rows,
        node_chunk=node_chunk,
        predicted_peak_bytes=peak["total"],
        metric=metric if isinstance(metric, str) else getattr(metric, "__name__", "callable"),
        n_examples=len(data),
    )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    means = None
    if ablation == "mean":
        means = mean_writes(model, graph, mean_data.to(device), batch_size, dtype)
    timings["mean_activations"] = time.perf_counter() - start

    scores = torch.zeros(graph.n_forward, graph.n_backward, dtype=score_dtype, device=device)
    sums = torch.zeros(2, dtype=torch.float64)  # metric totals: clean, ablated
    # under torchrun each rank scores a contiguous shard; sums are all-reduced below
    shard = shard_range(len(data))
    local = data.select(slice(shard.start, shard.stop))
    per_example = {
        "eap": 1,
        "clean-corrupted": 2,
        "eap-ig-inputs": steps,
        "eap-ig-activations": (2 * graph.spec.n_layers + 1) * steps,
        "exact": graph.n_edges,
    }[method]
    # one unit = one example row through one gradient (or patched) pass: covers batches and steps
    progress = tqdm(
        total=len(local) * per_example,
        desc=method,
        disable=quiet or not is_main_process(),
        unit="row",
    )
    job = _Job(
        model, graph, metric_fn, method, ablation, means, weights_alphas, max_rows, dtype,
        progress, node_chunk,
    )  # fmt: skip
    with frozen_parameters(model):
        for first, batch in local.batches(batch_size):
            batch = batch.to(device)
            try:
                m_clean, m_ablated = _score_batch(job, batch, scores)
            except NonFiniteMetricError as err:  # name the example of `data`, not of the batch
                raise NonFiniteMetricError(err.value, shard.start + first + err.example) from None
            sums += torch.tensor(
                [float(m_clean.sum()), float(m_ablated.sum())], dtype=torch.float64
            )
    progress.close()
    scores = all_reduce_sum(scores)
    sums = all_reduce_sum(sums)
    scores /= len(data)
    # gradient methods contract Δ_u with every port's gradient; keep only real edges (u before v)
    scores = torch.where(graph.real_edges.to(device), scores, 0.0)
    timings["attribution"] = time.perf_counter() - start - timings["mean_activations"]

    graph.set_scores(scores.float().cpu())
    diagnostics = {
        "metric_clean": float(sums[0]) / len(data),
        "metric_ablated": float(sums[1]) / len(data),
        "total_score": float(scores.sum()),
    }
    expected = diagnostics["metric_ablated"] - diagnostics["metric_clean"]
    input_sum = float(scores[0].sum())
    diagnostics["input_edge_sum"] = input_sum
    if method == "eap-ig-inputs":
        diagnostics["ig_gap"] = abs(input_sum - expected) / max(abs(expected), 1e-12)
    return AttributionResult(
        scores=scores.cpu(),
        method=method,
        settings=settings,
        timings=timings,
        diagnostics=diagnostics,
    )


@dataclass(frozen=True)
class _Job:
    """What every batch of one :func:`attribute` call shares."""

    model: Any
    graph: Graph
    metric_fn: Metric
    method: str
    ablation: str
    means: torch.Tensor | None
    weights_alphas: tuple  # (weights, alphas) of the IG quadrature
    max_rows: int
    dtype: torch.dtype
    progress: Any  # tqdm
    node_chunk: int | None


def _score_batch(job: _Job, batch: PromptPairs, scores: torch.Tensor):
    """Add this batch's summed edge scores into ``scores``; return per-example metric on the
    clean and the ablated input.

    With ``node_chunk`` (gradient methods other than eap-ig-activations), the write buffers
    hold ``node_chunk`` upstream nodes at a time: the first chunk comes with the runs that
    give the metric, the others from extra no-grad clean (and corrupted) runs after the
    backward pass, each contracted with the port gradients at once."""
    model, graph, metric_fn, method = job.model, job.graph, job.metric_fn, job.method
    ablation, means, max_rows, dtype = job.ablation, job.means, job.max_rows, job.dtype
    progress, node_chunk = job.progress, job.node_chunk
    chunked = node_chunk is not None and node_chunk < graph.n_forward and method in CHUNKED_METHODS
    nodes = range(node_chunk) if chunked else None
    clean_writes, clean_logits_full = collect_writes(
        model, graph, batch.clean, batch.attention_mask, dtype, nodes
    )
    clean_logits = at_positions(clean_logits_full, batch.positions).detach()
    ablated, ablated_logits_full = ablated_writes(
        model, graph, batch, ablation, means, clean_writes, nodes
    )
    ablated_logits = None
    if ablated_logits_full is not None:
        ablated_logits = at_positions(ablated_logits_full, batch.positions)
    # padding positions must contribute nothing: their writes differ between runs but no real
    # token reads them; zeroing Δ there keeps padded and unpadded examples identical
    pad_mask = batch.attention_mask[:, :, None, None].to(dtype)
    delta = (ablated - clean_writes) * pad_mask
    with torch.no_grad():
        m_clean = metric_fn(clean_logits, clean_logits, batch)
        check_finite(m_clean, torch.arange(len(batch)))
        if ablated_logits is None:
            ablated_logits = _input_ablated_logits(model, batch, ablated[:, :, 0])
        m_ablated = metric_fn(ablated_logits, clean_logits, batch)

    if method == "exact":
        from attribution.exact import exact_scores

        scores += exact_scores(
            model, graph, batch, metric_fn, clean_logits, m_clean, delta, max_rows, progress
        )
        return m_clean, m_ablated

    n = len(batch)
    grads = torch.zeros(
        n, batch.n_pos, graph.n_backward, delta.shape[-1], dtype=dtype, device=delta.device
    )
    if method in ("eap", "clean-corrupted"):
        ends = [(batch.clean, 1.0)]
        if method == "clean-corrupted":
            ends = [(batch.clean, 0.5), (batch.corrupted, 0.5)]
        example = torch.arange(n, device=delta.device)
        for tokens, w in ends:
            metric_backward(
                model,
                graph,
                batch,
                metric_fn,
                clean_logits,
                grads,
                tokens=tokens,
                example=example,
                weight=torch.full((n,), w, device=delta.device),
            )
            progress.update(n)
    elif method == "eap-ig-inputs":
        e_clean, e_abl = clean_writes[:, :, 0], ablated[:, :, 0]
        _integrate(job, batch, clean_logits, grads, INPUT_HOOK, e_clean, e_abl)
    if method in CHUNKED_METHODS:
        _contract(scores, delta, grads, 0, node_chunk if chunked else None)
        if chunked:
            del clean_writes, ablated, delta  # free the first chunk before the next
            for start in range(node_chunk, graph.n_forward, node_chunk):
                nodes = range(start, min(start + node_chunk, graph.n_forward))
                clean_c, _ = collect_writes(
                    model, graph, batch.clean, batch.attention_mask, dtype, nodes
                )
                ablated_c, _ = ablated_writes(model, graph, batch, ablation, means, clean_c, nodes)
                _contract(scores, (ablated_c - clean_c) * pad_mask, grads, start, node_chunk)
    elif method == "eap-ig-activations":
        for site in writer_sites(graph):
            grads.zero_()
            rows = list(site.rows)
            clean_out, abl_out = _site_outputs(model, batch, site, clean_writes, ablated)
            _integrate(job, batch, clean_logits, grads, site.hook, clean_out, abl_out)
            scores[rows] += torch.einsum(
                "bpfd,bpkd->fk", delta[:, :, rows].to(scores.dtype), grads.to(scores.dtype)
            )
    return m_clean, m_ablated


def _site_outputs(model, batch, site, clean_writes, ablated_writes):
    """Clean and ablated values of a writer site's hook output (shape as the hook's)."""
    if site.post_norm is None:
        if site.per_head:
            return clean_writes[:, :, list(site.rows)], ablated_writes[:, :, list(site.rows)]
        return clean_writes[:, :, site.rows[0]], ablated_writes[:, :, site.rows[0]]
    # Gemma-2: interpolate the raw head results (before the post-attention norm)
    raw = {}
    for name, tokens in (("clean", batch.clean), ("ablated", batch.corrupted)):
        with (
            torch.no_grad(),
            model.hooks(
                fwd_hooks=[(site.hook, lambda t, hook, name=name: raw.setdefault(name, t.detach()))]
            ),
        ):
            model(tokens, attention_mask=batch.attention_mask)
    return raw["clean"], raw["ablated"]


def _integrate(
    job: _Job,
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
    weights, alphas = job.weights_alphas
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
            job.model,
            job.graph,
            batch,
            job.metric_fn,
            clean_logits,
            grads,
            tokens=batch.clean[example],
            example=example,
            weight=weight,
            **hook_args,
        )
        job.progress.update(len(chunk))


def _contract(
    scores: torch.Tensor,
    delta: torch.Tensor,
    grads: torch.Tensor,
    first: int,
    port_chunk: int | None = None,
) -> None:
    """``scores[first : first + F'] += Σ_{b,p,d} delta[b,p,f,d]·grads[b,p,k,d]`` in the
    scores' dtype (float32 or float64), whatever the activations' dtype.

    The gradients are laid out as a matrix ``port_chunk`` ports at a time (all at once by
    default), so the float32 working copies stay bounded on 16-bit models."""
    f_rows = slice(first, first + delta.shape[2])
    flat = delta.permute(2, 0, 1, 3).reshape(delta.shape[2], -1).to(scores.dtype)  # [F', bpd]
    n_ports = grads.shape[2]
    step = port_chunk or n_ports
    for start in range(0, n_ports, step):
        cols = slice(start, min(start + step, n_ports))
        g = grads[:, :, cols].permute(2, 0, 1, 3).reshape(cols.stop - start, -1).to(scores.dtype)
        scores[f_rows, cols] += flat @ g.T


def _input_ablated_logits(model, batch: PromptPairs, input_write: torch.Tensor) -> torch.Tensor:
    """Logits with the input embedding replaced by its mean/zero value (the IG start point)."""
    with (
        torch.no_grad(),
        model.hooks(
            fwd_hooks=[
                (
                    INPUT_HOOK,
                    lambda t, hook: input_write.to(device=t.device, dtype=t.dtype),
                )
            ]
        ),
    ):
        logits = model(batch.clean, attention_mask=batch.attention_mask)
    return at_positions(logits, batch.positions)


__all__ = ["ABLATIONS", "METHODS", "AttributionResult", "attribute"]
