"""Train a bundled model and write its folder and model card:
``python -m circuits.app.train_model --recipe toy-gpt2``.

The training itself is :func:`circuits.models.zoo.train.train`; this command is in the app
because the folder's model card (:mod:`circuits.app.model_card`) runs the discovery job.
The output folder (``config.json``, ``model.safetensors``, tokenizer files, ``training.json``
and a model card ``README.md``) is written to a temporary folder next to the destination and
renamed into place at the end, so an interrupted run leaves no half-written model behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from circuits.app.model_card import write_card
from circuits.models.zoo.recipes import RECIPES, Recipe, get_recipe
from circuits.models.zoo.shipped import MODELS_DIR
from circuits.models.zoo.train import train
from graphs.atomic_files import atomic_directory

__all__ = ["main", "save"]


def save(
    model: torch.nn.Module,
    tokenizer: Any,
    recipe: Recipe,
    log: dict[str, Any],
    out: Path,
    overwrite: bool,
) -> None:
    """Write the model folder atomically: a temporary sibling folder renamed into place; the
    card writes ``training.json`` with its measurements."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, recipe, log)


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    parser = argparse.ArgumentParser(
        prog="python -m circuits.app.train_model", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--recipe", default="toy-gpt2", choices=sorted(RECIPES), help="model to train"
    )
    parser.add_argument("--steps", type=int, help="override the recipe's number of steps")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument("--out", type=Path, help=f"output folder (default: {MODELS_DIR}/<recipe>)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder"
    )
    parser.add_argument(
        "--eval-every", type=int, default=500, help="steps between held-out evaluations (0: never)"
    )
    args = parser.parse_args(argv)
    recipe = get_recipe(args.recipe)
    if args.steps is not None:
        recipe = replace(recipe, steps=args.steps)
    if args.seed is not None:
        recipe = replace(recipe, seed=args.seed)
    out = args.out or MODELS_DIR / recipe.name
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        parser.error(f"{out} exists and is not empty; pass --overwrite to replace it")
    model, tokenizer, log = train(recipe, eval_every=args.eval_every)
    save(model, tokenizer, recipe, log, out, overwrite=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
