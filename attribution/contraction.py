"""The score contraction of the gradient methods: ``Σ_{b,p,d} Δ[b,p,f,d]·g[b,p,k,d]``.

The buffers keep their natural ``[b, p, ·, d]`` layout: one batched matmul over the ``b·p``
token rows gives every token's ``[F', K']`` terms, summed over tokens (or into each token's
span, for position-aware scores) without first copying ``Δ`` and ``g`` into matrix layouts
(on GPT-2 small those copies took longer than the products). Only real edges are computed:
the ports of one reader site are fed by a prefix of the upstream nodes (those that come
before it), so the ports split into blocks of columns that each read a prefix of the rows.
"""

from __future__ import annotations

import torch

from attribution.data import DataError


def score_blocks(real: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(rows, first, stop)`` blocks covering the columns of ``real`` (bool ``[F, K]``):
    ports ``first..stop-1`` are fed by upstream nodes ``0..rows-1`` at most. Consecutive
    ports with the same number of feeders share a block; ports fed by none are left out.
    Where a port's feeders are not a prefix, the block still covers all rows up to its last
    feeder (a superset: callers keep real edges only)."""
    n_rows = real.shape[0]
    any_real = real.any(0)
    last = n_rows - real.flip(0).to(torch.int8).argmax(0)  # last feeder + 1
    counts = torch.where(any_real, last, 0).tolist()
    blocks: list[tuple[int, int, int]] = []
    for col, rows in enumerate(counts):
        if blocks and blocks[-1][0] == rows and blocks[-1][2] == col:
            blocks[-1] = (rows, blocks[-1][1], col + 1)
        elif rows:
            blocks.append((rows, col, col + 1))
    return blocks


def contract(
    scores: torch.Tensor,
    delta: torch.Tensor,
    grads: torch.Tensor,
    first: int = 0,
    *,
    real: torch.Tensor | None = None,
    port_chunk: int | None = None,
    spans: torch.Tensor | None = None,
) -> None:
    """``scores[first : first + F', k] += Σ_{b,p,d} delta[b,p,f,d]·grads[b,p,k,d]`` in the
    scores' dtype (float32 or float64), whatever the activations' dtype.

    ``delta`` ``[b, p, F', d]`` holds upstream nodes ``first..first+F'-1``; ``grads``
    ``[b, p, K, d]``. ``real`` (bool ``[F, K]``, the graph's real edges): only blocks holding
    real edges are computed, the other entries are left untouched (default: all). At most
    ``port_chunk`` ports are contracted at once, which bounds the float32 working copies on
    16-bit models. With ``spans`` (long ``[b, p]``, ``-1`` at padding; see
    :mod:`graphs.positions`) ``scores`` is ``[n_spans, F, K]`` and each token's terms go to
    its span (the same terms as without spans, grouped)."""
    if spans is not None and scores.dim() != 3:
        raise DataError(
            f"position-aware scores must be [n_spans, F, K], got shape {tuple(scores.shape)}"
        )
    b, p, n_rows, d = delta.shape
    n_ports = grads.shape[2]
    dtype = scores.dtype
    rows_d = delta.reshape(b * p, n_rows, d).to(dtype)  # a view unless the dtype differs
    cols_g = grads.reshape(b * p, n_ports, d)
    if real is None:
        blocks = [(first + n_rows, 0, n_ports)]
    else:
        blocks = score_blocks(real.to(torch.bool))
    step = port_chunk or n_ports
    if spans is not None:
        spans = spans.to(delta.device)
        same = bool((spans == spans[:1]).all())
        # same spans in every prompt (always for token positions): sum over the batch first
        keep = (spans[0] if same else spans.flatten()) >= 0
        target = (spans[0] if same else spans.flatten())[keep]
    for up, c0, c1 in blocks:
        n = min(up, first + n_rows) - first
        if n <= 0:
            continue
        for start in range(c0, c1, step):
            stop = min(start + step, c1)
            g = cols_g[:, start:stop].to(dtype)
            terms = torch.bmm(rows_d[:, :n], g.transpose(1, 2))  # [b·p, n, K']
            if spans is None:
                scores[first : first + n, start:stop] += terms.sum(0)
                continue
            if same:
                terms = terms.view(b, p, n, stop - start).sum(0)
            scores[:, first : first + n, start:stop].index_add_(0, target, terms[keep])


__all__ = ["contract", "score_blocks"]
