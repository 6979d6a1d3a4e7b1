"""Token ids a whitespace-separated piece at a time, for tokenizers that split on whitespace
first: the fast path of :func:`circuits.tasks.encode.token_ids` on large prompt files.

A tokenizer whose pipeline has no normalizer, starts its pre-tokenization by splitting on
whitespace and dropping it (``WhitespaceSplit``, ``Whitespace`` or ``BertPreTokenizer``, alone
or first in a sequence), has no added token holding whitespace, and whose post-processor only
puts special tokens before the text, tokenises every whitespace-separated piece on its own:
each later pre-tokenizer and the model work inside one piece. So the ids of a text are its
leading special tokens followed by the ids of each piece, and a file of 200,000 rows, whose
800,000 texts hold a few hundred distinct pieces, needs the tokenizer for those pieces only.
Every bundled model's tokenizer is of this kind; any other goes the usual way.

Why not trust that reading alone: a sample of texts is also tokenised whole and compared,
and any difference sends every text the usual way. Texts with whitespace on which Python's
``str.split`` and the tokenizer's Rust ``char::is_whitespace`` could disagree (anything not
ASCII, and the ASCII separators 0x1C-0x1F) are tokenised whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain, compress
from operator import itemgetter
from typing import Any

__all__ = [
    "continuation_tails",
    "joined_ids",
    "piecewise_ids",
    "piecewise_lengths",
    "whitespace_first",
]

_WHITESPACE_FIRST = {"WhitespaceSplit", "Whitespace", "BertPreTokenizer"}
_SEPARATOR = re.compile("[\x1c-\x1f]")  # whitespace to Python, not to Rust
_SAMPLE = 64  # texts tokenised whole to confirm the reading of the pipeline
_CHUNK = 20_000  # texts joined at a time to collect their pieces (bounds the memory)


def _leading_specials(post: dict | None) -> bool:
    """Whether the post-processor adds nothing after the text."""
    if post is None or post.get("type") == "ByteLevel":  # ByteLevel only trims offsets
        return True
    if post.get("type") != "TemplateProcessing":
        return False
    kinds = [next(iter(piece)) for piece in post.get("single") or []]
    return "Sequence" in kinds and kinds.index("Sequence") == len(kinds) - 1


def _component(part: Any) -> dict | None:
    """A pipeline component's own description (not the whole tokenizer's, which holds the
    vocabulary: serialising that on every call would cost more than the shortcut saves)."""
    return None if part is None else json.loads(part.__getstate__())


def whitespace_first(backend: Any) -> bool:
    """Whether the ``tokenizers.Tokenizer`` ``backend`` tokenises each whitespace-separated
    piece on its own (see the module docstring)."""
    try:
        if backend.normalizer is not None:
            return False
        pre = _component(backend.pre_tokenizer) or {}
        post = _component(backend.post_processor)
        added = [t.content for t in backend.get_added_tokens_decoder().values()]
    except (AttributeError, ValueError, TypeError):
        return False
    first = (pre.get("pretokenizers") or [{}])[0] if pre.get("type") == "Sequence" else pre
    if first.get("type") not in _WHITESPACE_FIRST:
        return False
    if any(any(ch.isspace() for ch in content) for content in added):
        return False
    return _leading_specials(post)


def _plain(text: str) -> bool:
    return text.isascii() and _SEPARATOR.search(text) is None


def piecewise_ids(backend: Any, texts: Sequence[str]) -> list[list[int]] | None:
    """Token ids of each text with the special tokens, a piece at a time; None when the
    tokenizer is not of the kind this module reads, or the sample disagrees, and for at
    most :data:`_SAMPLE` texts (the sample would be every text: the pieces would only add
    work, e.g. on every training batch)."""
    if len(texts) <= _SAMPLE or not whitespace_first(backend):
        return None
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    lead = backend.encode("", add_special_tokens=True).ids
    plain = [_plain(t) for t in texts]
    words = list(set(chain.from_iterable(map(str.split, compress(texts, plain)))))
    table = dict(zip(words, (e.ids for e in encode(words, add_special_tokens=False)), strict=True))
    ids_of = table.__getitem__  # C-level lookups: 200,000 rows hold about 13 million pieces
    out = [[*lead, *chain.from_iterable(map(ids_of, t.split()))] if p else None
           for t, p in zip(texts, plain, strict=True)]  # fmt: skip
    sample = [k for k, p in enumerate(plain) if p][:_SAMPLE]
    whole = encode([texts[k] for k in sample], add_special_tokens=True)
    if any(out[k] != e.ids for k, e in zip(sample, whole, strict=True)):
        return None
    rest = [k for k, p in enumerate(plain) if not p]
    for k, e in zip(rest, encode([texts[k] for k in rest], add_special_tokens=True), strict=True):
        out[k] = e.ids
    return out  # type: ignore[return-value]


def joined_ids(
    backend: Any,
    prompts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    pairs: Sequence[tuple[int, str]],
) -> list[list[int]] | None:
    """Token ids of ``prompts[i] + c`` for each ``(i, c)`` of ``pairs``: ``prompt_ids[i]``
    followed by the ids of ``c``'s pieces, which is exact when the tokenizer splits on
    whitespace first, the prompt ends in a non-space and ``c`` starts with a space (the
    space separates their pieces). None unless every pair is such a pair (and the sample
    agrees) or for at most :data:`_SAMPLE` pairs; the caller then tokenises the texts whole."""
    if len(pairs) <= _SAMPLE or not whitespace_first(backend):
        return None
    joins = all(
        c[:1] == " " and prompts[i][-1:].strip() and _plain(prompts[i]) and _plain(c)
        for i, c in pairs
    )
    if not joins:
        return None
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    conts = list({c for _, c in pairs})  # a few distinct answers: each tokenised whole once
    lead = len(backend.encode("", add_special_tokens=True).ids)
    tails = {
        c: e.ids[lead:] for c, e in zip(conts, encode(conts, add_special_tokens=True), strict=True)
    }
    out = [[*prompt_ids[i], *tails[c]] for i, c in pairs]
    sample = range(min(_SAMPLE, len(pairs)))
    whole = encode([prompts[pairs[k][0]] + pairs[k][1] for k in sample], add_special_tokens=True)
    if any(out[k] != e.ids for k, e in zip(sample, whole, strict=True)):
        return None
    return out


def _measure(
    backend: Any, texts: Sequence[str], lead: int
) -> tuple[dict[str, list[int]], list[int]]:
    """The ids of every distinct whitespace-separated piece of ``texts`` and each text's
    token count (``lead`` special tokens and its pieces' ids), each text split once: a chunk's
    new pieces are tokenised before its lengths are summed."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    table: dict[str, list[int]] = {}
    size: dict[str, int] = {}
    lengths: list[int] = []
    for k in range(0, len(texts), _CHUNK):
        parts = list(map(str.split, texts[k : k + _CHUNK]))
        new = list(set(chain.from_iterable(parts)).difference(size))
        for word, e in zip(new, encode(new, add_special_tokens=False), strict=True):
            table[word], size[word] = e.ids, len(e.ids)
        count = size.__getitem__
        lengths += [lead + sum(map(count, p)) for p in parts]
    return table, lengths


def _all_plain(texts: Sequence[str]) -> list[bool]:
    """:func:`_plain` of each text, checked on all of them joined when that settles it."""
    joined = "\n".join(texts)
    if joined.isascii() and _SEPARATOR.search(joined) is None:
        return [True] * len(texts)
    return [_plain(t) for t in texts]


def piecewise_lengths(
    backend: Any, texts: Sequence[str], unk: int | None
) -> tuple[list[int], list[bool]] | None:
    """Each text's token count (special tokens included) and whether its ids hold ``unk``,
    from its pieces' ids without building any text's id list: what checking a large file
    needs of every row (a row with a problem is then tokenised in full for its message).
    None where :func:`piecewise_ids` would be None (the same sample of texts is compared)."""
    if len(texts) <= _SAMPLE or not whitespace_first(backend):
        return None
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    lead = backend.encode("", add_special_tokens=True).ids
    plain = _all_plain(texts)
    simple = list(compress(texts, plain))
    table, lengths = _measure(backend, simple, len(lead))
    sample = simple[:_SAMPLE]
    whole = encode(sample, add_special_tokens=True)
    ids_of = table.__getitem__
    if any([*lead, *chain.from_iterable(map(ids_of, t.split()))] != e.ids
           for t, e in zip(sample, whole, strict=True)):  # fmt: skip
        return None
    bad = {w for w, ids in table.items() if unk is not None and unk in ids}
    if unk is not None and unk in lead:
        flags = [True] * len(simple)
    else:  # no piece holding the unknown token: the common case, no second pass
        flags = [not bad.isdisjoint(t.split()) for t in simple] if bad else [False] * len(simple)
    if len(simple) == len(texts):
        return lengths, flags
    rest = [t for t, p in zip(texts, plain, strict=True) if not p]
    done = iter(zip(lengths, flags, strict=True))
    other = iter([(len(e.ids), unk is not None and unk in e.ids)
                  for e in encode(rest, add_special_tokens=True)])  # fmt: skip
    merged = [next(done) if p else next(other) for p in plain]
    return [n for n, _ in merged], [f for _, f in merged]


def continuation_tails(
    backend: Any, prompts: Sequence[str], pairs: Sequence[tuple[int, str]]
) -> dict[str, list[int]] | None:
    """The ids each continuation ``c`` of ``pairs`` (``(prompt index, c)``) adds after its
    prompt: the same for every prompt, by the reasoning of :func:`joined_ids`, so the ids of
    ``prompts[i] + c`` are those of ``prompts[i]`` followed by ``c``'s tail. None unless every
    pair joins that way (and a sample of pairs, tokenised whole, agrees) or for at most
    :data:`_SAMPLE` pairs."""
    if len(pairs) <= _SAMPLE or not whitespace_first(backend):
        return None
    conts = list(set(map(itemgetter(1), pairs)))
    used = [prompts[i] for i in set(map(itemgetter(0), pairs))]
    if not all(c[:1] == " " for c in conts) or not all(p[-1:].strip() for p in used):
        return None
    if not all(_all_plain(conts)) or not all(_all_plain(used)):
        return None
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    lead = len(backend.encode("", add_special_tokens=True).ids)
    tails = {
        c: e.ids[lead:] for c, e in zip(conts, encode(conts, add_special_tokens=True), strict=True)
    }
    sample = pairs[:_SAMPLE]
    alone = encode([prompts[i] for i, _ in sample], add_special_tokens=True)
    whole = encode([prompts[i] + c for i, c in sample], add_special_tokens=True)
    if any(a.ids + tails[c] != w.ids for (_, c), a, w in zip(sample, alone, whole, strict=True)):
        return None
    return tails
