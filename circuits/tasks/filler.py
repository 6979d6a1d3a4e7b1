"""Filler text: short sentences from a small grammar, mixed into the zoo's training data.

It gives the bundled models ordinary next-token prediction to do besides the tasks, and
widens the vocabulary that the copying task draws from.
"""

from __future__ import annotations

import random

__all__ = ["FILLER_WORDS", "filler_sentence"]

DETERMINERS = ("the", "a", "every", "some", "this", "that")
ADJECTIVES = (
    "old",
    "young",
    "small",
    "big",
    "red",
    "green",
    "quiet",
    "happy",
    "tired",
    "bright",
    "cold",
    "warm",
)
NOUNS = (
    "cat", "dog", "bird", "horse", "child", "teacher", "farmer", "doctor", "river", "tree",
    "window", "table", "boat", "car", "song", "city", "forest", "mountain", "road", "lamp",
)  # fmt: skip
VERBS = (
    "sees",
    "likes",
    "finds",
    "follows",
    "watches",
    "carries",
    "paints",
    "visits",
    "hears",
    "helps",
)
INTRANSITIVE = ("sleeps", "runs", "sings", "waits", "laughs", "falls", "shines", "moves")
ADVERBS = ("slowly", "quickly", "often", "never", "today", "again", "quietly")
PREPOSITIONS = ("near", "under", "behind", "beside", "over")

FILLER_WORDS: frozenset[str] = frozenset(
    (*DETERMINERS, *(w.capitalize() for w in DETERMINERS))
    + ADJECTIVES
    + NOUNS
    + VERBS
    + INTRANSITIVE
    + ADVERBS
    + PREPOSITIONS
    + ("and", ".")
)


def _noun_phrase(rng: random.Random) -> str:
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    return " ".join(words)


def _clause(rng: random.Random) -> str:
    subject = _noun_phrase(rng)
    r = rng.random()
    if r < 0.45:
        clause = f"{subject} {rng.choice(VERBS)} {_noun_phrase(rng)}"
    elif r < 0.75:
        clause = (
            f"{subject} {rng.choice(INTRANSITIVE)} {rng.choice(PREPOSITIONS)} {_noun_phrase(rng)}"
        )
    else:
        clause = f"{subject} {rng.choice(INTRANSITIVE)} {rng.choice(ADVERBS)}"
    return clause


def filler_sentence(rng: random.Random) -> str:
    """One or two clauses, capitalised, ending with a full stop."""
    text = _clause(rng)
    if rng.random() < 0.3:
        text += " and " + _clause(rng)
    return text[0].upper() + text[1:] + "."
