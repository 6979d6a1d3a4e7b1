"""The measurements behind ``docs/patchscopes.md`` on the bundled models (the tests in
``tests/test_patchscopes.py`` assert bounds on the same numbers).

- :func:`next_token_table`: next-token prediction from every layer with the identity map
  (the logit lens), a least-squares affine map ``ℓ → n_layers`` and the paper's identity
  prompt ("prompt-id").
- :func:`identity_heatmaps`: the identity Patchscope's precision@1 of held-out words over
  (source layer × target layer), the word at the placeholder's position and at another one.

Run ``python -m circuits.patchscopes.experiments [next-token|identity|all]`` to print the
tables as Markdown (``--out DIR`` also writes the heatmaps as PNG and SVG). Everything is
deterministic: the data are drawn with fixed seeds, and no step is random.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from circuits.patchscopes.core import PatchscopeError
from circuits.patchscopes.evaluate import Heatmap, identity_heatmap, next_token_scores, task_prompts
from circuits.patchscopes.fitting import fit_affine
from circuits.patchscopes.prompts import identity_prompt

__all__ = [
    "held_out_words",
    "identity_heatmaps",
    "next_token_markdown",
    "next_token_table",
    "word_in_context",
]


def held_out_words(tokenizer: Any) -> list[str]:
    """The copying words of the test split that are tokens of ``tokenizer``, sorted."""
    from circuits.tasks.base import split_of
    from circuits.tasks.copying import WORDS

    vocab = tokenizer.get_vocab()
    return sorted(w for w in WORDS if split_of(w) == "test" and w in vocab)


def word_in_context(tokenizer: Any, word: str, position: int, seed: int = 0) -> str:
    """Filler text (seeded per word) with ``word`` as token ``position`` (BOS is token 0)."""
    from circuits.tasks.base import words_of
    from circuits.tasks.filler import filler_sentence

    rng = random.Random(f"patchscope-context:{word}:{seed}")
    pieces: list[str] = []
    while len(pieces) < position + 2:
        pieces += words_of(filler_sentence(rng))
    text = " ".join(pieces[: position - 1] + [word] + pieces[position - 1 : position + 1])
    if tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])[position] != word:
        raise PatchscopeError(f"{word!r} is not token {position} of {text!r}")
    return text


def next_token_table(model: Any, tokenizer: Any, *, n_per_task: int = 10) -> list[dict[str, Any]]:
    """One row per layer ``ℓ``: precision@1 and surprisal of next-token prediction on
    ``task_prompts("test", n_per_task)`` with the identity map, with an affine map fitted on
    ``task_prompts("train", n_per_task)``, and patched into the paper's identity prompt."""
    train, test = task_prompts("train", n_per_task), task_prompts("test", n_per_task)
    target = identity_prompt(tokenizer)  # the paper's prompt, ending at the placeholder
    rows = []
    for layer in range(model.cfg.n_layers + 1):
        lens = next_token_scores(model, test, layer, tokenizer=tokenizer)
        affine = fit_affine(model, layer, prompts=train, tokenizer_a=tokenizer)
        mapped = next_token_scores(model, test, layer, mapping=affine, tokenizer=tokenizer)
        prompt_id = next_token_scores(model, test, layer, target=target, tokenizer=tokenizer)
        rows.append(
            {"layer": layer, "identity": lens, "affine": mapped, "r2": affine.fit["r2"],
             "prompt_id": prompt_id}
        )  # fmt: skip
    return rows


def next_token_markdown(rows: list[dict[str, Any]]) -> str:
    """:func:`next_token_table` as the Markdown table of ``docs/patchscopes.md``."""
    lines = [
        "| ℓ | identity p@1 | identity surprisal | affine p@1 | affine surprisal | affine R² "
        "| prompt-id p@1 | prompt-id surprisal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        i, a, p = r["identity"], r["affine"], r["prompt_id"]
        lines.append(
            f"| {r['layer']} | {i.precision_at_1:.3f} | {i.surprisal:.2f} | "
            f"{a.precision_at_1:.3f} | {a.surprisal:.2f} | {r['r2']:.3f} | "
            f"{p.precision_at_1:.3f} | {p.surprisal:.2f} |"
        )
    return "\n".join(lines)


def identity_heatmaps(
    model: Any, tokenizer: Any, *, positions: tuple[int, ...] | None = None
) -> dict[int, Heatmap]:
    """The identity Patchscope (arrow form) on the held-out words, each word placed in filler
    text at each source position (default: the placeholder's own position, and 3)."""
    target = identity_prompt(tokenizer, query_arrow=True)
    positions = (target.position, 3) if positions is None else positions
    words = held_out_words(tokenizer)
    return {
        pos: identity_heatmap(
            model,
            [(word_in_context(tokenizer, w, pos), pos) for w in words],
            target=target,
            tokenizer=tokenizer,
        )
        for pos in positions
    }


def main(argv: list[str] | None = None) -> None:
    from circuits.models import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["next-token", "identity", "all"]
    )
    parser.add_argument("--models", nargs="+", default=["toy-gpt2", "toy-llama"])
    parser.add_argument("--out", default=None, help="folder for the heatmaps (PNG and SVG)")
    args = parser.parse_args(argv)
    for name in args.models:
        model, tokenizer = zoo.load(name)
        if args.which in ("next-token", "all"):
            print(f"== {name}: next-token prediction (test split, {model.cfg.n_layers} layers)")
            print(next_token_markdown(next_token_table(model, tokenizer)))
        if args.which in ("identity", "all"):
            for pos, heat in identity_heatmaps(model, tokenizer).items():
                print(f"== {name}: identity Patchscope, word at position {pos} (n={heat.n})")
                print(heat.to_markdown())
                if args.out:
                    heat.save(Path(args.out) / f"patchscope_identity_{name}_pos{pos}")


if __name__ == "__main__":
    main()
