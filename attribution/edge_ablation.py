"""Runs in which a set of edges is ablated at once: the forward pass behind faithfulness.

In the clean run every port ``v`` reads ``x_v = Σ_u a_u + c`` (the writes of all upstream
nodes plus constants such as biases). Ablating the edges ``u -> v`` outside a circuit means
``v`` reads the ablated write of those ``u`` instead, while the circuit's writes come from the
patched run itself:

    x_v ← x_v + Σ_{u: (u, v) ablated} (a_u(ablated) − a_u(this run))

Writes of this run are recorded by hooks as the forward pass reaches them, so every port in a
later layer sees the effects of earlier patches: one forward pass per batch, not one per edge.
"""

from __future__ import annotations

import torch

from attribution.data import DataError
from attribution.sites import reader_sites, writer_hooks
from graphs import Graph


def ablation_hooks(
    model,
    graph: Graph,
    ablated_writes: torch.Tensor,
    ablate: torch.Tensor,
    spans: torch.Tensor | None = None,
) -> list:
    """Hooks that ablate the edges in ``ablate`` (bool ``[n_forward, n_backward]``) during one
    forward pass on a batch whose ablated writes are ``ablated_writes``
    (``[batch, pos, n_forward, d_model]``, same batch layout as the run).

    Position-aware: ``ablate`` ``[n_spans, n_forward, n_backward]`` with ``spans`` (long
    ``[batch, pos]``, see :mod:`graphs.positions`) ablates edge ``(s, u -> v)`` at the tokens
    of span ``s`` only; padding tokens (span ``-1``) are left clean.

    ``diff = a(ablated) − a(this run)`` is kept in one buffer: it starts as the ablated writes
    and each writer hook subtracts its write as the pass reaches it. Each reader site then adds
    ``W^T @ diff[:, :, :U]`` with ``W`` the site's ablated-edge columns and ``U`` the upstream
    nodes that can reach it (a contiguous prefix in the layout), one broadcast matmul and no
    gathered copies."""
    if ablate.dim() == 3:
        return _position_hooks(model, graph, ablated_writes, ablate, spans)
    ablate = ablate.to(ablated_writes.device).to(torch.bool)
    return _hooks(model, graph, ablated_writes, ablate.to(ablated_writes.dtype), soft=False)


def soft_ablation_hooks(
    model, graph: Graph, ablated_writes: torch.Tensor, amount: torch.Tensor
) -> list:
    """Like :func:`ablation_hooks` with a continuous, differentiable ``amount`` (float
    ``[n_forward, n_backward]`` in [0, 1], or ``[batch, n_forward, n_backward]``: one per row of
    the batch) per edge: port ``v`` reads
    ``x_v + Σ_u amount_uv · (a_u(ablated) − a_u(this run))``, i.e. each edge's write
    interpolates between this run's (amount 0) and the ablated one (amount 1). Gradients flow
    to ``amount`` and through every write; at amount 0/1 it computes what
    :func:`ablation_hooks` does for the same edges (the learned masks' test checks it)."""
    return _hooks(model, graph, ablated_writes, amount.to(ablated_writes.device), soft=True)


def _hooks(model, graph, ablated_writes, amount, soft: bool) -> list:
    real = graph.real_edges.to(ablated_writes.device)
    amount = amount.to(ablated_writes.dtype) * real
    diff = ablated_writes.clone()
    hooks = writer_hooks(model, graph, diff, sign=-1.0, detach=not soft)
    for site in reader_sites(graph):
        cols = list(site.cols)
        columns = amount[..., cols]  # [(batch,) n_forward, n_ports]
        # a soft mask keeps every real edge in the pass so each gets its gradient
        present = real[:, cols] if soft else columns != 0
        rows = present.any(dim=1).nonzero().flatten()
        if len(rows) == 0:
            continue  # no ablated edge enters this site: leave it untouched (exactly clean)
        upto = int(rows.max()) + 1
        if columns.dim() == 3:  # per row: [batch, 1, n_ports, U], broadcast over positions
            weights = columns[:, :upto].transpose(1, 2).unsqueeze(1)
        else:
            weights = columns[:upto].T.contiguous()  # [n_ports, U]

        def patch(t, hook, upto=upto, weights=weights, per_head=site.per_head):
            part = diff[:, :, :upto]
            if soft:  # later writer hooks update diff in place; autograd needs this copy
                part = part.clone()
            correction = torch.matmul(weights, part)  # [b, p, n_ports, d]
            if not per_head:
                correction = correction.squeeze(2)
            # .to: with a device_map the layers (and t) may live on other devices than diff
            return t + correction.to(device=t.device, dtype=t.dtype)

        hooks.append((site.hook, patch))
    return hooks


def _position_hooks(model, graph, ablated_writes, ablate, spans) -> list:
    """:func:`ablation_hooks` with a span axis: each token's ablated-edge columns are those of
    its span, so the correction is a per-token matmul ``W[b,p] @ diff[b,p, :U]``."""
    if spans is None or spans.shape != ablated_writes.shape[:2]:
        raise DataError(
            "a position-aware ablation mask [n_spans, F, K] needs the batch's spans [batch, pos]"
        )
    device = ablated_writes.device
    ablate = ablate.to(device) & graph.real_edges.to(device)
    # one extra all-False span for padding tokens (span -1)
    padded = torch.cat([ablate, torch.zeros_like(ablate[:1])])
    index = torch.where(spans.to(device) >= 0, spans.to(device), ablate.shape[0])
    diff = ablated_writes.clone()
    hooks = writer_hooks(model, graph, diff, sign=-1.0)
    for site in reader_sites(graph):
        cols = list(site.cols)
        columns = padded[:, :, cols]  # [S + 1, n_forward, n_ports]
        rows = columns.any(dim=(0, 2)).nonzero().flatten()
        if len(rows) == 0:
            continue
        upto = int(rows.max()) + 1
        per_span = columns[:, :upto].transpose(1, 2).to(ablated_writes.dtype)  # [S+1, ports, U]
        weights = per_span[index]  # [b, p, n_ports, U]

        def patch(t, hook, upto=upto, weights=weights, per_head=site.per_head):
            correction = torch.matmul(weights, diff[:, :, :upto])  # [b, p, n_ports, d]
            if not per_head:
                correction = correction.squeeze(2)
            return t + correction.to(device=t.device, dtype=t.dtype)

        hooks.append((site.hook, patch))
    return hooks
