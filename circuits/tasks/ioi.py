"""Indirect object identification (Wang et al. 2022).

"When Mary and John went to the store, John gave a drink to" → " Mary". The subject (S) is
the name that appears twice, the indirect object (IO) the one that appears once; the
answer is IO and the distractor S, so the default metric (logit difference) is
logit(IO) − logit(S). Corrupted prompts are the "ABC" distribution: the same sentence with
three different names, which removes the duplicated-name signal.

Span schema (position-aware circuits, PEAP). Every template reads "[prefix] A and B [middle]
S2 [next word] [rest] to", so every prompt, clean or corrupted, has the spans
``prefix, A, and, B, middle, S2, S2+1, rest, END``: ``A`` and ``B`` the first two names in
prompt order, ``S2`` the name that acts (the subject's second mention), ``S2+1`` the word after
it, ``rest`` the words up to the last and ``END`` the last token (``" to"``, where the metric
reads). In ABBA prompts ``A`` is IO and ``B`` the subject's first mention S1; in BABA prompts
the reverse (``example.variables["order"]`` says which), so with both orders mixed a score at
``A`` is part IO, part S1. ``IOI(order="ABBA")`` (or ``"BABA"``) draws one order only and names
the spans by role: ``prefix, IO, and, S1, middle, S2, S2+1, rest, END`` (``S1, and, IO`` for
BABA); ``--task circuits.tasks.ioi:ioi_abba`` / ``ioi_baba`` on the command line.
"""

from __future__ import annotations

import random
import re

from circuits.tasks.base import Example, Task, TaskError, join_spans, words_of
from graphs.positions import SpanSchema

__all__ = ["IOI", "NAMES", "SPANS", "ioi_abba", "ioi_baba"]

#: Single-token first names (also single tokens with a leading space in GPT-2's BPE).
NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "Tom", "James", "Sarah", "David", "Anna", "Paul",
    "Emma", "Mark", "Laura", "Peter", "Kate", "Steve", "Lisa", "Chris", "Amy", "Jack",
    "Rose", "Mike", "Jane", "Dan", "Sam", "Grace", "Eric", "Ruth", "Adam", "Helen",
    "Frank", "Lucy", "George", "Clara", "Henry", "Julia", "Oscar", "Nina", "Victor", "Sophie",
)  # fmt: skip

PLACES: tuple[str, ...] = (
    "store", "park", "school", "house", "station", "garden", "office", "market",
    "hospital", "restaurant", "beach", "library",
)  # fmt: skip

OBJECTS: tuple[str, ...] = (
    "drink", "book", "ring", "letter", "key", "bag", "gift", "ball", "bottle", "kiss",
    "flower", "card",
)  # fmt: skip

#: Templates with [A] and [B] the first two names and [S] the name that acts.
TEMPLATES: tuple[str, ...] = (
    "When [A] and [B] went to the [PLACE], [S] gave a [OBJECT] to",
    "When [A] and [B] got a [OBJECT] at the [PLACE], [S] decided to give it to",
    "After [A] and [B] went to the [PLACE], [S] gave a [OBJECT] to",
    "While [A] and [B] were working at the [PLACE], [S] gave a [OBJECT] to",
    "Then, [A] and [B] had a long day at the [PLACE]. [S] gave a [OBJECT] to",
    "Friends [A] and [B] found a [OBJECT] at the [PLACE]. [S] gave it to",
    "The [PLACE] was quiet when [A] and [B] arrived. [S] handed a [OBJECT] to",
    "Afterwards, [A] and [B] went to the [PLACE]. [S] brought a [OBJECT] to",
)


#: The spans of every prompt, by position (see the module docstring).
SPANS: tuple[str, ...] = ("prefix", "A", "and", "B", "middle", "S2", "S2+1", "rest", "END")
#: The same spans named by role, for one order.
ROLE_SPANS: dict[str, tuple[str, ...]] = {
    "ABBA": ("prefix", "IO", "and", "S1", *SPANS[4:]),
    "BABA": ("prefix", "S1", "and", "IO", *SPANS[4:]),
}
ORDERS: tuple[str, ...] = ("ABBA", "BABA")


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str) -> str:
    return (
        template.replace("[A]", a)
        .replace("[B]", b)
        .replace("[S]", s)
        .replace("[PLACE]", place)
        .replace("[OBJECT]", obj)
    )


def _span_texts(template: str, a: str, b: str, s: str, place: str, obj: str) -> list[str]:
    """The text of each of :data:`SPANS` in the filled template; they join to ``_fill``'s."""
    prefix, rest = template.split("[A]")
    middle_a, rest = rest.split("[B]")
    middle_b, after = rest.split("[S]")

    def fill(text: str) -> str:
        return text.replace("[PLACE]", place).replace("[OBJECT]", obj)

    # the word after S2, the words up to the last, the last: " gave", " a drink", " to"
    after_s2 = re.fullmatch(r"(\s*\S+)(.*?)(\s*\S+)", fill(after))
    if after_s2 is None:
        raise TaskError(f"IOI template {template!r} needs two words after [S]")
    return [fill(prefix), a, middle_a, b, fill(middle_b), s, *after_s2.groups()]


class IOI(Task):
    """Indirect object identification; answer IO, distractor S, corrupted with three names.

    Args:
        order: ``None`` (ABBA and BABA prompts, spans named by position: :data:`SPANS`),
            ``"ABBA"`` or ``"BABA"`` (that order only, spans named by role:
            :data:`ROLE_SPANS`). See the module docstring.
    """

    name = "ioi"
    metric = "logit_diff"
    description = (
        "indirect object identification: 'When Mary and John ..., John gave a drink to' -> Mary"
    )
    span_schema = SpanSchema(SPANS)

    def __init__(self, order: str | None = None):
        if order is not None and order not in ORDERS:
            raise TaskError(f"IOI order must be None, 'ABBA' or 'BABA', got {order!r}")
        self.order = order
        if order is not None:
            self.span_schema = SpanSchema(ROLE_SPANS[order])

    def sample(self, rng: random.Random) -> Example:
        template = rng.choice(TEMPLATES)
        io, s, c1, c2, c3 = rng.sample(NAMES, 5)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        order = rng.choice(ORDERS)
        if self.order is not None:  # drawn anyway, so the other draws match the mixed task's
            order = self.order
        a, b = (io, s) if order == "ABBA" else (s, io)
        clean, starts = join_spans(_span_texts(template, a, b, s, place, obj))
        # ABC: the sentence's structure with three fresh names; no name repeats, so the
        # duplicated-subject signal that IOI circuits use is gone.
        corrupted, corrupted_starts = join_spans(_span_texts(template, c1, c2, c3, place, obj))
        return Example(
            clean=clean,
            corrupted=corrupted,
            answers=(" " + io,),
            distractors=(" " + s,),
            corrupted_answers=(),
            variables={"io": io, "s": s, "order": order, "template": TEMPLATES.index(template)},
            span_starts=starts,
            corrupted_span_starts=corrupted_starts,
        )

    def vocabulary(self) -> set[str]:
        words = set(NAMES) | set(PLACES) | set(OBJECTS)
        for template in TEMPLATES:
            words |= set(words_of(_fill(template, "", "", "", "", "")))
        return words


def ioi_abba() -> IOI:
    """IOI with ABBA prompts only, spans named by role (``--task circuits.tasks.ioi:ioi_abba``)."""
    return IOI("ABBA")


def ioi_baba() -> IOI:
    """IOI with BABA prompts only, spans named by role (``--task circuits.tasks.ioi:ioi_baba``)."""
    return IOI("BABA")
