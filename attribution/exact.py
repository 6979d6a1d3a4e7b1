"""Exact activation patching: each edge patched on its own, the brute-force ground truth."""

from __future__ import annotations

import torch

from attribution.data import PromptPairs
from attribution.metrics import Metric
from attribution.passes import at_positions, check_finite
from attribution.sites import reader_sites
from graphs import Graph


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
) -> torch.Tensor:
    """Summed over the batch, ``m(clean run with x_v += Δ_u) - m(clean run)`` for every edge
    ``u -> v``: ``[n_forward, n_backward]``. ``delta`` is ``[n, pos, n_forward, d]``.

    Several edges run in one forward pass: the batch is repeated once per edge and each copy
    patches its own edge, ``max_rows // n`` copies at a time."""
    n = len(batch)
    edges = graph.real_edges.nonzero().tolist()
    out = torch.zeros(graph.n_forward, graph.n_backward, dtype=torch.float64, device=delta.device)
    port_site = {}
    for site in reader_sites(graph):
        for offset, col in enumerate(site.cols):
            port_site[col] = (site.hook, offset, site.per_head)
    per_pass = max(1, max_rows // n)
    for start in range(0, len(edges), per_pass):
        chunk = edges[start : start + per_pass]
        by_hook: dict[str, list[tuple[int, int, int, bool]]] = {}
        for copy, (up, port) in enumerate(chunk):
            hook, offset, per_head = port_site[port]
            by_hook.setdefault(hook, []).append((copy, up, offset, per_head))
        hooks = []
        for hook, patches in by_hook.items():

            def patch(t, hook, patches=patches):
                t = t.clone()
                for copy, up, offset, per_head in patches:
                    rows = slice(copy * n, (copy + 1) * n)
                    if per_head:
                        t[rows, :, offset] += delta[:, :, up].to(t.dtype)
                    else:
                        t[rows] += delta[:, :, up].to(t.dtype)
                return t

            hooks.append((hook, patch))
        copies = len(chunk)
        rows = batch.select(torch.arange(n).repeat(copies))
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(rows.clean, attention_mask=rows.attention_mask)
        values = metric(at_positions(logits, rows.positions), clean_logits.repeat(copies, 1), rows)
        check_finite(values, torch.arange(n, device=values.device).repeat(copies))
        change = (values.view(copies, n).double() - m_clean.double()).sum(1)
        for copy, (up, port) in enumerate(chunk):
            out[up, port] = change[copy]
        if progress is not None:
            progress.update(copies * n)
    return out
