"""Task names → task objects (one :func:`register_task` line per task), and the vocabulary the
bundled tokenizer is built from."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache

from circuits.tasks.base import Task, TaskError
from circuits.tasks.filler import FILLER_WORDS

__all__ = ["TASK_NAMES", "all_words", "get_task", "register_task", "task_names"]

#: A task's factory: a callable returning the task, or ``"module:attribute"`` naming one,
#: imported on first use (so listing the tasks imports none of their modules).
TaskFactory = Callable[[], Task] | str

_TASKS: dict[str, TaskFactory] = {}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def register_task(name: str, factory: TaskFactory) -> None:
    """Register ``factory`` as the task ``name`` (``get_task``, ``--task NAME``); TaskError
    when the name is taken. The registry is read at each call, so a task registered after
    import counts everywhere."""
    key = _key(name)
    if key in _TASKS:
        raise TaskError(f"a task named {key!r} is already registered; choose another name")
    _TASKS[key] = factory


def task_names() -> tuple[str, ...]:
    """Every registered task's name: the bundled ones first, in the order reports list them."""
    return tuple(_TASKS)


def get_task(name: str | Task) -> Task:
    """The task registered as ``name`` (a :class:`Task` is returned unchanged; a user's
    ``package.module:factory`` is loaded)."""
    if isinstance(name, Task):
        return name
    from circuits.tasks.user import is_task_spec, load_user_task

    if is_task_spec(name):  # a user's package.module:factory
        return load_user_task(name)
    factory = _TASKS.get(_key(name))
    if factory is None:
        raise TaskError(f"unknown task {name!r}; available tasks: {', '.join(task_names())}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory()


register_task("ioi", "circuits.tasks.ioi:IOI")
register_task("greater-than", "circuits.tasks.greater_than:GreaterThan")
register_task("price-tagging", "circuits.tasks.price_tagging:PriceTagging")
register_task("entity-attributes", "circuits.tasks.entities:EntityAttributes")
register_task("copying", "circuits.tasks.copying:Copying")

#: The bundled tasks (registered above): the bundled models are trained on them and the
#: bundled tokenizer's vocabulary is theirs, so tasks registered later change neither.
TASK_NAMES: tuple[str, ...] = task_names()


@cache
def all_words() -> frozenset[str]:
    """Every word a bundled task or the filler text can produce (punctuation included)."""
    words = set(FILLER_WORDS)
    for name in TASK_NAMES:
        words |= get_task(name).vocabulary()
    return frozenset(words)
