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

from attribution.sites import reader_sites, writer_hooks
from graphs import Graph


def ablation_hooks(model, graph: Graph, ablated_writes: torch.Tensor, ablate: torch.Tensor) -> list:
    """Hooks that ablate the edges in ``ablate`` (bool ``[n_forward, n_backward]``) during one
    forward pass on a batch whose ablated writes are ``ablated_writes``
    (``[batch, pos, n_forward, d_model]``, same batch layout as the run).

    ``diff = a(ablated) − a(this run)`` is kept in one buffer: it starts as the ablated writes
    and each writer hook subtracts its write as the pass reaches it. Each reader site then adds
    ``W^T @ diff[:, :, :U]`` with ``W`` the site's ablated-edge columns and ``U`` the upstream
    nodes that can reach it (a contiguous prefix in the layout), one broadcast matmul and no
    gathered copies."""
    ablate = ablate.to(ablated_writes.device) & graph.real_edges.to(ablated_writes.device)
    diff = ablated_writes.clone()
    hooks = writer_hooks(model, graph, diff, sign=-1.0)
    for site in reader_sites(graph):
        cols = list(site.cols)
        columns = ablate[:, cols]  # [n_forward, n_ports]
        rows = columns.any(dim=1).nonzero().flatten()
        if len(rows) == 0:
            continue  # no ablated edge enters this site: leave it untouched (exactly clean)
        upto = int(rows.max()) + 1
        weights = columns[:upto].T.to(ablated_writes.dtype).contiguous()  # [n_ports, U]

        def patch(t, hook, upto=upto, weights=weights, per_head=site.per_head):
            correction = torch.matmul(weights, diff[:, :, :upto])  # [b, p, n_ports, d]
            if not per_head:
                correction = correction.squeeze(2)
            # .to: with a device_map the layers (and t) may live on other devices than diff
            return t + correction.to(device=t.device, dtype=t.dtype)

        hooks.append((site.hook, patch))
    return hooks
