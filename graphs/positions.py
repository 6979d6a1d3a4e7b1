"""The position axis of a graph: raw token positions or a schema of named spans.

A position-aware graph scores every edge once per *span*: ``position_scores`` is
``[n_spans, n_forward, n_backward]`` and sums over its first axis to the position-agnostic
``scores``. Each prompt maps its tokens onto span indices with a long ``[n, pos]`` tensor
(``-1`` at padding); spans run left to right, each a contiguous run of tokens, and every
prompt has the same spans (their token lengths may differ between prompts, never between a
clean prompt and its corrupted partner).

With ``positions="tokens"`` the spans are the token positions themselves (``"0"``, ``"1"``,
...), so all prompts must have one length.

Attention edges across positions need no edges of their own: an edge ``(s, u -> v)`` is the
write of ``u`` at the tokens of span ``s`` entering the input of ``v`` at those same tokens.
For a head's query port that is the query position; for its key and value ports it is the
key position, read by every later query through the head's attention (which is inside the
node, as in PEAP). So a graph of ``E`` edges has ``S·E`` position-aware edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from graphs.errors import CircuitDiscoveryError


class PositionError(CircuitDiscoveryError, ValueError):
    """Positions or a span schema that do not fit the prompts; the message names the prompt
    and the fix."""


@dataclass(frozen=True)
class SpanSchema:
    """Named spans, in prompt order (e.g. IOI's ``("prefix", "IO", "and", "S1", "S1+1", ...)``)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if not names:
            raise PositionError("a span schema needs at least one span")
        if len(set(names)) != len(names):
            raise PositionError(f"span names repeat: {list(names)}; give each span its own name")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def tokens(cls, n_pos: int) -> SpanSchema:
        """One span per token position, named ``"0" .. str(n_pos - 1)``."""
        return cls(tuple(str(i) for i in range(n_pos)))


def token_spans(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[n, pos]`` span index = token position; PositionError when prompts differ in length
    (token positions then mean different things in different prompts)."""
    mask = torch.as_tensor(attention_mask).long()
    lengths = mask.sum(dim=1)
    if len(lengths) and not bool((lengths == lengths[0]).all()):
        i = int(torch.nonzero(lengths != lengths[0]).flatten()[0])
        raise PositionError(
            f"positions='tokens' needs prompts of one length, but prompt 0 has "
            f"{int(lengths[0])} tokens and prompt {i} has {int(lengths[i])}; use "
            "positions='schema' (named spans) or prompts of equal length"
        )
    n, pos = mask.shape
    spans = torch.arange(pos).expand(n, pos).clone()
    return torch.where(mask.bool(), spans, -1)


def spans_from_starts(
    starts: Sequence[Sequence[int]], lengths: Sequence[int], n_pos: int, schema: SpanSchema
) -> torch.Tensor:
    """``[n, n_pos]`` span indices from each prompt's span start tokens (``starts[i][s]``:
    the first token of span ``s`` in prompt ``i``; a span ends where the next begins, the last
    at the prompt's ``lengths[i]``). Empty spans are allowed; spans must start at token 0,
    stay in order and within the prompt."""
    out = torch.full((len(starts), n_pos), -1, dtype=torch.long)
    for i, (row, length) in enumerate(zip(starts, lengths, strict=True)):
        row = [int(x) for x in row]
        if len(row) != len(schema):
            raise PositionError(
                f"prompt {i} gives {len(row)} span starts, the schema has {len(schema)} spans "
                f"({', '.join(schema.names)}); give one start per span"
            )
        if row[0] != 0:
            raise PositionError(
                f"prompt {i}: the first span ({schema.names[0]}) starts at token {row[0]}, so "
                f"tokens 0..{row[0] - 1} are in no span; the spans must cover the prompt"
            )
        for s in range(1, len(row)):
            if row[s] < row[s - 1]:
                raise PositionError(
                    f"prompt {i}: span {schema.names[s]} starts at token {row[s]}, before span "
                    f"{schema.names[s - 1]} (token {row[s - 1]}); spans must be in prompt order"
                )
        if row[-1] > length or length > n_pos:
            raise PositionError(
                f"prompt {i}: span {schema.names[-1]} starts at token {row[-1]} but the prompt has "
                f"{length} tokens; positions beyond the prompt are not allowed"
            )
        bounds = row + [length]
        for s in range(len(row)):
            out[i, bounds[s] : bounds[s + 1]] = s
    return out


def check_spans(
    spans: torch.Tensor,
    attention_mask: torch.Tensor,
    n_spans: int,
    corrupted_spans: torch.Tensor | None = None,
) -> None:
    """Raise PositionError unless ``spans`` (long ``[n, pos]``) maps every real token to a span
    in ``0 .. n_spans - 1`` (and padding to ``-1``), in prompt order, and (when given) the
    corrupted prompts' spans equal the clean ones token for token."""
    mask = torch.as_tensor(attention_mask).bool()
    if spans.shape != mask.shape:
        raise PositionError(
            f"spans have shape {tuple(spans.shape)}, the prompts {tuple(mask.shape)}; give one "
            "span index per token"
        )
    uncovered = torch.nonzero(mask & ((spans < 0) | (spans >= n_spans)))
    if len(uncovered):
        i, j = (int(x) for x in uncovered[0])
        raise PositionError(
            f"prompt {i}: token {j} is in no span of the schema (span index "
            f"{int(spans[i, j])}, the schema has {n_spans}); the spans must cover the prompt"
        )
    beyond = torch.nonzero(~mask & (spans != -1))
    if len(beyond):
        i, j = (int(x) for x in beyond[0])
        raise PositionError(
            f"prompt {i}: position {j} is beyond the prompt ({int(mask[i].sum())} tokens) but "
            f"has span {int(spans[i, j])}; positions beyond the prompt are not allowed"
        )
    real = torch.where(mask, spans, torch.iinfo(torch.long).max)
    backwards = torch.nonzero(mask[:, 1:] & (real[:, 1:] < real[:, :-1]))
    if len(backwards):
        i, j = (int(x) for x in backwards[0])
        raise PositionError(
            f"prompt {i}: token {j + 1} has span {int(spans[i, j + 1])} after span "
            f"{int(spans[i, j])}; spans must be contiguous and in prompt order"
        )
    if corrupted_spans is not None and not torch.equal(corrupted_spans, spans):
        bad = torch.nonzero((corrupted_spans != spans).any(dim=1)).flatten()
        i = int(bad[0]) if len(bad) else 0
        raise PositionError(
            f"prompt {i}: the corrupted prompt's spans {corrupted_spans[i].tolist()} differ from "
            f"the clean prompt's {spans[i].tolist()}; each span must have the same tokens in "
            "both (choose corrupted words of the same token length)"
        )


def span_token_masks(spans: torch.Tensor, n_spans: int) -> torch.Tensor:
    """Float-free bool ``[n_spans, n, pos]``: which tokens each span holds."""
    return spans.unsqueeze(0) == torch.arange(n_spans, device=spans.device).view(-1, 1, 1)
