"""Copying / identity prompts in the Patchscopes style (Ghandeharioun et al. 2024).

"cat -> cat ; 1135 -> 1135 ; hello ->" → " hello". Demonstrations are words or numbers (the
numbers span several tokens); the queried item is one token, any word of the bundled
vocabulary, so a model trained on it learns to repeat whatever token it is shown. That is
what Patchscopes' identity target prompt needs to decode a patched hidden state.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from circuits.tasks.base import Example, Task, TaskError

__all__ = ["WORDS", "Copying"]

#: The words copying may query, fixed here rather than gathered from the other tasks, so that
#: registering a task does not change copying's prompts. They are the alphabetic words the four
#: other built-in tasks and the filler text produced when the list was frozen; tests/test_tasks.py
#: pins copying's prompts and the bundled tokenizer's vocabulary.
WORDS: tuple[str, ...] = tuple(
    """
    A Adam Africa After Afterwards Aldic Alice America Amy Anna Asia Bob Borean Bove Busu
    Canada Chile Chris Clara Cyran Dan David Deno Denu Dita Dolmic Duso Egypt Emma Eric Eskan
    Europe Every Fela Femu Fenu Fesu Feti France Frank Friends Fura Furo Galic George Ghana
    Grace Helen Henry Hovan In India Ivric Jack James Jane Japan John Julia Kama Kate Kenya
    Kete Lata Laura Lenu Lisa Live Lomo Lona Lucy Mark Mary Mave Mene Metu Mike Mite Mivi Muta
    Nate Neme Nepal Nevu Nina Niti No Norway Numo Oscar Pale Paul Pene People Peru Peter Pilu
    Please Pola Rata Ravi Rone Rose Ruth Sam Sarah Saso Seli Sena Sero Some Sophie Spain Steve
    Taru That The Then This Tile Tito Titu To Tom Veno Victor Vole When While Yes a again and
    are arrived at bag ball be beach behind belongs beside between big bird boat book bottle
    bright brought can car card carries cat child citizens city cold continent costs country
    crisis day decided dispute doctor dog dollars drink drought ended every expedition falls
    famine farmer finds flower follows forest found from garden gave gift give got green had
    handed happy hears helps horse hospital house if in is it key kiss lamp language lasted
    laughs letter library lies likes live located long main market most mountain moves near
    never no of office often old on only otherwise over paints park people project quickly
    quiet quietly red reign restaurant ring river road runs say school sees shines siege sings
    sleeps slowly small some song speak spoken started station store strike table teacher that
    the this tired to today travel tree trial under visit visits voyage waits war warm was
    watches went were when who window working year yes you young
    """.split()
)


class Copying(Task):
    """Repeat the last item after ``->``; corrupted prompts query another word."""

    name = "copying"
    metric = "logit_diff"
    description = "copying: 'cat -> cat ; 1135 -> 1135 ; hello ->' -> hello"

    def __init__(
        self, words: Iterable[str] | None = None, n_demos: tuple[int, int] = (2, 3)
    ) -> None:
        self.words = tuple(sorted(set(WORDS if words is None else words)))
        if len(self.words) < 2:
            raise TaskError("the copying task needs at least two words")
        self.n_demos = n_demos

    def _item(self, rng: random.Random) -> str:
        if rng.random() < 0.3:
            return str(rng.randint(0, 9999))
        return rng.choice(self.words)

    def sample(self, rng: random.Random) -> Example:
        demos = [self._item(rng) for _ in range(rng.randint(*self.n_demos))]
        query, other = rng.sample(self.words, 2)
        prefix = " ; ".join(f"{d} -> {d}" for d in demos)
        return Example(
            clean=f"{prefix} ; {query} ->",
            corrupted=f"{prefix} ; {other} ->",
            answers=(" " + query,),
            distractors=(" " + other,),
            corrupted_answers=(" " + other,),
            variables={"query": query, "corrupted_query": other, "demos": demos},
        )

    def vocabulary(self) -> set[str]:
        return set(self.words) | {"->", ";"}
