"""Text examples → token tensors (:class:`attribution.PromptPairs`).

Answers are tokenised *in context*: an answer's id is whatever the tokenizer makes of
``prompt + answer`` beyond the tokens of ``prompt``, and it must be exactly one token. That
is right for the bundled word-level tokenizer and for BPE tokenizers (GPT-2 writes " Mary"
as one token with its leading space, and may split "1745" differently from "17" + "45").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from attribution.data import DataError, PromptPairs
from attribution.positions import with_positions
from circuits.tasks.base import Example
from circuits.tasks.pieces import continuation_tails, joined_ids, piecewise_ids, piecewise_lengths
from circuits.tasks.spans import char_problems, token_offsets, token_starts
from graphs.positions import PositionError, SpanSchema, spans_from_starts

__all__ = [
    "continuation_ids",
    "encode_examples",
    "extended_ids",
    "measured_tokens",
    "pad_id",
    "pad_rows",
    "span_tensor",
    "token_ids",
    "unknown_id",
    "unknown_problem",
    "unknown_word",
]


def _backend(tokenizer: Any) -> Any:
    """The ``tokenizers`` backend to encode with: a raw ``tokenizers.Tokenizer`` itself, or a
    fast ``transformers`` tokenizer's backend unless it truncates or pads (then None: the
    tokenizer's own call, so a long prompt is never cut short)."""
    if hasattr(tokenizer, "encode_batch"):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return None
    return backend


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text with the tokenizer's special tokens (e.g. a leading BOS).

    Accepts a ``transformers`` tokenizer or a raw ``tokenizers.Tokenizer``. A fast
    ``transformers`` tokenizer is run through its ``tokenizers`` backend in one batch, which
    gives the same ids without a Python conversion per text (the per-row cost that made
    checking a large prompt file slow), each distinct text once; one whose backend truncates
    or pads goes the slow way, so a long prompt is never cut short. A tokenizer that splits
    on whitespace first (every bundled one) tokenises each distinct piece of the texts once
    (:mod:`circuits.tasks.pieces`).
    """
    backend = _backend(tokenizer)
    if backend is None:
        return list(tokenizer(list(texts), add_special_tokens=True)["input_ids"])
    fast = piecewise_ids(backend, texts)  # a piece at a time where that is exact
    if fast is not None:
        return fast
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # fast: no offsets
    unique = list(dict.fromkeys(texts))  # a prompt shared by rows is encoded once
    if len(unique) == len(texts):
        return [e.ids for e in encode(unique, add_special_tokens=True)]
    ids = dict(zip(unique, (e.ids for e in encode(unique, add_special_tokens=True)), strict=True))
    return [list(ids[t]) for t in texts]  # copies: callers may change a row


def extended_ids(
    tokenizer: Any,
    prompts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    pairs: Sequence[tuple[int, str]],
) -> list[list[int]]:
    """Token ids of ``prompts[i] + c`` for each ``(i, c)`` of ``pairs`` (an answer or
    distractor after its prompt), with the special tokens; ``prompt_ids[i]`` are the ids of
    ``prompts[i]``, reused where that is exact (:func:`circuits.tasks.pieces.joined_ids`)."""
    backend = _backend(tokenizer)
    joined = None if backend is None else joined_ids(backend, prompts, prompt_ids, pairs)
    if joined is not None:
        return joined
    return token_ids(tokenizer, [prompts[i] + c for i, c in pairs]) if pairs else []


def measured_tokens(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[tuple[int, str]], unk: int | None
) -> tuple[list[int], list[bool], dict[str, list[int]]] | None:
    """What checking many rows needs, without building id lists: each text's token count and
    whether its ids hold ``unk`` (:func:`circuits.tasks.pieces.piecewise_lengths`), and the
    ids each continuation of ``pairs`` (``(text index, continuation)``) adds after its text
    (:func:`circuits.tasks.pieces.continuation_tails`); None when the tokenizer is not read
    a piece at a time (the caller then tokenises in full)."""
    backend = _backend(tokenizer)
    measured = None if backend is None else piecewise_lengths(backend, texts, unk)
    if measured is None:
        return None
    tails = continuation_tails(backend, texts, pairs) if pairs else {}
    return None if tails is None else (*measured, tails)


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id: its pad token, else its end-of-sequence token, else 0."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad) if pad is not None else 0


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id rows: long ``[n, longest]`` tokens and their 0/1 attention mask."""
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return tokens, mask


def unknown_id(tokenizer: Any) -> int | None:
    """The id :func:`unknown_word` looks for: the tokenizer's unknown token, None when it has
    none or it is also a special token it adds (GPT-2's is its end token; byte-level
    tokenizers never produce it). Look it up once for many texts: the lookups are slow."""
    unk = getattr(tokenizer, "unk_token_id", None)
    special = {getattr(tokenizer, f"{n}_token_id", None) for n in ("bos", "eos", "pad")}
    return None if unk is None or unk in special else unk


def unknown_word(tokenizer: Any, text: str, ids: Sequence[int]) -> str | None:
    """The first word of ``text`` the tokenizer turned into its unknown token
    (:func:`unknown_id`), else None."""
    unk = unknown_id(tokenizer)
    if unk is None or unk not in ids:
        return None
    try:
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        start, end = offsets[list(ids).index(unk)]
        return text[start:end]
    except (TypeError, KeyError, NotImplementedError, IndexError, ValueError):
        return text  # a tokenizer without offsets: name the whole text


def unknown_problem(
    tokenizer: Any, unk: int | None, text: str, ids: Sequence[int], where: str
) -> str | None:
    """The problem of a text whose ids hold the unknown token ``unk`` (:func:`unknown_id`),
    naming the word (:func:`unknown_word`) after ``where``; None when there is none."""
    if unk is None or unk not in ids:  # the common case, without the slow lookups
        return None
    word = unknown_word(tokenizer, text, ids)
    if word is None:
        return None
    name = getattr(tokenizer, "unk_token", None) or "the unknown token"
    return (
        f"{where} has the word {word!r}, which this tokenizer does not know (it would become "
        f"{name}); use words of the model's vocabulary, or a model whose tokenizer has it"
    )


def _refuse_unknown(
    tokenizer: Any, unk: int | None, text: str, ids: Sequence[int], where: str
) -> None:
    problem = unknown_problem(tokenizer, unk, text, ids, where)
    if problem is not None:
        raise DataError(problem)


def continuation_ids(
    tokenizer: Any,
    prompts: Sequence[str],
    prompt_ids: Sequence[list[int]],
    conts: Sequence[Sequence[str]],
    what: str,
) -> list[list[int]]:
    pairs = [(i, c) for i, cs in enumerate(conts) for c in cs]
    full = extended_ids(tokenizer, prompts, prompt_ids, pairs)
    unk = unknown_id(tokenizer)
    out: list[list[int]] = []
    k = 0
    for i, (ids, cs) in enumerate(zip(prompt_ids, conts, strict=True)):
        row = []
        for c in cs:
            extended = full[k]
            k += 1
            _refuse_unknown(tokenizer, unk, prompts[i] + c, extended, f"example {i}: {what} {c!r}")
            if extended[: len(ids)] != ids or len(extended) != len(ids) + 1:
                raise DataError(
                    f"example {i}: {what} {c!r} is not a single token after its prompt "
                    f"(prompt {prompts[i]!r} gives {len(ids)} tokens, with the {what} "
                    f"{len(extended)}); use a tokenizer that has it as one token, or another task"
                )
            row.append(extended[-1])
        out.append(row)
    return out


def _rows(rows: list[list[int]]) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def span_tensor(
    tokenizer: Any,
    texts: Sequence[str],
    char_starts: Sequence[Sequence[int]],
    schema: SpanSchema,
    whats: Sequence[str],
) -> torch.Tensor:
    """Long ``[n, longest]`` span index of every token of ``texts`` (``-1`` at padding) from
    each text's character span starts (:mod:`circuits.tasks.spans`); PositionError, beginning
    with the text's ``whats[i]``, when the starts do not fit the text or its tokens."""
    offsets = token_offsets(tokenizer, texts)
    rows = []
    for text, starts, tokens, what in zip(texts, char_starts, offsets, whats, strict=True):
        problems = char_problems(list(starts), text, schema, what)
        if problems:
            raise PositionError(problems[0])
        rows.append(token_starts(tokens, starts, text, schema, what))
    lengths = [len(t) for t in offsets]
    return spans_from_starts(rows, lengths, max(lengths), schema)


def _example_spans(
    examples: Sequence[Example], tokenizer: Any, schema: SpanSchema
) -> tuple[torch.Tensor, torch.Tensor]:
    for i, e in enumerate(examples):
        for side, starts in (("clean", e.span_starts), ("corrupted", e.corrupted_span_starts)):
            if not starts:
                raise PositionError(
                    f"example {i} has no {side} span starts, but the span schema has spans "
                    f"({', '.join(schema.names)}); fill Example.span_starts and "
                    "corrupted_span_starts (the character where each span begins) in the task's "
                    "sample, or encode without a schema"
                )
    clean = span_tensor(
        tokenizer,
        [e.clean for e in examples],
        [e.span_starts for e in examples],
        schema,
        [f"example {i}: the clean prompt" for i in range(len(examples))],
    )
    corrupted = span_tensor(
        tokenizer,
        [e.corrupted for e in examples],
        [e.corrupted_span_starts for e in examples],
        schema,
        [f"example {i}: the corrupted prompt" for i in range(len(examples))],
    )
    bad = [i for i in range(len(examples)) if not torch.equal(clean[i], corrupted[i])]
    if bad:
        i = bad[0]
        raise PositionError(
            f"example {i}: the corrupted prompt's spans (token span indices "
            f"{corrupted[i].tolist()}) differ from the clean prompt's ({clean[i].tolist()}) for "
            f"{examples[i].clean!r} vs {examples[i].corrupted!r}; each span must have as many "
            "tokens in both (choose corrupted words of the same token length)"
        )
    return clean, corrupted


def encode_examples(
    examples: Sequence[Example], tokenizer: Any, *, schema: SpanSchema | None = None
) -> PromptPairs:
    """Tokenise ``examples`` into right-padded prompt pairs read at each prompt's last token.

    With ``schema`` the pairs also get a position axis
    (:func:`attribution.positions.with_positions`): ``spans`` long ``[n, pos]``, each token's
    span index (``-1`` at padding), from the examples' character ``span_starts`` and
    ``corrupted_span_starts``, mapped onto the clean and the corrupted tokens separately
    (:mod:`circuits.tasks.spans`); the two must give the same token spans.

    Raises:
        DataError: a word the tokenizer does not know (it would become its unknown token), a
            corrupted prompt with a different number of tokens than its clean one, or an
            answer or distractor that is not exactly one token after its prompt.
        PositionError: (with ``schema``) an example without span starts, starts that do not
            fit its prompt, a tokenizer without character offsets, or corrupted spans of
            other token lengths than the clean ones; the message names the example.
    """
    if not examples:
        raise DataError("no examples to encode")
    clean = token_ids(tokenizer, [e.clean for e in examples])
    corrupted = token_ids(tokenizer, [e.corrupted for e in examples])
    unk = unknown_id(tokenizer)
    for i, (c, r) in enumerate(zip(clean, corrupted, strict=True)):
        _refuse_unknown(tokenizer, unk, examples[i].clean, c, f"example {i}: the clean prompt")
        _refuse_unknown(
            tokenizer, unk, examples[i].corrupted, r, f"example {i}: the corrupted prompt"
        )
        if len(c) != len(r):
            raise DataError(
                f"example {i}: the clean prompt has {len(c)} tokens but the corrupted one has "
                f"{len(r)} ({examples[i].clean!r} vs {examples[i].corrupted!r}); this tokenizer "
                "splits the swapped words differently, so patching positions would not line up"
            )
    answers = continuation_ids(
        tokenizer, [e.clean for e in examples], clean, [e.answers for e in examples], "answer"
    )
    distractors = continuation_ids(
        tokenizer,
        [e.clean for e in examples],
        clean,
        [e.distractors for e in examples],
        "distractor",
    )
    clean_t, mask = pad_rows(clean, pad_id(tokenizer))
    corrupted_t, _ = pad_rows(corrupted, pad_id(tokenizer))  # same lengths, so the same mask
    pairs = PromptPairs(
        clean=clean_t,
        corrupted=corrupted_t,
        answers=_rows(answers),
        distractors=_rows(distractors),
        attention_mask=mask,
    )
    if schema is None:
        return pairs
    spans, corrupted_spans = _example_spans(examples, tokenizer, schema)
    return with_positions(pairs, schema, spans, corrupted_spans)
