"""Where a run's prompts come from: a bundled task (``--task``) or a prompt file (``--data``).

The discovery job, ``circuits evaluate`` and ``circuits data check`` call these, so a file is
read, split and validated the same way everywhere, and before the model is loaded: the checks
that need a tokenizer load the tokenizer alone (seconds, even for a Hub model).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from attribution.data import PromptPairs
from attribution.positions import with_positions
from circuits.tasks import encode_examples, get_task
from circuits.tasks.files import PromptFile, load_prompt_file
from graphs.positions import PositionError, SpanSchema

__all__ = [
    "check_data_file",
    "check_user_examples",
    "data_summary",
    "load_tokenizer",
    "prompt_pairs",
    "split_pairs",
    "task_schema",
]

#: The default metric of prompt files (answers against distractors).
FILE_METRIC = "logit_diff"


def load_tokenizer(model: str) -> Any:
    """The tokenizer of a zoo name, a local model folder or a Hub name, without the model."""
    from transformers import AutoTokenizer

    from circuits import zoo
    from circuits.models import ModelLoadError

    if model in zoo.available():
        return zoo.load_tokenizer(model)
    try:
        return AutoTokenizer.from_pretrained(model)
    except Exception as err:  # noqa: BLE001 - transformers raises OSError, ValueError, ...
        raise ModelLoadError(
            f"cannot load the tokenizer of {model!r} to check the prompt file ({err}); give a "
            f"bundled model ({', '.join(zoo.available())}), a local model folder or a Hub name"
        ) from None


def check_data_file(
    data: str | Path, model: str, counterfactual: str | None = None, seed: int = 0
) -> PromptFile:
    """Read and fully validate a prompt file with ``model``'s tokenizer (no model weights).

    Raises:
        circuits.tasks.PromptFileError: every problem, each with ``FILE:LINE`` and the fix.
    """
    return load_prompt_file(data, load_tokenizer(model), counterfactual=counterfactual, seed=seed)


def check_user_examples(settings: Any) -> None:
    """For a user's ``module:factory`` task, the prompt-file checks on the examples a run
    draws, with the model's tokenizer, before the weights load; nothing for bundled tasks."""
    from circuits.tasks.user import check_user_task, is_task_spec

    if is_task_spec(settings.task):
        n = max(settings.n_examples, settings.n_eval)
        spans = getattr(settings, "positions", None) == "schema"
        check_user_task(
            settings.task, load_tokenizer(settings.model), n, settings.seed, spans=spans
        )


def split_pairs(
    settings: Any, tokenizer: Any, split: str, n: int
) -> tuple[PromptPairs, dict[str, Any]]:
    """The first ``n`` prompt pairs of ``split`` from ``settings.data`` or ``settings.task``,
    and what the run record says about them (``name``, ``description``, the file's layout and
    split)."""
    data = getattr(settings, "data", None)
    positions = getattr(settings, "positions", None)
    schema = positions == "schema"
    if data is None:
        task = get_task(settings.task)
        examples = task.examples(n, seed=settings.seed, split=split)
        if schema:
            pairs = encode_examples(examples, tokenizer, schema=task_schema(task))
        else:
            pairs = encode_examples(examples, tokenizer)
        info = {"name": task.name, "description": task.description}
    else:
        prompts = load_prompt_file(
            data, tokenizer, counterfactual=settings.counterfactual, seed=settings.seed
        )
        info = {"name": Path(data).stem, "description": f"prompt pairs from {data}"}
        info.update(prompts.describe())
        # absolute, so the run's readers find the file from any folder; the hash tells them
        # whether it is still the same file
        from circuits.app.integrity import prompt_file_identity

        info["data_file"], info["data_sha256"] = prompt_file_identity(data)
        if schema and prompts.schema is None:
            raise PositionError(
                f"{data}: --positions schema needs each row's spans, and this file has none; "
                "add a spans field to every row (docs/data.md), or use --positions tokens"
            )
        pairs = prompts.encode(tokenizer, split, limit=n, spans=True) if schema else (
            prompts.encode(tokenizer, split, limit=n)
        )  # fmt: skip
    if positions == "tokens":
        pairs = with_positions(pairs, "tokens")
    return pairs, info


def task_schema(task: Any) -> SpanSchema:
    """The span schema ``task`` declares; PositionError naming the tasks that have one."""
    from circuits.tasks import TASK_NAMES

    schema = getattr(task, "span_schema", None)
    if schema is None:
        with_schema = [n for n in TASK_NAMES if getattr(get_task(n), "span_schema", None)]
        raise PositionError(
            f"task {task.name!r} declares no span schema, so --positions schema has no spans; "
            f"use a task that has one ({', '.join(with_schema) or 'none yet'}), a prompt file "
            "with spans, or --positions tokens"
        )
    return schema


def prompt_pairs(settings: Any, tokenizer: Any) -> tuple[PromptPairs, PromptPairs, dict[str, Any]]:
    """``(train, test, task_info)`` of a discovery run: ``settings.n_examples`` train and
    ``settings.n_eval`` test pairs (a file's first rows of each split, in file order)."""
    train, info = split_pairs(settings, tokenizer, "train", settings.n_examples)
    test, _ = split_pairs(settings, tokenizer, "test", settings.n_eval)
    return train, test, info


def data_summary(prompts: PromptFile, tokenizer: Any) -> str:
    """What ``circuits data check`` prints about a valid file: rows, splits, token lengths."""
    lines = [
        f"{prompts.path}: {len(prompts.rows)} rows, {prompts.format} layout"
        + (f", counterfactual {prompts.counterfactual}" if prompts.counterfactual else ""),
        f"split: {prompts.describe()['split']}: {len(prompts.splits['train'])} train, "
        f"{len(prompts.splits['test'])} test",
    ]
    for split in ("train", "test"):
        if not prompts.splits[split]:
            continue
        pairs = prompts.encode(tokenizer, split)
        lengths = pairs.attention_mask.sum(dim=1).tolist()
        lines.append(
            f"{split}: prompts of {min(lengths)}-{max(lengths)} tokens "
            f"(median {statistics.median(lengths):g}); {int((pairs.answers >= 0).sum())} answers "
            f"and {int((pairs.distractors >= 0).sum())} distractors, each one token"
        )
        if prompts.schema is not None:
            spanned = prompts.encode(tokenizer, split, spans=True)
            lengths = spanned.spans.unsqueeze(-1) == torch.arange(len(prompts.schema))
            medians = lengths.sum(dim=1).median(dim=0).values.tolist()
            lines.append(
                f"{split}: {len(prompts.schema)} spans in every row, median tokens: "
                + ", ".join(f"{n} {m}" for n, m in zip(prompts.schema.names, medians, strict=True))
            )
    same = "prompts" + (" and their spans" if prompts.schema is not None else "")
    lines.append(f"ok: clean and corrupted {same} have equal token lengths; no problems found")
    return "\n".join(lines)
