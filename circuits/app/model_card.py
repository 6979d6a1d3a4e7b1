"""The model card (``README.md``) of a bundled model: data, recipe, seed, accuracy, IOI circuit.

``python -m circuits.app.model_card toy-gpt2`` re-measures a shipped model and rewrites its card.
It is app code, not part of :mod:`circuits.models.zoo`, because the card's IOI circuit is found by
the discovery job (:func:`circuits.app.discovery.find_circuit`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graphs.atomic_files import atomic_write

__all__ = ["ioi_circuit", "write_card"]


def ioi_circuit(folder: Path, n: int = 100, seed: int = 0) -> dict[str, Any]:
    """Size and held-out faithfulness of the minimal IOI circuit, found by the same code and
    defaults as ``circuits discover`` (EAP-IG with 5 steps, corrupted-prompt patching, f ≥ 0.9
    on ``n`` train prompts, measured on ``n`` test prompts)."""
    from circuits.app.discovery import DiscoverySettings, find_circuit

    settings = DiscoverySettings(model=str(folder), task="ioi", n_examples=n, n_eval=n, seed=seed)
    metrics = find_circuit(settings, quiet=True).metrics
    faith = metrics["faithfulness"]
    return {
        "n_edges": metrics["circuit"]["n_edges"],
        "n_edges_total": metrics["graph"]["n_edges"],
        "n_nodes": metrics["circuit"]["n_nodes"],
        "f_test": round(faith["f"], 4),
        "ci_test": [round(x, 4) for x in faith["ci"]] if faith["ci"] else None,
        "random_f_test": round(faith["random_f"], 4) if faith["random_f"] is not None else None,
    }


def write_card(
    folder: Path, recipe: Any, log: dict[str, Any], accuracy_n: int = 500
) -> dict[str, float]:
    """Measure held-out accuracy and the IOI circuit of the model in ``folder`` and write its
    ``training.json`` (the recipe and ``log``, to which they are added) and model card there."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from circuits.tasks import TASK_NAMES, get_task, task_accuracy

    folder = Path(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    accuracy = {
        name: task_accuracy(model, tokenizer, name, n=accuracy_n, seed=12345, split="test")
        for name in TASK_NAMES
    }
    circuit = ioi_circuit(folder)
    log["heldout_accuracy"] = accuracy
    log["ioi_circuit"] = circuit
    _write_training(folder, recipe, log)
    n_params = sum(p.numel() for p in model.parameters())
    size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
    rows = "\n".join(
        f"| {name} | {get_task(name).description.split(':')[0]} | {accuracy[name]:.3f} |"
        for name in TASK_NAMES
    )
    mixture = ", ".join(f"{k} {v:.0%}" for k, v in recipe.mixture.items())
    card = f"""# {recipe.name}

{recipe.description}. Trained from scratch by this repository, with no external data:

    python -m circuits.app.train_model --recipe {recipe.name} --seed {recipe.seed} --steps {recipe.steps}

## Training
- Architecture: `{recipe.architecture}` {json.dumps(recipe.config)}, {n_params:,} parameters,
  vocabulary {len(tokenizer)} words (word-level `tokenizers` tokenizer, `tokenizer.json`).
- Data: generated on the fly, {recipe.steps} steps × {recipe.batch_size} lines; mixture {mixture}.
  Task lines come only from each task's *training* split (a hash of the prompt decides the
  split), and are the prompt followed by one correct answer. Filler lines are sentences
  from a small grammar.
- Loss: next-token cross-entropy on every token, with weight {1 + recipe.answer_weight:g} on a task line's answer.
- Optimiser: AdamW, lr {recipe.lr:g} (warm-up {recipe.warmup} steps, cosine to 10 %),
  weight decay {recipe.weight_decay:g}, gradient clipping 1.0. Seed {recipe.seed}; one CPU thread.
- Wall time: {log.get("train_seconds", float("nan")):.0f} s on a 2-core CPU machine.

## Held-out accuracy
Share of {accuracy_n} test-split prompts per task whose arg-max next token (over the whole
vocabulary) is a correct answer.

| task | what | accuracy |
|---|---|---|
{rows}

## IOI circuit
`circuits discover --model {recipe.name} --task ioi` (EAP-IG, 5 steps, 100 train prompts,
target f ≥ 0.9) finds a circuit of **{circuit["n_edges"]} of {circuit["n_edges_total"]} edges**
({circuit["n_edges"] / circuit["n_edges_total"]:.1%}, {circuit["n_nodes"]} nodes) with faithfulness
{circuit["f_test"]:.3f} (95 % CI {circuit["ci_test"][0]:.3f} to {circuit["ci_test"][1]:.3f}) on 100 held-out
prompts; a random circuit of the same size has {circuit["random_f_test"]:.3f}.

Files: {size_mb:.1f} MB in total.
"""
    (folder / "README.md").write_text(card)
    return accuracy


def _write_training(folder: Path, recipe: Any, log: dict[str, Any]) -> None:
    """``training.json``: the recipe, then the training log with the card's measurements;
    written once, replacing any old one only when complete."""
    with atomic_write(folder / "training.json") as handle:
        handle.write((json.dumps({"recipe": recipe.to_dict(), **log}, indent=1) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    import argparse

    from circuits.models.zoo import model_dir
    from circuits.models.zoo.recipes import Recipe
    from graphs.atomic_files import atomic_directory

    parser = argparse.ArgumentParser(
        prog="python -m circuits.app.model_card",
        description="Re-measure a bundled model and rewrite its model card.",
    )
    parser.add_argument("name", help="bundled model name")
    args = parser.parse_args(argv)
    folder = model_dir(args.name)
    log = json.loads((folder / "training.json").read_text())
    import shutil

    # rewrite a copy, then swap it in, so an interrupted run keeps the old card
    with atomic_directory(folder, overwrite=True) as tmp:
        for f in folder.iterdir():
            shutil.copy2(f, tmp / f.name)
        accuracy = write_card(tmp, Recipe(**log["recipe"]), log)
    print(f"{args.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
