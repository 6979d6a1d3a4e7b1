"""What every task shares: examples as text, the train/test split, and a seeded sampler.

A task produces :class:`Example` objects, plain text with the answer written as the literal
continuation of the prompt (``" Mary"`` after an IOI prompt, ``"45"`` after
``"... to the year 17"``). Keeping the continuation verbatim lets one example be tokenised by
the bundled word-level tokenizer and by a real model's BPE tokenizer alike; see
:mod:`circuits.tasks.encode`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from graphs.errors import CircuitDiscoveryError
from graphs.positions import SpanSchema

__all__ = [
    "SPLITS",
    "TEST_FRACTION",
    "WORD_PATTERN",
    "Example",
    "Task",
    "TaskError",
    "join_spans",
    "split_of",
    "words_of",
]

#: The two splits every task provides.
SPLITS: tuple[str, ...] = ("train", "test")

#: Share of the prompt space that belongs to the test split.
TEST_FRACTION: float = 0.2


#: Draws in a row that bring no unused clean prompt of the test split, after which its clean
#: prompts count as used up and may repeat (a small space, e.g. entity attributes' ~80).
#: Counted over all draws, so a split that few draws fall into is told used up as quickly.
EXHAUSTED: int = 20_000


#: How the bundled word-level tokenizer splits text: the arrow, words, digit pairs ("1732" is
#: "17" "32", as GPT-2 also splits years), single digits, and any other character alone.
WORD_PATTERN: str = r"->|[A-Za-z]+|\d\d|\d|\S"


def words_of(text: str) -> list[str]:
    """``text`` split the way the bundled tokenizer splits it."""
    return re.findall(WORD_PATTERN, text)


class TaskError(CircuitDiscoveryError, ValueError):
    """Bad task input (unknown task or split, impossible request); the message names the fix."""


@dataclass(frozen=True)
class Example:
    """One clean/corrupted prompt pair, as text.

    Attributes:
        clean: the clean prompt.
        corrupted: the corrupted prompt; tokenises to as many tokens as ``clean``.
        answers: continuations of ``clean`` that count as correct (each one token).
        distractors: continuations that count as wrong; the metric contrasts them with
            ``answers`` (for IOI the subject's name, for greater-than the years ≤ the start).
        corrupted_answers: the corrupted prompt's own correct continuations.
        variables: the task's ground-truth variables (names, years, bounds, entity, ...), for
            causal models and reports.
        span_starts: where each span of the task's :attr:`Task.span_schema` begins in
            ``clean``, as character offsets (the first 0); empty for tasks without a schema.
        corrupted_span_starts: the same for ``corrupted``.
    """

    clean: str
    corrupted: str
    answers: tuple[str, ...]
    distractors: tuple[str, ...] = ()
    corrupted_answers: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    span_starts: tuple[int, ...] = field(default=(), compare=False, hash=False)
    corrupted_span_starts: tuple[int, ...] = field(default=(), compare=False, hash=False)


def join_spans(pieces: list[str]) -> tuple[str, tuple[int, ...]]:
    """``pieces`` (the text of each span, in order) joined, and the character where each
    begins: ``join_spans(["When ", "Mary"]) == ("When Mary", (0, 5))``."""
    starts, at = [], 0
    for piece in pieces:
        starts.append(at)
        at += len(piece)
    return "".join(pieces), tuple(starts)


def split_of(key: str) -> str:
    """``"test"`` for a fixed :data:`TEST_FRACTION` of keys, ``"train"`` for the rest.

    The split is a hash of the prompt, not of the seed, so train and test never share a
    prompt whatever seeds generated them.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < TEST_FRACTION else "train"


class Task(ABC):
    """A family of prompts with a known answer.

    Subclasses implement :meth:`sample`; the split, seeding and batching live here.
    """

    #: Registry name (``"ioi"``, ``"greater-than"``, ...).
    name: str = ""
    #: Metric attribution and faithfulness use by default (a name in ``attribution.METRICS``).
    metric: str = "logit_diff"
    #: One-line description for ``--help`` and reports.
    description: str = ""
    #: Named spans every prompt of the task has, in prompt order, for position-aware
    #: circuits (``encode_examples(..., schema=task.span_schema)``); None when the task's
    #: prompts have no natural spans. ``sample`` then fills each example's span starts.
    span_schema: SpanSchema | None = None

    @abstractmethod
    def sample(self, rng: random.Random) -> Example:
        """Draw one example of either split."""

    def vocabulary(self) -> set[str]:
        """Every word the task can produce, for building a word-level tokenizer."""
        return set()

    def split_key(self, example: Example) -> str:
        """The string whose hash decides the example's split (by default its clean prompt)."""
        return example.clean

    def split_of(self, example: Example) -> str:
        return split_of(self.split_key(example))

    def training_text(self, example: Example, rng: random.Random) -> str:
        """The clean prompt followed by one of its answers, as a language-modelling line."""
        return example.clean + rng.choice(example.answers)

    def corrupted_split_of(self, example: Example) -> str:
        """The split the corrupted prompt would belong to as a clean prompt (same rule)."""
        return self.split_of(dataclasses.replace(example, clean=example.corrupted))

    def clean_prompts(self, n: int, *, seed: int = 0, split: str = "train") -> list[Example]:
        """``n`` examples whose *clean* prompts belong to ``split``, drawn with replacement:
        for uses that read the clean prompts only (alignment builds its counterfactual pairs
        from two examples' clean prompts), where the corrupted prompt's split and repeats do
        not matter. The same list for the same seed."""
        if split not in SPLITS:
            raise TaskError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        rng = random.Random(f"{self.name}:{split}:{seed}")
        out: list[Example] = []
        for _ in range(200 * n + 10_000):
            example = self.sample(rng)
            if self.split_of(example) == split:
                out.append(example)
                if len(out) == n:
                    return out
        raise TaskError(f"task {self.name!r} could not draw {n} {split} examples")

    def examples(self, n: int, *, seed: int = 0, split: str = "train") -> list[Example]:
        """``n`` examples of ``split``, the same list for the same seed.

        An example belongs to a split when its clean *and* its corrupted prompt hash into it,
        so no prompt, clean or corrupted, of one split occurs in the other. Test examples are
        drawn without replacement of clean prompts: a clean prompt repeats only once every
        clean prompt of the split has been used (the split is then cycled through again).
        Train examples are drawn with replacement.
        """
        if split not in SPLITS:
            raise TaskError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if n < 1:
            raise TaskError(f"n must be at least 1, got {n}")
        rng = random.Random(f"{self.name}:{split}:{seed}")
        out: list[Example] = []
        used: set[str] = set()  # clean prompts of the current round (test split)
        tries = misses = 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 10_000 + EXHAUSTED * (n + 1):
                raise TaskError(
                    f"task {self.name!r} could not draw {n} {split} examples; its prompt space "
                    "has too few prompts in that split"
                )
            example = self.sample(rng)
            misses += 1
            if misses >= EXHAUSTED:  # every clean prompt of the split seen: the next round
                used.clear()
                misses = 0
            if self.split_of(example) != split or self.corrupted_split_of(example) != split:
                continue
            if split == "test" and example.clean in used:
                continue
            misses = 0
            used.add(example.clean)
            out.append(example)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, metric={self.metric!r})"
