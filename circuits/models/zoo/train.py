"""Train a bundled model (the command that trains one and writes its folder and model card is
``python -m circuits.app.train_model --recipe toy-gpt2``, in the app: the card runs the
discovery job).

The model learns a mixture of the tasks' *training* splits plus filler text (see
:mod:`circuits.models.zoo.recipes`); held-out accuracy is measured on the test splits, which no
training line comes from. Training is deterministic for a recipe and seed: the weights are
initialised from ``torch.manual_seed(seed)``, the data stream from a seeded ``random.Random``,
and torch runs on one thread so that reductions always happen in the same order.
"""

from __future__ import annotations

import math
import random
import sys
import time
from typing import Any

import torch

from circuits.models.zoo.recipes import Recipe, RecipeError
from circuits.models.zoo.tokenizer import build_tokenizer
from circuits.tasks import TASK_NAMES, get_task, task_accuracy, token_ids
from circuits.tasks.encode import pad_id, pad_rows
from circuits.tasks.filler import filler_sentence

__all__ = ["build_model", "train", "training_lines"]


def build_model(recipe: Recipe, tokenizer: Any) -> torch.nn.Module:
    """A randomly initialised Hugging Face causal LM for ``recipe`` (seed it before calling)."""
    import transformers

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if recipe.architecture == "GPT2LMHeadModel":
        config = transformers.GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=recipe.max_positions,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
            **recipe.config,
        )
    elif recipe.architecture == "LlamaForCausalLM":
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=recipe.max_positions,
            **ids,
            **recipe.config,
        )
    else:
        raise RecipeError(f"recipe {recipe.name!r}: unsupported architecture {recipe.architecture}")
    config.architectures = [recipe.architecture]
    return getattr(transformers, recipe.architecture)(config)


def training_lines(recipe: Recipe, rng: random.Random, n: int) -> list[tuple[str, bool]]:
    """``n`` training lines ``(text, is_task)`` drawn by the recipe's mixture, train split only."""
    sources = list(recipe.mixture)
    weights = [recipe.mixture[s] for s in sources]
    tasks = {name: get_task(name) for name in sources if name != "filler"}
    lines = []
    for source in rng.choices(sources, weights=weights, k=n):
        if source == "filler":
            lines.append((" ".join(filler_sentence(rng) for _ in range(rng.randint(1, 3))), False))
            continue
        task = tasks[source]
        while True:
            example = task.sample(rng)
            if task.split_of(example) == "train":
                break
        lines.append((task.training_text(example, rng), True))
    return lines


def _batch(tokenizer: Any, lines: list[tuple[str, bool]], recipe: Recipe):
    ids = token_ids(tokenizer, [text for text, _ in lines])
    width = max(len(r) for r in ids)
    if width > recipe.max_positions:
        raise RecipeError(
            f"a training line has {width} tokens, more than max_positions={recipe.max_positions}"
        )
    tokens, mask = pad_rows(ids, pad_id(tokenizer))
    weights = mask[:, 1:].float()  # every real target token counts once
    for i, (row, (_, is_task)) in enumerate(zip(ids, lines, strict=True)):
        if is_task:  # the last target of a task line is its answer
            weights[i, len(row) - 2] += recipe.answer_weight
    return tokens, mask, weights


def _lr(recipe: Recipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def evaluate(
    model: torch.nn.Module, tokenizer: Any, n: int = 200, seed: int = 0
) -> dict[str, float]:
    """Held-out (test split) accuracy of ``model`` on every task."""
    model.eval()
    out = {
        name: task_accuracy(model, tokenizer, name, n=n, seed=seed, split="test")
        for name in TASK_NAMES
    }
    model.train()
    return out


def train(
    recipe: Recipe, *, eval_every: int = 500, eval_n: int = 200, quiet: bool = False
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Train ``recipe``; returns the model, its tokenizer and a log (losses, accuracies, time)."""
    from tqdm.auto import tqdm

    from circuits.tasks import all_words

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenizer = build_tokenizer(all_words())
        torch.manual_seed(recipe.seed)
        model = build_model(recipe, tokenizer)
        model.train()
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": recipe.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=recipe.lr,
            betas=(0.9, 0.98),
        )
        rng = random.Random(f"zoo:{recipe.name}:{recipe.seed}")
        log: dict[str, Any] = {"loss": [], "accuracy": {}}
        start = time.perf_counter()
        bar = tqdm(
            range(recipe.steps), desc=f"training {recipe.name}", disable=quiet, file=sys.stderr
        )
        running = None
        for step in bar:
            tokens, mask, weights = _batch(
                tokenizer, training_lines(recipe, rng, recipe.batch_size), recipe
            )
            for group in optimizer.param_groups:
                group["lr"] = _lr(recipe, step)
            logits = model(tokens, attention_mask=mask).logits[:, :-1]
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
            ).view_as(weights)
            loss = (ce * weights).sum() / weights.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 50 == 0 or step == recipe.steps - 1:
                log["loss"].append([step, round(running, 4)])
                bar.set_postfix(loss=f"{running:.3f}")
            if eval_every and (step + 1) % eval_every == 0 and step + 1 < recipe.steps:
                acc = evaluate(model, tokenizer, n=eval_n)
                log["accuracy"][str(step + 1)] = acc
                if not quiet:
                    tqdm.write(
                        f"step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()),
                        file=sys.stderr,
                    )
        log["train_seconds"] = round(time.perf_counter() - start, 1)
        model.eval()
        return model, tokenizer, log
    finally:
        torch.set_num_threads(threads)
