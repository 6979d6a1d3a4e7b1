"""Task accuracy: how often a model's top next-token prediction is a correct answer."""

from __future__ import annotations

from typing import Any

import torch

from attribution.data import PromptPairs
from attribution.metrics import get_metric
from attribution.passes import at_positions
from circuits.tasks.base import Task
from circuits.tasks.encode import encode_examples
from circuits.tasks.registry import get_task

__all__ = ["next_token_logits", "prompt_behaviour", "task_accuracy"]


@torch.no_grad()
def next_token_logits(
    model: Any, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """Logits ``[n, vocab]`` (the model's dtype) at ``positions`` from a TransformerBridge or a
    Hugging Face LM."""
    out = model(tokens, attention_mask=mask)
    logits = out if isinstance(out, torch.Tensor) else out.logits
    return at_positions(logits, positions)


def task_accuracy(
    model: Any,
    tokenizer: Any,
    task: str | Task,
    *,
    n: int = 200,
    seed: int = 0,
    split: str = "test",
    batch_size: int = 64,
) -> float:
    """Share of ``n`` examples of ``split`` whose arg-max next token is one of the answers.

    The arg-max is over the whole vocabulary, not only the answer and distractor tokens.
    """
    task = get_task(task)
    data = encode_examples(task.examples(n, seed=seed, split=split), tokenizer)
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        logits = next_token_logits(
            model,
            data.clean[rows].to(device),
            data.attention_mask[rows].to(device),
            data.positions[rows].to(device),
        )
        top = logits.argmax(-1).cpu()
        correct += int((data.answers[rows] == top[:, None]).any(dim=1).sum())
    return correct / n


@torch.no_grad()
def prompt_behaviour(
    model: Any, data: PromptPairs, metric: str, *, batch_size: int = 16
) -> dict[str, float]:
    """The model on ``data``'s clean and corrupted prompts: the share whose arg-max next token
    is a (clean) answer, and the mean metric (against the clean run's logits), per prompt kind.

    A model that does the task scores high accuracy on clean prompts and a much lower metric
    on corrupted ones."""
    metric_fn = get_metric(metric)
    device = next(model.parameters()).device
    totals = {"accuracy_clean": 0.0, "accuracy_corrupted": 0.0}
    totals |= {"metric_clean": 0.0, "metric_corrupted": 0.0}
    for _, batch in data.batches(batch_size):
        batch = batch.to(device)
        clean = next_token_logits(model, batch.clean, batch.attention_mask, batch.positions)
        corrupted = next_token_logits(model, batch.corrupted, batch.attention_mask, batch.positions)
        for kind, logits in (("clean", clean), ("corrupted", corrupted)):
            top = logits.argmax(-1)
            totals[f"accuracy_{kind}"] += float((batch.answers == top[:, None]).any(1).sum())
            totals[f"metric_{kind}"] += float(metric_fn(logits, clean, batch).double().sum())
    return {k: v / len(data) for k, v in totals.items()}
