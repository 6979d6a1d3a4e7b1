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
from circuits.tasks.encode import token_ids
from circuits.tasks.file_splits import cross_split_prompts
from circuits.tasks.files import PromptFile, load_prompt_file
from graphs.positions import PositionError, SpanSchema

__all__ = [
    "check_data_file",
    "check_user_examples",
    "data_summary",
    "duplicate_lines",
    "held_out_prompts",
    "model_context",
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

    from circuits.models import ModelLoadError, zoo

    if model in zoo.available():
        return zoo.load_tokenizer(model)
    try:
        return AutoTokenizer.from_pretrained(model)
    except Exception as err:  # noqa: BLE001 - transformers raises OSError, ValueError, ...
        raise ModelLoadError(
            f"cannot load the tokenizer of {model!r} to check the prompt file ({err}); give a "
            f"bundled model ({', '.join(zoo.available())}), a local model folder or a Hub name"
        ) from None


def model_context(model: str) -> int | None:
    """The longest input (tokens) ``model`` takes, from its config alone (a zoo name, a local
    folder or a Hub name); None when the config cannot be read or names no limit."""
    from transformers import AutoConfig

    from circuits.models import zoo

    bundled = model in zoo.available()
    try:
        config = AutoConfig.from_pretrained(
            zoo.model_dir(model) if bundled else model, local_files_only=bundled
        )
    except Exception:  # noqa: BLE001 - loading the model itself names what is wrong
        return None
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_data_file(
    data: str | Path,
    model: str,
    counterfactual: str | None = None,
    seed: int = 0,
    positions: str | None = None,
) -> tuple[PromptFile, Any]:
    """The one validation pass of ``circuits data check`` and ``discover --data``: the file,
    ``model``'s tokenizer and context length (no weights), ``--positions`` and the train/test
    split a run needs. Returns the file and the tokenizer.

    Raises:
        circuits.tasks.PromptFileError: every problem, each with ``FILE:LINE`` and the fix.
    """
    tokenizer = load_tokenizer(model)
    prompts = load_prompt_file(
        data, tokenizer, counterfactual=counterfactual, seed=seed,
        context=model_context(model), positions=positions, run=True,
    )  # fmt: skip
    return prompts, tokenizer


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
    settings: Any, tokenizer: Any, split: str, n: int, prompts: PromptFile | None = None
) -> tuple[PromptPairs, dict[str, Any]]:
    """The first ``n`` prompt pairs of ``split`` from ``settings.data`` (read and checked
    here unless ``prompts`` is the file, already) or ``settings.task``, and what the run
    record says about them (``name``, ``description``, the file's layout and split)."""
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
        if prompts is None:
            prompts = load_prompt_file(
                data, tokenizer, counterfactual=settings.counterfactual, seed=settings.seed
            )
        info = {"name": Path(data).stem, "description": f"prompt pairs from {data}"}
        info.update(prompts.describe())
        if schema and prompts.schema is None:
            raise PositionError(
                f"{data}: --positions schema needs each row's spans, and this file has none; "
                "add a spans field to every row (docs/guide.md, Spans in a prompt file), "
                "or use --positions tokens"
            )
        pairs = prompts.encode(tokenizer, split, limit=n, spans=True) if schema else (
            prompts.encode(tokenizer, split, limit=n)
        )  # fmt: skip
    if positions == "tokens":
        pairs = with_positions(pairs, "tokens")
    return pairs, info


def task_schema(task: Any) -> SpanSchema:
    """The span schema ``task`` declares; PositionError naming the tasks that have one."""
    from circuits.tasks import task_names

    schema = getattr(task, "span_schema", None)
    if schema is None:
        with_schema = [n for n in task_names() if getattr(get_task(n), "span_schema", None)]
        raise PositionError(
            f"task {task.name!r} declares no span schema, so --positions schema has no spans; "
            f"use a task that has one ({', '.join(with_schema) or 'none yet'}), a prompt file "
            "with spans, or --positions tokens"
        )
    return schema


def prompt_pairs(settings: Any, tokenizer: Any) -> tuple[PromptPairs, PromptPairs, dict[str, Any]]:
    """``(train, test, task_info)`` of a discovery run: ``settings.n_examples`` train and
    ``settings.n_eval`` test pairs (a file's first rows of each split, in file order)."""
    prompts = None
    if getattr(settings, "data", None) is not None:  # read and checked once for both splits
        prompts = load_prompt_file(
            settings.data, tokenizer, counterfactual=settings.counterfactual, seed=settings.seed
        )
    train, info = split_pairs(settings, tokenizer, "train", settings.n_examples, prompts)
    test, _ = split_pairs(settings, tokenizer, "test", settings.n_eval, prompts)
    if prompts is not None:  # the run records the file once: absolute, so its readers find it
        # from any folder, and hashed, so they know whether it is still the same file
        from circuits.app.integrity import prompt_file_identity

        info["data_file"], info["data_sha256"] = prompt_file_identity(settings.data)
    return train, test, info


def held_out_prompts(train: PromptPairs, test: PromptPairs) -> dict[str, int]:
    """``n_prompts_in_both_splits``: distinct prompts (clean or corrupted, compared as the
    real token ids the model reads) of ``test`` that also occur in ``train``; the report's
    held-out sentence is made from it."""

    def rows(pairs: PromptPairs) -> list[list[int]]:
        mask = pairs.attention_mask.bool()
        return [t[m].tolist() for side in (pairs.clean, pairs.corrupted)
                for t, m in zip(side, mask, strict=True)]  # fmt: skip

    return {"n_prompts_in_both_splits": cross_split_prompts(rows(train), rows(test))}


def duplicate_lines(prompts: PromptFile) -> list[str]:
    """What ``data check`` says about the duplicate rows it dropped: every one, by the line
    of the row it repeats."""
    if not prompts.duplicates:
        return []
    repeats: dict[int, list[int]] = {}
    for line, first in prompts.duplicates:
        repeats.setdefault(first, []).append(line)
    head = (
        f"dropped {len(prompts.duplicates)} duplicate row(s) before the split (the same prompts, "
        "answers, distractors and spans as an earlier row):"
    )
    return [head] + [
        f"  {prompts.path}:{first} is repeated on line(s) {', '.join(map(str, lines))}"
        for first, lines in repeats.items()
    ]


def data_summary(prompts: PromptFile, tokenizer: Any) -> str:
    """What ``circuits data check`` prints about a valid file: rows, splits, token lengths."""
    lines = [
        f"{prompts.path}: {len(prompts.rows)} rows, {prompts.format} layout"
        + (f", counterfactual {prompts.counterfactual}" if prompts.counterfactual else ""),
        f"split: {prompts.describe()['split']}: {len(prompts.splits['train'])} train, "
        f"{len(prompts.splits['test'])} test",
        *duplicate_lines(prompts),
    ]
    for split in ("train", "test"):
        rows = prompts.splits[split]
        if not rows:
            continue
        # the lengths the validation pass measured: tokenising every row again doubled the time
        known = prompts.token_lengths
        lengths = [known[r.line] for r in rows] if known else [
            len(ids) for ids in token_ids(tokenizer, [r.clean for r in rows])
        ]  # fmt: skip
        answers = sum(len(r.answers) + len(r.answer_ids) for r in rows)
        distractors = sum(len(r.distractors) + len(r.distractor_ids) for r in rows)
        lines.append(
            f"{split}: prompts of {min(lengths)}-{max(lengths)} tokens "
            f"(median {statistics.median(lengths):g}); {answers} answers "
            f"and {distractors} distractors, each one token"
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
    lines.append(
        f"ok: clean and corrupted {same} have equal token lengths; no prompt of one split "
        "occurs in the other; no problems found"
    )
    return "\n".join(lines)
