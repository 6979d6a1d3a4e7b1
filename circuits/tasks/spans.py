"""Spans of text → spans of tokens: where each span of a schema begins, in characters, mapped
onto the tokens a tokenizer makes of the prompt.

A span starts at a character offset of the prompt (the first at 0) and runs to the next
span's start (the last to the end). A token belongs to the span that holds its first
non-whitespace character, so a span may start at a word or at the space before it alike
(GPT-2's ``" Mary"`` and the bundled tokenizer's ``"Mary"`` land in the same span). A special
token the tokenizer adds (a leading ``<bos>``) belongs to the span of the token before it, or
to the first span when it leads. A token that holds characters of two spans, with
non-whitespace characters on both sides of a start, is an error: the tokenizer has no
boundary where the span begins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphs.positions import PositionError, SpanSchema

__all__ = ["char_problems", "token_offsets", "token_starts"]


def char_problems(starts: Sequence[int], text: str, schema: SpanSchema, what: str) -> list[str]:
    """What is wrong with character ``starts`` (one per span of ``schema``) of ``text``; each
    message begins with ``what`` (``"example 3: the clean prompt"``)."""
    names = schema.names
    if len(starts) != len(names):
        return [
            f"{what} gives {len(starts)} span starts, the schema has {len(names)} spans "
            f"({', '.join(names)}); give one start per span"
        ]
    if any(isinstance(s, bool) or not isinstance(s, int) for s in starts):
        return [f"{what}: span starts must be character offsets (integers), got {list(starts)}"]
    out = []
    if starts[0] != 0:
        out.append(
            f"{what}: the first span ({names[0]}) starts at character {starts[0]}, so "
            f"{text[: max(starts[0], 0)]!r} is in no span; the first span must start at 0"
        )
    for s in range(1, len(starts)):
        if starts[s] < starts[s - 1]:
            out.append(
                f"{what}: span {names[s]} starts at character {starts[s]}, before span "
                f"{names[s - 1]} (character {starts[s - 1]}); give the spans in prompt order"
            )
    beyond = [s for s in range(len(starts)) if starts[s] > len(text)]
    if beyond:
        s = beyond[0]
        out.append(
            f"{what}: span {names[s]} starts at character {starts[s]}, beyond the prompt "
            f"({len(text)} characters); spans must start within the prompt"
        )
    return out


def token_offsets(tokenizer: Any, texts: Sequence[str]) -> list[list[tuple[int, int] | None]]:
    """Each text's tokens as ``(start, end)`` character offsets, ``None`` for special tokens;
    the tokens are those of :func:`circuits.tasks.encode.token_ids`.

    Accepts a raw ``tokenizers.Tokenizer`` or a fast ``transformers`` tokenizer; any other
    raises PositionError (a span schema needs to know which characters each token covers).
    """
    texts = list(texts)
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        encodings = tokenizer.encode_batch(texts)
        rows = [(e.offsets, e.special_tokens_mask) for e in encodings]
    else:
        try:
            enc = tokenizer(
                texts,
                add_special_tokens=True,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
            )
            rows = list(zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=True))
        except (NotImplementedError, KeyError, TypeError, ValueError) as err:
            raise PositionError(
                f"the tokenizer {type(tokenizer).__name__} gives no character offsets ({err}), "
                "which a span schema needs to place tokens in spans; use a fast tokenizer "
                "(transformers AutoTokenizer with use_fast=True, or a tokenizers.Tokenizer)"
            ) from None
    out = []
    for offsets, special in rows:
        out.append(
            [
                None if sp or a == b else (int(a), int(b))
                for (a, b), sp in zip(offsets, special, strict=True)
            ]
        )
    return out


def _anchor(text: str, start: int, end: int) -> int:
    """The token's first non-whitespace character (its first character when it has none)."""
    for i in range(start, end):
        if not text[i].isspace():
            return i
    return start


def token_starts(
    offsets: Sequence[tuple[int, int] | None],
    char_starts: Sequence[int],
    text: str,
    schema: SpanSchema,
    what: str,
) -> list[int]:
    """The first token of each span (``spans_from_starts``' input) from the character starts
    of a checked prompt (:func:`char_problems`); PositionError, beginning with ``what``, when
    a token straddles a span start."""
    anchors: list[int] = []
    for span in offsets:
        if span is None:  # a special token: with the token before it (the first span if it leads)
            anchors.append(anchors[-1] if anchors else -1)
            continue
        a, b = span
        anchor = _anchor(text, a, b)
        anchors.append(anchor)
        for s, c in enumerate(char_starts):
            if anchor < c < b and text[c:b].strip():
                raise PositionError(
                    f"{what}: span {schema.names[s]} starts at character {c}, inside the token "
                    f"{text[a:b]!r} (characters {a}-{b}), so the tokenizer has no boundary "
                    "there; start the span where a token starts"
                )
    out = [0]
    for c in char_starts[1:]:
        out.append(sum(1 for x in anchors if x < c))
    return out
