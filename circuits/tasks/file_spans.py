"""The ``spans`` and ``corrupted_spans`` cells of a prompt file's rows, for position-aware
circuits.

A row's ``spans`` is a JSON object naming the spans of its clean prompt in prompt order, each
either where it begins (a character offset into the clean prompt, the first 0) or its text
(the texts, joined, must give the clean prompt)::

    "spans": {"prefix": 0, "IO": 5, "and": 9, "S1": 14, "rest": 18, "END": 55}
    "spans": {"prefix": "When ", "IO": "Mary", "and": " and ", "S1": "John", ...}

``corrupted_spans`` is the same for the corrupted prompt, with the same names. Without it,
each span of the corrupted prompt begins at the same word as in the clean prompt (words as
:data:`circuits.tasks.base.WORD_PATTERN` splits text), which needs both prompts to have as
many words and every span to begin at a word or the whitespace before one. In CSV the cell
holds the JSON object. Every row names the same spans in the same order; the spans' token
lengths are checked against the tokenizer later (:func:`circuits.tasks.files.token_problems`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from circuits.tasks.base import WORD_PATTERN
from circuits.tasks.spans import char_problems
from graphs.positions import PositionError, SpanSchema

__all__ = ["SPAN_FORMAT", "read_span_cells", "strict_object"]

#: How a spans cell is written, for error messages.
SPAN_FORMAT = (
    'write spans as {"name": start, ...} (character offsets into the prompt, the first 0) or '
    '{"name": "text", ...} (the prompt cut into pieces), in prompt order'
)


class DuplicateKey(ValueError):
    """A JSON object naming one key twice (a second span of one name would be lost); a signal
    caught in this module and turned into a problem report, never seen by a user."""


def strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' ``object_pairs_hook``: a dict, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} appears twice in one object; give it once")
        out[key] = value
    return out


def _cell(value: Any, csv_cell: bool, what: str) -> tuple[dict | None, str | None]:
    if csv_cell and isinstance(value, str):
        try:
            value = json.loads(value, object_pairs_hook=strict_object)
        except DuplicateKey as err:
            return None, f"{what}: {err}"
        except json.JSONDecodeError as err:
            return None, f"{what} is not valid JSON ({err.msg}); {SPAN_FORMAT}"
    if not isinstance(value, dict) or not value:
        return None, f"{what} must be a non-empty JSON object, got {value!r}; {SPAN_FORMAT}"
    return value, None


def _starts(spans: dict, text: str, what: str) -> tuple[list[int] | None, list[str]]:
    """Character starts from a spans object of offsets or of texts, and any problems."""
    values = list(spans.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        schema = SpanSchema(tuple(spans))
        problems = char_problems(values, text, schema, what)
        return (None if problems else values), problems
    if all(isinstance(v, str) for v in values):
        joined = "".join(values)
        if joined != text:
            at = next(
                (i for i, (a, b) in enumerate(zip(joined, text, strict=False)) if a != b),
                min(len(joined), len(text)),
            )
            return None, [
                f"{what}: the span texts join to {joined!r}, not the prompt {text!r} (they "
                f"differ from character {at}); the texts must be the prompt cut into pieces"
            ]
        starts, at = [], 0
        for v in values:
            starts.append(at)
            at += len(v)
        return starts, []
    return None, [f"{what}: the values must be all offsets or all texts, got {values!r}"]


def _word_starts(clean: str, corrupted: str, starts: list[int], names: tuple[str, ...],
                 where: str) -> tuple[list[int] | None, str | None]:  # fmt: skip
    """The corrupted starts that begin at the same words as the clean ``starts``."""
    words = [(m.start(), m.end()) for m in re.finditer(WORD_PATTERN, clean)]
    other = [m.start() for m in re.finditer(WORD_PATTERN, corrupted)]
    if len(words) != len(other):
        return None, (
            f"{where}: no corrupted_spans, and the corrupted prompt has {len(other)} words where "
            f"the clean one has {len(words)}, so its spans cannot be found word for word; give "
            "corrupted_spans (the same names, for the corrupted prompt)"
        )
    out = []
    for name, c in zip(names, starts, strict=True):
        inside = next(((a, b) for a, b in words if a < c < b), None)
        if inside is not None:
            return None, (
                f"{where}: no corrupted_spans, and span {name} starts inside the word "
                f"{clean[inside[0] : inside[1]]!r} of the clean prompt, so its start in the "
                "corrupted prompt is unknown; give corrupted_spans, or start the span at a word"
            )
        k = sum(1 for a, _ in words if a < c)  # the span begins at word k
        out.append(0 if c == 0 else other[k] if k < len(other) else len(corrupted))
    return out, None


def read_span_cells(
    row: dict, clean: str, corrupted: str, csv_cell: bool, where: str, problems: list[str]
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]] | None:
    """``(names, clean starts, corrupted starts)`` of a row's spans, ``((), (), ())`` when it
    has none, None (with ``problems`` added, each starting ``where``) when they are wrong."""
    cell, corrupted_cell = row.get("spans"), row.get("corrupted_spans")
    if cell in (None, ""):
        if corrupted_cell not in (None, ""):
            problems.append(f"{where}: corrupted_spans without spans; give spans too")
            return None
        return (), (), ()
    spans, problem = _cell(cell, csv_cell, f"{where}: spans")
    if spans is None:
        problems.append(problem)
        return None
    try:
        names = SpanSchema(tuple(spans)).names
    except PositionError as err:
        problems.append(f"{where}: {err}")
        return None
    starts, found = _starts(spans, clean, f"{where}: spans of the clean prompt")
    if starts is None:
        problems += found
        return None
    if corrupted_cell in (None, ""):
        corrupted_starts, problem = _word_starts(clean, corrupted, starts, names, where)
        if corrupted_starts is None:
            problems.append(problem)
            return None
        return names, tuple(starts), tuple(corrupted_starts)
    other, problem = _cell(corrupted_cell, csv_cell, f"{where}: corrupted_spans")
    if other is None:
        problems.append(problem)
        return None
    if tuple(other) != names:
        problems.append(
            f"{where}: corrupted_spans names {', '.join(other)}, spans {', '.join(names)}; "
            "name the same spans in the same order"
        )
        return None
    corrupted_starts, found = _starts(other, corrupted, f"{where}: spans of the corrupted prompt")
    if corrupted_starts is None:
        problems += found
        return None
    return names, tuple(starts), tuple(corrupted_starts)
