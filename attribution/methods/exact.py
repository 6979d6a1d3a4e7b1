"""Exact activation patching: each edge patched on its own (``x_v += Δ_u`` in the clean run),
``m(patched) - m(clean)``: the brute-force ground truth the other methods are checked against."""

from __future__ import annotations

import warnings

import torch

from attribution.data import PromptPairs
from attribution.methods.base import AttributionMethod, Job, batch_runs
from attribution.metrics import Metric
from attribution.passes import check_finite, unembed_at
from attribution.sites import reader_sites
from graphs import Graph
from graphs.positions import span_token_masks

#: Graphs with more edges than this get a warning: exact patching is meant for small graphs.
EXACT_EDGE_WARNING = 5_000


class Exact(AttributionMethod):
    """One patched forward pass per edge (batched: many edges' copies of the batch share a
    pass), no gradients."""

    position_aware = True

    name = "exact"
    description = "activation patching of each edge on its own"
    needs_gradients = False

    def check(self, graph, ablation) -> None:
        super().check(graph, ablation)
        if graph.n_edges > EXACT_EDGE_WARNING:
            warnings.warn(
                f"exact patching runs one patched forward pass per edge per batch: {graph.n_edges} "
                "edges; use it on small graphs to check other methods",
                stacklevel=3,
            )

    def rows_per_pass(self, batch_size, device) -> int:
        return batch_size * 32  # forward only, so rows are cheaper than a backward pass's

    def rows_per_example(self, graph) -> int:
        return graph.n_edges  # times the spans with a position axis (attribute() scales it)

    def score_batch(self, job: Job, batch: PromptPairs, scores: torch.Tensor):
        runs = batch_runs(job, batch)
        scores += exact_scores(
            job.model, job.graph, batch, job.metric_fn, runs.clean_logits, runs.m_clean,
            runs.delta, job.max_rows, job.progress, spans=batch.spans, n_spans=batch.n_spans,
        )  # fmt: skip
        return runs.m_clean, runs.m_ablated


def exact_scores(
    model,
    graph: Graph,
    batch: PromptPairs,
    metric: Metric,
    clean_logits: torch.Tensor,
    m_clean: torch.Tensor,
    delta: torch.Tensor,
    max_rows: int,
    progress=None,
    *,
    spans: torch.Tensor | None = None,
    n_spans: int | None = None,
) -> torch.Tensor:
    """Summed over the batch, ``m(clean run with x_v += Δ_u) - m(clean run)`` for every edge
    ``u -> v``: ``[n_forward, n_backward]``. ``delta`` is ``[n, pos, n_forward, d]``.
    With ``spans`` (long ``[n, pos]``) and ``n_spans``, each edge is patched at one span's
    tokens at a time: ``[n_spans, n_forward, n_backward]``.

    Several edges run in one forward pass: the batch is repeated once per edge and each copy
    patches its own edge, ``max_rows // n`` copies at a time."""
    n = len(batch)
    edges = graph.real_edges.nonzero().tolist()
    if spans is not None:
        masks = span_token_masks(spans.to(delta.device), n_spans).to(delta.dtype)[..., None]
        edges = [(s, up, port) for s in range(n_spans) for up, port in edges]
        out = torch.zeros(
            n_spans, graph.n_forward, graph.n_backward, dtype=torch.float64, device=delta.device
        )
    else:
        masks = None
        out = torch.zeros(
            graph.n_forward, graph.n_backward, dtype=torch.float64, device=delta.device
        )
    port_site = {}
    for site in reader_sites(graph):
        for offset, col in enumerate(site.cols):
            port_site[col] = (site.hook, offset, site.per_head)
    per_pass = max(1, max_rows // n)
    for start in range(0, len(edges), per_pass):
        chunk = edges[start : start + per_pass]
        by_hook: dict[str, list[tuple[int, int, int, bool]]] = {}
        for copy, edge in enumerate(chunk):
            span, up, port = edge if masks is not None else (None, *edge)
            hook, offset, per_head = port_site[port]
            by_hook.setdefault(hook, []).append((copy, span, up, offset, per_head))
        hooks = []
        for hook, patches in by_hook.items():

            def patch(t, hook, patches=patches):
                t = t.clone()
                for copy, span, up, offset, per_head in patches:
                    rows = slice(copy * n, (copy + 1) * n)
                    d = delta[:, :, up] if span is None else delta[:, :, up] * masks[span]
                    if per_head:
                        t[rows, :, offset] += d.to(t.dtype)
                    else:
                        t[rows] += d.to(t.dtype)
                return t

            hooks.append((hook, patch))
        copies = len(chunk)
        rows = batch.select(torch.arange(n).repeat(copies))
        hooks.append(unembed_at(rows.positions))
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(rows.clean, attention_mask=rows.attention_mask)
        values = metric(logits[:, 0], clean_logits.repeat(copies, 1), rows)
        check_finite(values, torch.arange(n, device=values.device).repeat(copies))
        change = (values.view(copies, n).double() - m_clean.double()).sum(1)
        for copy, edge in enumerate(chunk):
            out[tuple(edge)] = change[copy]
        if progress is not None:
            progress.update(copies * n)
    return out
