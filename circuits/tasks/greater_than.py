"""Greater-than (Hanna et al. 2023).

"The war lasted from the year 1732 to the year 17" → any two-digit year greater than 32.
Answers are the years YY+1 … 99 and distractors the years 00 … YY, so the default metric
(probability difference) is P(year > YY) − P(year ≤ YY), the paper's definition. The issue
asks for "greater minus smaller"; the start year itself is counted as wrong, as in the
paper, because "from 1732 to 1732" does not describe an event that lasted. Corrupted prompts
use the start year 01, which makes every later year plausible.

Span schema (position-aware circuits): ``prefix, noun, middle, XX, YY, rest, END``, Hanna et
al.'s names for the start year XXYY: ``prefix`` "The", ``noun`` the event, ``middle`` the words
up to the start year, ``XX`` its century, ``YY`` its last two digits, ``rest`` the words up to
the end century and ``END`` that century (the last token, where the metric reads). Both
templates, clean and corrupted, have every span.
"""

from __future__ import annotations

import random
import re

from circuits.tasks.base import Example, Task, TaskError, join_spans, words_of
from graphs.positions import SpanSchema

__all__ = ["SPANS", "GreaterThan"]

NOUNS: tuple[str, ...] = (
    "war", "strike", "dispute", "drought", "famine", "reign", "siege", "trial", "voyage",
    "expedition", "crisis", "project",
)  # fmt: skip

CENTURIES: tuple[str, ...] = ("11", "12", "13", "14", "15", "16", "17", "18")

TEMPLATES: tuple[str, ...] = (
    "The [NOUN] lasted from the year [C][YY] to the year [C]",
    "The [NOUN] started in the year [C][YY] and ended in the year [C]",
)

#: Start years; 00, 01 and 99 are left out so both answer sets are non-empty and the
#: corrupted start (01) differs from every clean one.
YEARS: tuple[int, ...] = tuple(range(2, 99))


#: The spans of every prompt (see the module docstring).
SPANS: tuple[str, ...] = ("prefix", "noun", "middle", "XX", "YY", "rest", "END")


def two_digits(year: int) -> str:
    return f"{year:02d}"


def _span_texts(template: str, noun: str, century: str, yy: str) -> list[str]:
    """The text of each of :data:`SPANS`; they join to the filled template."""
    m = re.fullmatch(r"(.*?)\[NOUN\](.*?)\[C\]\[YY\](.*?)\[C\]", template)
    if m is None:
        raise TaskError(f"greater-than template {template!r} needs [NOUN] ... [C][YY] ... [C]")
    prefix, middle, rest = m.groups()
    return [prefix, noun, middle, century, yy, rest, century]


class GreaterThan(Task):
    """Greater-than; answers are the later years, distractors the start year and earlier."""

    name = "greater-than"
    metric = "prob_diff"
    description = "greater-than: 'The war lasted from the year 1732 to the year 17' -> 33..99"
    span_schema = SpanSchema(SPANS)

    def sample(self, rng: random.Random) -> Example:
        template, noun, century = rng.choice(TEMPLATES), rng.choice(NOUNS), rng.choice(CENTURIES)
        yy = rng.choice(YEARS)

        clean, starts = join_spans(_span_texts(template, noun, century, two_digits(yy)))
        corrupted, corrupted_starts = join_spans(_span_texts(template, noun, century, "01"))
        return Example(
            clean=clean,
            corrupted=corrupted,
            answers=tuple(two_digits(y) for y in range(yy + 1, 100)),
            distractors=tuple(two_digits(y) for y in range(0, yy + 1)),
            corrupted_answers=tuple(two_digits(y) for y in range(2, 100)),
            variables={"start": yy, "century": century, "noun": noun},
            span_starts=starts,
            corrupted_span_starts=corrupted_starts,
        )

    def vocabulary(self) -> set[str]:
        words = set(NOUNS) | set(CENTURIES) | {two_digits(y) for y in range(100)}
        for template in TEMPLATES:
            words |= set(
                words_of(template.replace("[NOUN]", "").replace("[C]", "").replace("[YY]", ""))
            )
        return words
