"""Duplicate rows and the train/test split of a prompt file, made so that no prompt of one
split occurs in the other.

- A *duplicate* is a row that says what an earlier row says: the same clean and corrupted
  prompt, answers, distractors and spans (its line, ``id`` and ``split`` aside). It is dropped
  before the split, the first occurrence kept (with its split);
  :attr:`circuits.tasks.files.PromptFile.duplicates` lists each with the line it repeats.
  Rows with the same prompts but other answers are kept: they are not repeats, and the next
  rule keeps them in one split.
- Rows that share any prompt text, clean or corrupted (one row's corrupted prompt may be
  another's clean one), form a *group*, and a group is never cut by the seeded 80/20 split.
  A file's own ``split`` column that puts one group's rows in both splits is refused, naming
  the lines, since the test rows would not be held out.

Counterfactual files for DAS (:mod:`circuits.alignment.files`) are split row by row and may
share prompts across splits: one base prompt meets many sources by design, and their test
split measures interchange accuracy on new pairs, not on new prompts.

:func:`cross_split_prompts` counts the prompts the splits share; discovery records it from the
token ids it actually used, so the report's held-out sentence is computed, not asserted.
"""

from __future__ import annotations

import dataclasses
import operator
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import chain, compress
from pathlib import Path
from typing import TYPE_CHECKING

from circuits.tasks.base import TEST_FRACTION

if TYPE_CHECKING:
    from circuits.tasks.files import PromptRow

__all__ = [
    "cross_split_prompts",
    "drop_duplicates",
    "leak_problems",
    "prompt_groups",
    "seeded_split",
    "split_problems",
]


def drop_duplicates(rows: Sequence[PromptRow]) -> tuple[list[PromptRow], list[tuple[int, int]]]:
    """``(kept rows, [(line, line of its first occurrence), ...])``: a row is dropped when it
    says what an earlier row says (prompts, answers, distractors, spans; its line, ``id`` and
    ``split`` aside)."""
    if not rows:
        return [], []
    what = operator.attrgetter(*(f.name for f in dataclasses.fields(rows[0])
                                 if f.name not in ("line", "id", "split")))  # fmt: skip
    first: dict[tuple, int] = {}
    kept: list[PromptRow] = []
    dropped: list[tuple[int, int]] = []
    for r in rows:
        line = first.setdefault(what(r), r.line)
        if line != r.line:
            dropped.append((r.line, line))
        else:
            kept.append(r)
    return kept, dropped


def prompt_groups(rows: Sequence[PromptRow]) -> list[int]:
    """A group number for each row: rows sharing a prompt text (clean or corrupted, on
    either side) get the same number, also through other rows (union-find)."""
    clean, corrupted = [r.clean for r in rows], [r.corrupted for r in rows]
    counts = Counter(chain(clean, corrupted))
    # a row whose two texts occur nowhere else is its own group and joins none: only the
    # others go through the union-find (in file order, so the numbers are the same)
    shared = [i for i, (c, k) in enumerate(zip(clean, corrupted, strict=True))
              if counts[c] > 1 or counts[k] > 1]  # fmt: skip
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i in shared:
        for text in (clean[i], corrupted[i]):
            a, b = root(i), root(owner.setdefault(text, i))
            if a != b:
                parent[b] = a
    for i in shared:
        parent[i] = root(i)
    return parent


def seeded_split(
    rows: Sequence[PromptRow], seed: int, *, grouped: bool = True
) -> dict[str, list[PromptRow]]:
    """A seeded 80/20 train/test split, each part in file order, that never cuts a group of
    rows sharing a prompt (rows without shared prompts split as a plain shuffle would). Test
    takes whole groups in shuffled order until it holds its share, skipping a group that
    would leave train empty; one row, or one group, gives no test row. Without ``grouped``
    every row is its own group."""
    order = list(range(len(rows)))
    random.Random(f"prompt-file:{seed}").shuffle(order)
    n_test = max(1, round(TEST_FRACTION * len(rows))) if len(rows) > 1 else 0
    groups = prompt_groups(rows) if grouped else list(range(len(rows)))
    if groups == list(range(len(rows))):  # one row a group: test is the first n_test
        test = set(order[:n_test])  # (n_test < len(rows), so none leaves train empty)
    else:
        test = _grouped_test(order, groups, n_test)
    in_test = [i in test for i in range(len(rows))]
    return {
        "train": list(compress(rows, map(operator.not_, in_test))),
        "test": list(compress(rows, in_test)),
    }


def _grouped_test(order: Sequence[int], groups: Sequence[int], n_test: int) -> set[int]:
    """The test rows: whole groups in ``order`` until they hold ``n_test`` rows, skipping a
    group that would leave train empty."""
    members: dict[int, list[int]] = defaultdict(list)  # groups of more than one row
    for i in [i for i, g in enumerate(groups) if g != i]:
        members[groups[i]].append(i)
    test: set[int] = set()
    for i in order:
        if len(test) >= n_test:
            break
        g = groups[i]
        group = [g, *members[g]] if g in members else [i]
        if i not in test and len(test) + len(group) < len(groups):
            test.update(group)
    return test


def _texts(rows: Iterable[PromptRow]) -> dict[str, int]:
    """Each prompt text of ``rows`` (clean and corrupted) with the first line holding it."""
    out: dict[str, int] = {}
    for r in rows:
        out.setdefault(r.clean, r.line)
        out.setdefault(r.corrupted, r.line)
    return out


def leak_problems(path: Path, splits: dict[str, list[PromptRow]]) -> list[str]:
    """A problem for each test row (of a file's own split column) holding a prompt that a
    train row holds too."""
    train = _texts(splits["train"])
    problems = []
    for r in splits["test"]:
        for side, text in (("clean", r.clean), ("corrupted", r.corrupted)):
            if text in train:
                problems.append(
                    f"{path}:{r.line}: the {side} prompt of this test row is also a prompt of "
                    f"train line {train[text]}, so the test split would not be held out; give "
                    "both rows the same split (or drop the split column: the seeded split "
                    "keeps rows sharing a prompt together)"
                )
                break
    return problems


def split_problems(
    path: Path, splits: dict[str, list[PromptRow]], split_source: str, n_rows: int
) -> list[str]:
    """A problem for each split a run needs and the file leaves empty (a run scores edges on
    train rows and measures faithfulness on test rows)."""
    problems = []
    for split in ("train", "test"):
        if splits[split]:
            continue
        if split_source == "file":
            fix = f"give some rows split={split}, or drop the split column for a seeded split"
        elif n_rows < 2:
            fix = "add rows: the seeded 80/20 split needs at least 2"
        else:
            fix = (
                "all rows share prompts with each other, so the seeded split cannot hold any "
                "out; add rows with other prompts"
            )
        problems.append(f"{path}: no {split} rows; {fix}")
    return problems


def cross_split_prompts(train: Iterable[Sequence[int]], test: Iterable[Sequence[int]]) -> int:
    """How many distinct prompts (token id rows, clean or corrupted) of ``test`` occur in
    ``train``."""
    seen = {tuple(t) for t in train}
    return len({tuple(t) for t in test} & seen)
