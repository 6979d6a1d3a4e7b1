"""Indirect object identification (Wang et al. 2022).

"When Mary and John went to the store, John gave a drink to" → " Mary". The subject (S) is
the name that appears twice, the indirect object (IO) the one that appears once; the
answer is IO and the distractor S, so the default metric (logit difference) is
logit(IO) − logit(S). Corrupted prompts are the "ABC" distribution: the same sentence with
three different names, which removes the duplicated-name signal.
"""

from __future__ import annotations

import random

from circuits.tasks.base import Example, Task, words_of

__all__ = ["IOI", "NAMES"]

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


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str) -> str:
    return (
        template.replace("[A]", a)
        .replace("[B]", b)
        .replace("[S]", s)
        .replace("[PLACE]", place)
        .replace("[OBJECT]", obj)
    )


class IOI(Task):
    """Indirect object identification; answer IO, distractor S, corrupted with three names."""

    name = "ioi"
    metric = "logit_diff"
    description = (
        "indirect object identification: 'When Mary and John ..., John gave a drink to' -> Mary"
    )

    def sample(self, rng: random.Random) -> Example:
        template = rng.choice(TEMPLATES)
        io, s, c1, c2, c3 = rng.sample(NAMES, 5)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        order = rng.choice(("ABBA", "BABA"))
        a, b = (io, s) if order == "ABBA" else (s, io)
        clean = _fill(template, a, b, s, place, obj)
        # ABC: the sentence's structure with three fresh names; no name repeats, so the
        # duplicated-subject signal that IOI circuits use is gone.
        corrupted = _fill(template, c1, c2, c3, place, obj)
        return Example(
            clean=clean,
            corrupted=corrupted,
            answers=(" " + io,),
            distractors=(" " + s,),
            corrupted_answers=(),
            variables={"io": io, "s": s, "order": order, "template": TEMPLATES.index(template)},
        )

    def vocabulary(self) -> set[str]:
        words = set(NAMES) | set(PLACES) | set(OBJECTS)
        for template in TEMPLATES:
            words |= set(words_of(_fill(template, "", "", "", "", "")))
        return words
