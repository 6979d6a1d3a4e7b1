"""Synthetic tasks with known answers: IOI, greater-than, price tagging, entity attributes, copying.

``get_task(name).examples(n, seed=..., split="train" | "test")`` gives text examples;
``encode_examples(examples, tokenizer)`` turns them into :class:`attribution.PromptPairs`.
"""

from circuits.tasks.accuracy import task_accuracy
from circuits.tasks.base import SPLITS, Example, Task, TaskError, join_spans, split_of, words_of
from circuits.tasks.causal import CausalModel
from circuits.tasks.copying import Copying
from circuits.tasks.encode import encode_examples, token_ids
from circuits.tasks.entities import WORLD, EntityAttributes, World
from circuits.tasks.files import PromptFile, PromptFileError, load_prompt_file, read_prompt_file
from circuits.tasks.greater_than import GreaterThan
from circuits.tasks.ioi import IOI
from circuits.tasks.price_tagging import PRICE_CAUSAL_MODEL, PriceTagging
from circuits.tasks.registry import TASK_NAMES, all_words, get_task, register_task, task_names

__all__ = [
    "IOI",
    "PRICE_CAUSAL_MODEL",
    "SPLITS",
    "TASK_NAMES",
    "WORLD",
    "CausalModel",
    "Copying",
    "EntityAttributes",
    "Example",
    "GreaterThan",
    "PriceTagging",
    "PromptFile",
    "PromptFileError",
    "Task",
    "TaskError",
    "World",
    "all_words",
    "encode_examples",
    "get_task",
    "join_spans",
    "load_prompt_file",
    "read_prompt_file",
    "register_task",
    "split_of",
    "task_accuracy",
    "task_names",
    "token_ids",
    "words_of",
]
