"""Task names → task objects, and the vocabulary the bundled tokenizer is built from."""

from __future__ import annotations

from functools import cache

from circuits.tasks.base import Task, TaskError
from circuits.tasks.filler import FILLER_WORDS

__all__ = ["TASK_NAMES", "all_words", "get_task"]

#: Registered task names, in the order reports list them.
TASK_NAMES: tuple[str, ...] = (
    "ioi",
    "greater-than",
    "price-tagging",
    "entity-attributes",
    "copying",
)


def get_task(name: str | Task) -> Task:
    """The task registered as ``name`` (a :class:`Task` is returned unchanged)."""
    if isinstance(name, Task):
        return name
    from circuits.tasks.user import is_task_spec, load_user_task

    if is_task_spec(name):  # a user's package.module:factory
        return load_user_task(name)
    from circuits.tasks.copying import Copying
    from circuits.tasks.entities import EntityAttributes
    from circuits.tasks.greater_than import GreaterThan
    from circuits.tasks.ioi import IOI
    from circuits.tasks.price_tagging import PriceTagging

    factories = {
        "ioi": IOI,
        "greater-than": GreaterThan,
        "price-tagging": PriceTagging,
        "entity-attributes": EntityAttributes,
        "copying": Copying,
    }
    key = str(name).strip().lower().replace("_", "-")
    if key not in factories:
        raise TaskError(f"unknown task {name!r}; available tasks: {', '.join(TASK_NAMES)}")
    return factories[key]()


@cache
def all_words() -> frozenset[str]:
    """Every word any task or the filler text can produce (punctuation included)."""
    words = set(FILLER_WORDS)
    for name in TASK_NAMES:
        words |= get_task(name).vocabulary()
    return frozenset(words)
