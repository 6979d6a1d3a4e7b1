"""Counterfactual pairs for DAS from a JSONL or CSV file.

Columns: ``base``, ``source`` (the prompt whose variable is patched in), ``label`` (what the
intervened base run should predict next), ``base_label`` (the base's own next token), optional
``kind`` (``cause`` / ``isolate``, for MDAS), ``split`` and ``id``. Labels are continuations of
the base prompt and must be one token after it; base and source must have the same number of
tokens. The checks, messages (``FILE:LINE``, all at once) and the seeded 80/20 split without a
``split`` column are those of prompt files (:mod:`circuits.tasks.files`); unlike there, a label
may equal the base label (an uninformative pair).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.alignment.data import CounterfactualPairs, make_pairs
from circuits.tasks.files import PromptFileError, read_rows, token_problems

__all__ = ["load_counterfactual_file"]


def load_counterfactual_file(
    path: str | Path, tokenizer: Any, *, seed: int = 0, variable: str | None = None
) -> dict[str, CounterfactualPairs]:
    """``{"train": pairs, "test": pairs}`` from the file (a split without rows is left out).

    Raises:
        PromptFileError: every problem of the file, each naming ``FILE:LINE`` and the fix.
    """
    prompts, problems = read_rows(Path(path), None, seed, layout="das")
    if prompts is not None and prompts.rows:
        problems += token_problems(prompts, tokenizer, distinct=False, sides=("base", "source"))
    if problems:
        raise PromptFileError(problems)
    out = {}
    for split, rows in prompts.splits.items():
        if rows:
            out[split] = make_pairs(
                tokenizer,
                [r.clean for r in rows],
                [r.corrupted for r in rows],
                [r.answers[0] for r in rows],
                [r.distractors[0] for r in rows],
                kinds=[r.kind or "cause" for r in rows],
                variables=(variable,) if variable else (),
            )
    return out
