"""Greater-than (Hanna et al. 2023).

"The war lasted from the year 1732 to the year 17" → any two-digit year greater than 32.
Answers are the years YY+1 … 99 and distractors the years 00 … YY, so the default metric
(probability difference) is P(year > YY) − P(year ≤ YY), the paper's definition. The issue
asks for "greater minus smaller"; the start year itself is counted as wrong, as in the
paper, because "from 1732 to 1732" does not describe an event that lasted. Corrupted prompts
use the start year 01, which makes every later year plausible.
"""

from __future__ import annotations

import random

from circuits.tasks.base import Example, Task, words_of

__all__ = ["GreaterThan"]

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


def two_digits(year: int) -> str:
    return f"{year:02d}"


class GreaterThan(Task):
    """Greater-than; answers are the later years, distractors the start year and earlier."""

    name = "greater-than"
    metric = "prob_diff"
    description = "greater-than: 'The war lasted from the year 1732 to the year 17' -> 33..99"

    def sample(self, rng: random.Random) -> Example:
        template, noun, century = rng.choice(TEMPLATES), rng.choice(NOUNS), rng.choice(CENTURIES)
        yy = rng.choice(YEARS)

        def prompt(start: int) -> str:
            return (
                template.replace("[NOUN]", noun)
                .replace("[C]", century)
                .replace("[YY]", two_digits(start))
            )

        return Example(
            clean=prompt(yy),
            corrupted=prompt(1),
            answers=tuple(two_digits(y) for y in range(yy + 1, 100)),
            distractors=tuple(two_digits(y) for y in range(0, yy + 1)),
            corrupted_answers=tuple(two_digits(y) for y in range(2, 100)),
            variables={"start": yy, "century": century, "noun": noun},
        )

    def vocabulary(self) -> set[str]:
        words = set(NOUNS) | set(CENTURIES) | {two_digits(y) for y in range(100)}
        for template in TEMPLATES:
            words |= set(
                words_of(template.replace("[NOUN]", "").replace("[C]", "").replace("[YY]", ""))
            )
        return words
