"""Built-in target prompts: the identity prompt and few-shot attribute extraction.

Each builder adapts the paper's prompt to the tokenizer and returns a :class:`TargetPrompt`:
the text and the token index of its placeholder (special tokens such as ``<bos>`` counted),
where the source state is patched in.

- :func:`identity_prompt`: ``"cat -> cat\\n1135 -> 1135\\nhello -> hello\\n?"`` (Ghandeharioun
  et al. 2024). Words the tokenizer does not have as one known token are replaced by words it
  has; a newline separator the tokenizer drops becomes ``" ; "``; a placeholder it does not
  know becomes the first candidate it does know (finally its unknown token, which is still
  one token, and whose state is overwritten anyway). By default the prompt ends at the
  placeholder, as the paper's does: the patched state's *next* token is read, which is what
  next-token evaluation ("prompt-id") needs. With ``query_arrow=True`` ``" ->"`` follows the
  placeholder, so the token read is the patched item *itself* (token identity, used by
  :func:`~circuits.patchscopes.evaluate.identity_heatmap`): for the bundled models
  ``"cat -> cat ; 1135 -> 1135 ; dog -> dog ; <unk> ->"``.
- :func:`attribute_prompt`: few-shot facts of :data:`circuits.tasks.entities.WORLD`, e.g.
  ``"Lona is a city in the country of Spain. x is a city in the country of"`` with the
  placeholder ``x`` standing for the entity.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from circuits.patchscopes.core import PatchscopeError, Site

__all__ = [
    "DEFAULT_REPLACEMENT_WORDS",
    "TargetPrompt",
    "attribute_prompt",
    "few_shot_prompt",
    "identity_prompt",
]

#: Words tried, in order, in place of demonstration words the tokenizer lacks.
DEFAULT_REPLACEMENT_WORDS: tuple[str, ...] = (
    "dog",
    "house",
    "water",
    "tree",
    "book",
    "river",
    "table",
    "song",
    "city",
    "apple",
    "music",
    "green",
)


@dataclass(frozen=True)
class TargetPrompt:
    """A target prompt: ``text`` and ``position``, the token index of its placeholder (as the
    tokenizer encodes ``text``, special tokens included)."""

    text: str
    position: int
    placeholder: str
    kind: str = "custom"
    shots: tuple[tuple[str, str], ...] = ()

    def site(self, layer: int) -> Site:
        """The :class:`Site` that patches this prompt's placeholder at ``layer``."""
        return Site(self.text, layer, self.position)


# --------------------------------------------------------------------------- tokenizer probes


def _ids(tokenizer: Any, text: str, special: bool = True) -> list[int]:
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        return list(tokenizer.encode(text, add_special_tokens=special).ids)
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _unk_id(tokenizer: Any) -> int | None:
    value = getattr(tokenizer, "unk_token_id", None)
    return int(value) if value is not None else None


def _unk_token(tokenizer: Any) -> str | None:
    return getattr(tokenizer, "unk_token", None)


def _appended(tokenizer: Any, prefix: str, piece: str) -> list[int] | None:
    """The ids ``piece`` adds after ``prefix`` (``None`` if tokenising it changes the prefix)."""
    before = _ids(tokenizer, prefix)
    after = _ids(tokenizer, prefix + piece)
    if after[: len(before)] != before:
        return None
    return after[len(before) :]


def _known_single(tokenizer: Any, prefix: str, piece: str) -> bool:
    """``piece`` after ``prefix`` is exactly one token, and not the unknown token."""
    added = _appended(tokenizer, prefix, piece)
    return added is not None and len(added) == 1 and added[0] != _unk_id(tokenizer)


def _known(tokenizer: Any, prefix: str, piece: str) -> bool:
    """``piece`` after ``prefix`` adds at least one token and no unknown token."""
    added = _appended(tokenizer, prefix, piece)
    return bool(added) and _unk_id(tokenizer) not in added


def _vocabulary_words(tokenizer: Any) -> list[str]:
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return sorted(w for w in vocab if w.isalpha() and w.islower() and len(w) >= 3)


def _pick_placeholder(tokenizer: Any, prefix: str, candidates: Sequence[str]) -> str:
    for cand in candidates:
        if _known_single(tokenizer, prefix, cand):
            return cand
    unk = _unk_token(tokenizer)
    if unk is not None:
        added = _appended(tokenizer, prefix, unk)
        if added is not None and len(added) == 1:
            return unk
    raise PatchscopeError(
        f"none of the placeholders {list(candidates)} is a single token for this tokenizer; "
        "pass placeholder=... with one that is"
    )


def _locate(tokenizer: Any, text: str, head: str) -> int:
    """Token index of the last token of ``head``, a prefix of ``text``, within ``text``."""
    full, part = _ids(tokenizer, text), _ids(tokenizer, head)
    if full[: len(part)] != part:
        raise PatchscopeError(
            f"cannot locate the placeholder: {head!r} does not tokenise as a prefix of {text!r}"
        )
    return len(part) - 1


# --------------------------------------------------------------------------- builders


def identity_prompt(
    tokenizer: Any,
    *,
    demos: Sequence[str] = ("cat", "1135", "hello"),
    placeholder: str | Sequence[str] = ("?", "x"),
    separator: str | None = None,
    arrow: str = "->",
    query_arrow: bool = False,
    replacements: Sequence[str] = DEFAULT_REPLACEMENT_WORDS,
    seed: int = 0,
) -> TargetPrompt:
    """The identity target prompt ``"cat -> cat\\n1135 -> 1135\\nhello -> hello\\n?"``,
    adapted to ``tokenizer``.

    Args:
        demos: demonstrated items; a word that is not one known token (alone and after a
            space) is replaced by the first unused word of ``replacements`` that is, then by a
            word of the tokenizer's vocabulary drawn with ``seed``; numbers may span several
            tokens but must not contain an unknown token.
        placeholder: the placeholder, or candidates tried in order; if none is one known
            token, the tokenizer's unknown token is used.
        separator: between demonstrations; ``None`` picks ``"\\n"`` if the tokenizer keeps it
            as a known token, else ``" ; "``.
        query_arrow: ``False`` (default) ends the prompt at the placeholder, the paper's
            prompt: the target run then predicts what follows the patched state (next-token
            evaluation). ``True`` appends ``" " + arrow``, so that the demonstrations make the
            model repeat the patched item (token identity); with it, next-token evaluation
            scores about 0, since the model copies the current token instead of predicting
            the next.

    Returns:
        a :class:`TargetPrompt` whose ``position`` is the placeholder's token index.
    """
    if separator is None:
        separator = "\n" if _known_single(tokenizer, "cat", "\n") else " ; "
    chosen: list[str] = []
    pool = [w for w in replacements if w not in demos]
    vocab_words: list[str] | None = None
    rng = random.Random(f"identity-prompt:{seed}")
    for item in demos:
        if item.isalpha():
            ok = _known_single(tokenizer, "", item) and _known_single(
                tokenizer, f"{item} ->", f" {item}"
            )
            if not ok:
                item = ""
                while pool and not item:
                    cand = pool.pop(0)
                    if cand not in chosen and _known_single(tokenizer, "", cand):
                        item = cand
                if not item:
                    if vocab_words is None:
                        vocab_words = [w for w in _vocabulary_words(tokenizer) if w not in chosen]
                        rng.shuffle(vocab_words)
                    while vocab_words and not item:
                        cand = vocab_words.pop()
                        if _known_single(tokenizer, "", cand):
                            item = cand
                if not item:
                    raise PatchscopeError(
                        "the tokenizer has no single-token word to use as a demonstration"
                    )
        elif not _known(tokenizer, "", item):
            raise PatchscopeError(f"demonstration {item!r} contains a token this tokenizer lacks")
        chosen.append(item)
    body = separator.join(f"{d} {arrow} {d}" for d in chosen)
    prefix = body + separator
    candidates = [placeholder] if isinstance(placeholder, str) else list(placeholder)
    mark = _pick_placeholder(tokenizer, prefix, candidates)
    head = prefix + mark
    text = head + (f" {arrow}" if query_arrow else "")
    return TargetPrompt(text, _locate(tokenizer, text, head), mark, kind="identity")


def few_shot_prompt(
    tokenizer: Any,
    template: str,
    examples: Sequence[tuple[str, str]],
    *,
    placeholder: str | Sequence[str] = ("x", "?"),
    separator: str = ". ",
    slot: str = "[E]",
) -> TargetPrompt:
    """``template`` (with ``slot`` for the subject) filled with each ``(subject, answer)``
    example followed by its answer, then filled with a placeholder and left open:
    ``"Lona is a city in the country of Spain. x is a city in the country of"``."""
    if slot not in template:
        raise PatchscopeError(f"template {template!r} has no {slot!r} slot for the subject")
    shots = [f"{template.replace(slot, s)} {a}" for s, a in examples]
    prefix = separator.join(shots) + (separator if shots else "")
    before, after = template.split(slot, 1)
    candidates = [placeholder] if isinstance(placeholder, str) else list(placeholder)
    mark = _pick_placeholder(tokenizer, prefix + before, candidates)
    head = prefix + before + mark
    return TargetPrompt(
        head + after,
        _locate(tokenizer, head + after, head),
        mark,
        "few-shot",
        tuple((s, a) for s, a in examples),
    )


def attribute_prompt(
    tokenizer: Any,
    attribute: str = "country",
    *,
    n_shots: int = 2,
    exclude: Sequence[str] = (),
    template: int = 0,
    seed: int = 0,
    world: Any = None,
    placeholder: str | Sequence[str] = ("x", "?"),
    separator: str = ". ",
) -> TargetPrompt:
    """A few-shot attribute-extraction prompt over :data:`circuits.tasks.entities.WORLD`:
    ``n_shots`` facts about cities drawn with ``seed`` (not in ``exclude``, with different
    values), then the template with the placeholder for the queried city."""
    from circuits.tasks.entities import TEMPLATES, WORLD

    world = WORLD if world is None else world
    if attribute not in TEMPLATES:
        raise PatchscopeError(f"unknown attribute {attribute!r}; choose from {list(TEMPLATES)}")
    if not 0 <= template < len(TEMPLATES[attribute]):
        raise PatchscopeError(
            f"template {template} is out of range: {attribute!r} has templates "
            f"0..{len(TEMPLATES[attribute]) - 1}"
        )
    rng = random.Random(f"attribute-prompt:{attribute}:{seed}")
    entities = [e for e in world.entities if e not in set(exclude)]
    rng.shuffle(entities)
    shots: list[tuple[str, str]] = []
    for e in entities:
        value = world.facts[e][attribute]
        if len(shots) < n_shots and value not in {v for _, v in shots}:
            shots.append((e, value))
    if len(shots) < n_shots:
        raise PatchscopeError(f"cannot draw {n_shots} shots with distinct {attribute} values")
    out = few_shot_prompt(
        tokenizer,
        TEMPLATES[attribute][template],
        shots,
        placeholder=placeholder,
        separator=separator,
    )
    return TargetPrompt(
        out.text, out.position, out.placeholder, f"attribute:{attribute}", out.shots
    )
