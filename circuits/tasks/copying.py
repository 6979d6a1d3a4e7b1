"""Copying / identity prompts in the Patchscopes style (Ghandeharioun et al. 2024).

"cat -> cat ; 1135 -> 1135 ; hello ->" → " hello". Demonstrations are words or numbers (the
numbers span several tokens); the queried item is one token, any word of the bundled
vocabulary, so a model trained on it learns to repeat whatever token it is shown. That is
what Patchscopes' identity target prompt needs to decode a patched hidden state.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from circuits.tasks.base import Example, Task

__all__ = ["Copying"]


class Copying(Task):
    """Repeat the last item after ``->``; corrupted prompts query another word."""

    name = "copying"
    metric = "logit_diff"
    description = "copying: 'cat -> cat ; 1135 -> 1135 ; hello ->' -> hello"

    def __init__(
        self, words: Iterable[str] | None = None, n_demos: tuple[int, int] = (2, 3)
    ) -> None:
        if words is None:
            from circuits.tasks.registry import copy_words

            words = copy_words()
        self.words = tuple(sorted(set(words)))
        if len(self.words) < 2:
            raise ValueError("the copying task needs at least two words")
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
