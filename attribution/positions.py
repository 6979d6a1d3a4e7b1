"""Position-aware attribution: the per-span terms of the score contraction, kept apart.

Every method's position-agnostic score is a sum over token positions; with a position axis
(:mod:`graphs.positions`) each span keeps its own part of that sum, so the scores are
``[n_spans, n_forward, n_backward]`` and sum over spans to today's scores exactly (same
terms, grouped). No extra model runs: only the final contraction changes
(:mod:`attribution.contraction`).
"""

from __future__ import annotations

import torch

from attribution.data import PromptPairs
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


__all__ = ["with_positions"]
