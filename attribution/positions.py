"""Position-aware attribution: the per-span terms of the score contraction, kept apart.

Every method's position-agnostic score is a sum over token positions; with a position axis
(:mod:`graphs.positions`) each span keeps its own part of that sum, so the scores are
``[n_spans, n_forward, n_backward]`` and sum over spans to today's scores exactly (same
terms, grouped). No extra model runs: only the final contraction changes.
"""

from __future__ import annotations

import torch

from attribution.data import DataError, PromptPairs
from graphs.positions import PositionError, SpanSchema, check_spans, token_spans


def with_positions(
    data: PromptPairs,
    positions: str | SpanSchema = "tokens",
    spans: torch.Tensor | None = None,
    corrupted_spans: torch.Tensor | None = None,
) -> PromptPairs:
    """``data`` with a position axis: ``"tokens"`` (one span per token position; prompts of
    one length) or a :class:`~graphs.positions.SpanSchema` with ``spans`` (long ``[n, pos]``,
    the span of every token, ``-1`` at padding; see :func:`graphs.positions.spans_from_starts`)
    and, when the corrupted prompts were split separately, ``corrupted_spans`` (which must
    equal ``spans``). Raises PositionError before any model work when they do not fit."""
    if isinstance(positions, str):
        if positions != "tokens":
            raise PositionError(f"positions must be 'tokens' or a SpanSchema, got {positions!r}")
        if spans is not None:
            raise PositionError("positions='tokens' takes no spans; pass a SpanSchema with them")
        spans = token_spans(data.attention_mask)
        schema = SpanSchema.tokens(data.n_pos)
    elif isinstance(positions, SpanSchema):
        if spans is None:
            raise PositionError(
                f"a span schema ({', '.join(positions.names)}) needs each prompt's spans: pass "
                "spans=[n, pos] (graphs.positions.spans_from_starts builds them)"
            )
        schema = positions
        spans = torch.as_tensor(spans).long()
    else:
        raise PositionError(f"positions must be 'tokens' or a SpanSchema, got {positions!r}")
    check_spans(spans, data.attention_mask, len(schema), corrupted_spans)
    out = data.select(slice(None))
    out.spans, out.span_names = spans, schema.names
    return out


def contract_by_span(
    scores: torch.Tensor,
    delta: torch.Tensor,
    grads: torch.Tensor,
    first: int,
    port_chunk: int | None,
    spans: torch.Tensor,
) -> None:
    """``scores[s, first : first + F'] += Σ_{(b,p) in span s} Σ_d delta[b,p,f,d]·grads[b,p,k,d]``.

    ``scores`` ``[n_spans, F, K]``; ``delta`` ``[b, p, F', d]``; ``grads`` ``[b, p, K, d]``;
    ``spans`` long ``[b, p]`` (``-1``: padding, skipped). When every prompt of the batch has
    the same spans (always for token positions), one batched matmul over positions gives
    the per-position terms, added into their spans; otherwise each span gathers its tokens."""
    if scores.dim() != 3:
        raise DataError(
            f"position-aware scores must be [n_spans, F, K], got shape {tuple(scores.shape)}"
        )
    spans = spans.to(delta.device)
    f_rows = slice(first, first + delta.shape[2])
    n_ports = grads.shape[2]
    step = port_chunk or n_ports
    same = bool((spans == spans[:1]).all())
    if same:
        keep = (spans[0] >= 0).nonzero().flatten()
        target = spans[0, keep]
        # [p, F', b·d]: positions become the batch axis of one bmm
        flat = delta[:, keep].permute(1, 2, 0, 3).reshape(len(keep), delta.shape[2], -1)
        flat = flat.to(scores.dtype)
        for start in range(0, n_ports, step):
            cols = slice(start, min(start + step, n_ports))
            g = grads[:, keep, cols].permute(1, 0, 3, 2).reshape(len(keep), -1, cols.stop - start)
            g = g.to(scores.dtype)  # [p, b·d, K']
            scores[:, f_rows, cols].index_add_(0, target, torch.bmm(flat, g))
        return
    for s in range(scores.shape[0]):
        where = spans == s
        if not bool(where.any()):
            continue
        d_s = delta[where].permute(1, 0, 2).reshape(delta.shape[2], -1).to(scores.dtype)
        for start in range(0, n_ports, step):
            cols = slice(start, min(start + step, n_ports))
            g = grads[:, :, cols][where].permute(1, 0, 2).reshape(cols.stop - start, -1)
            scores[s, f_rows, cols] += d_s @ g.to(scores.dtype).T


__all__ = ["contract_by_span", "with_positions"]
