"""A user's own task from ``--task package.module:factory``.

The factory is called with no arguments and returns a :class:`circuits.tasks.Task` (subclass
it and implement ``sample(rng) -> Example``), or any object with the same protocol:

- ``name`` (str) and ``metric`` (a name in ``attribution.METRICS``, e.g. ``"logit_diff"``);
- ``examples(n, *, seed, split) -> list[Example]`` for ``split`` in ``train`` / ``test``,
  the same list for the same seed, no prompt in both splits.

Its examples go through the same checks as a prompt file (:mod:`circuits.tasks.files`):
equal clean/corrupted token lengths, one-token answers, answers unlike distractors.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from circuits.tasks.base import SPLITS, Example, TaskError
from circuits.tasks.files import PromptFile, PromptFileError, PromptRow, token_problems

__all__ = ["check_user_task", "is_task_spec", "load_user_task", "user_task_problems"]


def is_task_spec(name: object) -> bool:
    """Whether ``name`` is a ``module:factory`` reference rather than a registered name."""
    return isinstance(name, str) and ":" in name


def load_user_task(spec: str) -> Any:
    """Import ``module`` and call ``factory()``; TaskError says what is wrong and the fix."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise TaskError(f"--task {spec!r}: write a user task as package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TaskError(
            f"--task {spec!r}: cannot import {module_name!r} ({err}); put its folder on "
            "PYTHONPATH or install it"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise TaskError(f"--task {spec!r}: {module_name} has no callable {attr!r}")
    try:
        task = factory()
    except Exception as err:  # noqa: BLE001 - the user's code: report it as bad input
        raise TaskError(f"--task {spec!r}: {attr}() raised {type(err).__name__}: {err}") from None
    missing = [a for a in ("name", "metric", "examples") if not hasattr(task, a)]
    if missing or not callable(task.examples):
        raise TaskError(
            f"--task {spec!r}: {attr}() returned {type(task).__name__}, which lacks "
            f"{', '.join(missing) or 'a callable examples'}; return a circuits.tasks.Task"
        )
    return task


def user_task_problems(
    spec: str, task: Any, tokenizer: Any, n: int, seed: int, *, spans: bool = False
) -> list[str]:
    """Every problem of the task's first ``n`` examples of each split under ``tokenizer``;
    each names ``SPEC:SPLIT:INDEX`` (the example's position, from 1). With ``spans`` (a
    position-aware run) also the examples' spans under the task's ``span_schema``."""
    schema = getattr(task, "span_schema", None) if spans else None
    if spans and schema is None:
        return [
            f"{spec}: the task has no span_schema, so its prompts have no named spans; give "
            "the task a span_schema (and its examples span_starts) or use positions='tokens'"
        ]
    problems: list[str] = []
    for split in SPLITS:
        examples = task.examples(n, seed=seed, split=split)
        where = f"{spec}:{split}"
        if not isinstance(examples, list) or not all(isinstance(e, Example) for e in examples):
            problems.append(f"{where}: examples() must return a list of circuits.tasks.Example")
            continue
        rows = [PromptRow(i + 1, e.clean, e.corrupted, tuple(e.answers), tuple(e.distractors),
                          span_starts=tuple(e.span_starts),
                          corrupted_span_starts=tuple(e.corrupted_span_starts))
                for i, e in enumerate(examples)]  # fmt: skip
        problems += [
            f"{where}: example {r.line}: answer {a!r} is also a distractor; make them differ"
            for r in rows
            for a in set(r.answers) & set(r.distractors)
        ]
        problems += [p.replace(f"{where}:", f"{where}: example ", 1) for p in token_problems(
            PromptFile(Path(where), "text", rows, "file", seed, schema=schema), tokenizer
        )]  # fmt: skip
    return problems


def check_user_task(spec: str, tokenizer: Any, n: int, seed: int, *, spans: bool = False) -> None:
    """Raise PromptFileError listing every problem of a user task's examples (and, with
    ``spans``, of their spans)."""
    problems = user_task_problems(spec, load_user_task(spec), tokenizer, n, seed, spans=spans)
    if problems:
        raise PromptFileError(problems)
