"""The experiments behind ``docs/alignment.md`` (the tests run small versions of each).

- :func:`planted_model` / :func:`planted_experiment`: a random tiny GPT-2 bridge whose weights
  are edited so that a known boolean variable (is the last token in a set ``S``?) lives along a
  known unit direction ``u`` of the residual stream (random, not axis-aligned), and nothing
  else reaches the answer; DAS with ``k = 1`` must find ``u``.
- :func:`price_experiment`: Boundless DAS for ``above_lower`` on the bundled ``toy-gpt2``
  (a layers × positions scan, held-out IIA, and two controls).
- :func:`entity_experiment`: MDAS (cause + isolate objectives) against DAS trained on the
  cause objective alone, at the same site and dimension, scored by RAVEL's Disentangle.

Run ``python -m circuits.alignment.experiments [planted|price|entity|all]`` to print the
numbers (``--out DIR`` also writes the price-tagging heatmap).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from circuits.alignment.data import (
    CounterfactualPairs,
    causal_pairs,
    entity_pairs,
    shuffled_variable,
)
from circuits.alignment.interventions import DAS, BoundlessDAS, Subspace, cosine
from circuits.alignment.metrics import normalized_iia
from circuits.alignment.search import scan
from circuits.alignment.sites import Site
from circuits.alignment.train import TrainConfig, evaluate, task_accuracy, train_intervention

__all__ = [
    "PlantedModel",
    "entity_experiment",
    "planted_experiment",
    "planted_model",
    "planted_pairs",
    "price_experiment",
]


# --------------------------------------------------------------------------- planted direction


@dataclass
class PlantedModel:
    """A bridge whose answer (``yes`` vs ``no`` token) is ``sign(u · h)`` of the residual at
    ``site``, where ``u · h = ± magnitude(last token)`` and ``+`` iff the last token is in the
    set (``in_set[token]``)."""

    model: Any
    direction: torch.Tensor  # u, unit, orthogonal to the all-ones vector
    in_set: torch.Tensor  # [vocab] bool
    yes: int
    no: int
    site: Site
    first_token: int  # prompts use tokens first_token..vocab-1


def planted_model(
    *, seed: int = 0, d_model: int = 32, n_layers: int = 2, vocab: int = 512, offset: float = 8.0
) -> PlantedModel:
    """Edit a random GPT-2 so that one variable lives in one known direction.

    ``u`` is a random unit vector orthogonal to ``1`` (so LayerNorm's centring keeps it). Token
    embeddings are random vectors projected off ``u`` plus ``± a_t u`` (``a_t`` ∈ [0.5, 1.5],
    sign ``+`` for tokens in a random half of the vocabulary); position embeddings and every
    block's output projections (attention ``c_proj``, MLP ``c_proj``, weights and biases) are
    projected off ``u``. So the blocks read everything but never write along ``u``: at any
    layer, ``u · h`` at the last position is ``± a_t`` of the last token, while the other 31
    directions carry token identity, position and attention/MLP mixing of the context. The
    (tied) unembedding gives ``yes = +b u`` and ``no = −b u``, so the yes/no logit difference
    is ``2b · u · LN(h)`` — the sign of ``u · h``.
    """
    from circuits.models import load_model
    from circuits.models.random import random_hf_model

    hf = random_hf_model(
        "GPT2LMHeadModel", n_layers=n_layers, d_model=d_model, vocab_size=vocab, seed=seed
    )
    gen = torch.Generator().manual_seed(10_000 + seed)
    u = torch.randn(d_model, generator=gen)
    u = u - u.mean()
    u = u / u.norm()
    proj = torch.eye(d_model) - torch.outer(u, u)
    yes, no, first = 1, 2, 3
    in_set = torch.zeros(vocab, dtype=torch.bool)
    perm = torch.randperm(vocab - first, generator=gen) + first
    in_set[perm[: (vocab - first) // 2]] = True
    with torch.no_grad():
        emb = torch.randn(vocab, d_model, generator=gen) * 0.3 @ proj
        magnitude = 0.5 + torch.rand(vocab, generator=gen)
        sign = in_set.float() * 2 - 1
        emb = emb + (sign * magnitude)[:, None] * u[None, :]
        emb[yes] = 2.0 * u
        emb[no] = -2.0 * u
        emb[0] = emb[0] @ proj  # BOS
        hf.transformer.wte.weight.copy_(emb)
        # A large constant component (along w ⟂ u, 1) keeps LayerNorm's scale nearly fixed,
        # so the answer depends on u · h and not on how an intervention changes the norm.
        w = torch.randn(d_model, generator=gen) @ proj
        w = w - w.mean()
        w = w - (w @ u) * u
        w = w / w.norm()
        hf.transformer.wpe.weight.copy_(hf.transformer.wpe.weight @ proj + offset * w[None, :])
        for block in hf.transformer.h:
            for conv in (block.attn.c_proj, block.mlp.c_proj):  # Conv1D: y = x @ W + b
                conv.weight.copy_(conv.weight @ proj)
                conv.bias.copy_(conv.bias @ proj)
        hf.transformer.ln_f.weight.fill_(1.0)
        hf.transformer.ln_f.bias.zero_()
    model = load_model(hf)
    site = Site(f"blocks.{n_layers - 1}.hook_resid_pre", "last")
    return PlantedModel(model, u, in_set, yes, no, site, first)


def planted_pairs(
    planted: PlantedModel, n: int, *, seq_len: int = 6, seed: int = 0
) -> CounterfactualPairs:
    """Random prompts (BOS + ``seq_len - 1`` tokens); label = ``yes`` iff the *source*'s last
    token is in the set (the variable takes the source's value), base label likewise for the
    base. Half the pairs are informative (base and source disagree)."""
    gen = torch.Generator().manual_seed(seed)
    vocab = planted.in_set.shape[0]

    def prompts() -> torch.Tensor:
        t = torch.randint(planted.first_token, vocab, (n, seq_len), generator=gen)
        t[:, 0] = 0
        return t

    base, source = prompts(), prompts()
    # make exactly half the pairs informative: flip the source's last token where needed
    want_diff = torch.arange(n) % 2 == 0
    members = torch.nonzero(planted.in_set).flatten()
    others = torch.nonzero(~planted.in_set[planted.first_token :]).flatten() + planted.first_token
    for i in range(n):
        b_in = bool(planted.in_set[base[i, -1]])
        s_in = b_in != bool(want_diff[i])
        pool = members if s_in else others
        source[i, -1] = pool[torch.randint(len(pool), (1,), generator=gen)]
    yes_no = torch.tensor([planted.no, planted.yes])
    mask = torch.ones_like(base)
    return CounterfactualPairs(
        base=base,
        source=source,
        base_mask=mask,
        source_mask=mask.clone(),
        labels=yes_no[planted.in_set[source[:, -1]].long()],
        base_labels=yes_no[planted.in_set[base[:, -1]].long()],
        variables=("last_in_set",),
    )


def planted_experiment(
    *, seed: int = 0, n_train: int = 512, n_test: int = 512, steps: int = 200, lr: float = 1e-2,
    progress: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Train DAS (k = 1) at the planted site; return held-out IIA and ``|cos(learned, u)|``."""
    planted = planted_model(seed=seed)
    train = planted_pairs(planted, n_train, seed=seed + 1)
    test = planted_pairs(planted, n_test, seed=seed + 2)
    d = int(planted.direction.shape[0])
    das = DAS(d, 1, seed=seed + 3)
    config = TrainConfig(
        steps=steps, batch_size=64, lr=lr, eval_every=50, patience=None,
        candidates=[planted.no, planted.yes], seed=seed, progress=progress,
    )  # fmt: skip
    trained = train_intervention(planted.model, planted.site, das, train, train, config=config)
    scores = evaluate(planted.model, planted.site, das, test, candidates=config.candidates)
    control = evaluate(
        planted.model, planted.site, Subspace.random(d, 1, seed=seed + 4), test,
        candidates=config.candidates,
    )  # fmt: skip
    return {
        "iia": scores["iia"],
        "iia_informative": scores["iia_informative"],
        "cosine": cosine(das.basis()[0], planted.direction),
        "random_direction_cosine": cosine(
            Subspace.random(d, 1, seed=seed + 4).basis()[0], planted.direction
        ),
        "random_direction_iia": control["iia"],
        "task_accuracy": task_accuracy(planted.model, test, candidates=config.candidates),
        "steps": float(trained.steps),
    }


# --------------------------------------------------------------------------- price tagging


def _price_setup(n_train: int, n_val: int, n_test: int, seed: int, variable: str = "above_lower"):
    from circuits.models import zoo
    from circuits.tasks.price_tagging import PRICE_CAUSAL_MODEL, PriceTagging

    model, tokenizer = zoo.load("toy-gpt2")
    task = PriceTagging()
    data = {
        name: causal_pairs(
            task, PRICE_CAUSAL_MODEL, variable, tokenizer, n, seed=seed + off, split=split
        )
        for name, n, off, split in (
            ("train", n_train, 0, "train"),
            ("val", n_val, 100, "train"),
            ("test", n_test, 200, "test"),
        )
    }
    return model, tokenizer, task, data


def _best_price_site(
    model: Any,
    data: dict[str, Any],
    config: TrainConfig,
    layers: tuple[int, ...],
    positions: tuple[Any, ...],
    init_width: int,
    seed: int,
    out: str | None,
    report: dict[str, Any],
) -> tuple[Site, Any]:
    """The scan of every (layer, position) site: its tables go into ``report`` (and its
    heatmap into ``out``); returns the best site on validation pairs and its trained
    intervention."""
    result = scan(
        model, lambda d: BoundlessDAS(d, init_width, seed=seed), data["train"], data["val"],
        layers=layers, positions=positions, test_pairs=data["val"], config=config,
    )  # fmt: skip
    report["table_markdown"] = result.to_markdown()
    report["table"] = result.table.tolist()
    report["k_table"] = [[result.details[(layer, p)]["k"] for p in positions] for layer in layers]
    site, _ = result.best()
    trained = result.interventions[(site.layer, site.positions)]
    if out:
        result.heatmap(
            f"{out}/alignment_price_tagging_above_lower",
            title="Boundless DAS: above_lower (val IIA)",
        )
    return site, trained


def _shuffled_price_control(
    model: Any,
    tokenizer: Any,
    site: Site,
    init_width: int,
    config: TrainConfig,
    seed: int,
    sizes: tuple[int, int, int],
) -> dict[str, Any]:
    """Control 2: the same method trained at ``site`` on a variable the model does not
    compute (a pseudo-random boolean of the inputs); its test evaluation and ``k``."""
    from circuits.tasks.price_tagging import PRICE_CAUSAL_MODEL, PriceTagging

    n_train, n_val, n_test = sizes
    fake = shuffled_variable(PRICE_CAUSAL_MODEL, "above_lower", seed=seed)
    fake_data = {
        name: causal_pairs(PriceTagging(), fake, "above_lower", tokenizer, n, seed=seed + off, split=split)
        for name, n, off, split in (("train", n_train, 0, "train"), ("val", n_val, 100, "train"), ("test", n_test, 200, "test"))
    }  # fmt: skip
    shuffled = BoundlessDAS(int(model.cfg.d_model), init_width, seed=seed)
    train_intervention(model, site, shuffled, fake_data["train"], fake_data["val"], config=config)
    control = evaluate(model, site, shuffled, fake_data["test"])
    control["k"] = shuffled.k
    return control


def price_experiment(
    *,
    layers: tuple[int, ...] = (0, 1, 2, 3),
    positions: tuple[Any, ...] = (-1, -2, -4),
    init_width: int = 16,
    boundary_weight: float = 2.0,
    n_train: int = 512,
    n_val: int = 128,
    n_test: int = 256,
    steps: int = 300,
    seed: int = 0,
    site: Site | None = None,
    scan_sites: bool = True,
    shuffled_control: bool = True,
    progress: bool = False,
    out: str | None = None,
) -> dict[str, Any]:
    """Boundless DAS for ``above_lower`` on ``toy-gpt2``.

    Scans ``blocks.{l}.hook_resid_pre`` × ``positions`` (negative: counted from the end; the
    prompt ends "... otherwise no . P1 . P2 dollars", so -1 is "dollars", -2 the price's cents,
    -4 its whole-dollar digit), picks the best site on validation pairs
    (train split), and reports held-out IIA (test split) there, with controls at the same site:
    a random subspace of the same size (untrained), and Boundless DAS trained on a shuffled
    variable (a pseudo-random boolean of the inputs) in place of ``above_lower``.
    """
    t0 = time.time()
    model, tokenizer, task, data = _price_setup(n_train, n_val, n_test, seed)
    config = TrainConfig(
        steps=steps, batch_size=32, lr=2e-3, boundary_lr=5e-2, boundary_weight=boundary_weight,
        eval_every=50, patience=None, seed=seed, progress=progress,
    )  # fmt: skip
    d = int(model.cfg.d_model)
    report: dict[str, Any] = {
        "informative_share_train": data["train"].informative_share,
        "informative_share_test": data["test"].informative_share,
        "task_accuracy": task_accuracy(model, data["test"]),
    }
    if scan_sites:
        site, trained = _best_price_site(
            model, data, config, layers, positions, init_width, seed, out, report
        )
    else:
        assert site is not None
        trained = BoundlessDAS(d, init_width, seed=seed)
        train_intervention(model, site, trained, data["train"], data["val"], config=config)
    report["site"] = site.label
    test = evaluate(model, site, trained, data["test"])
    report["test"] = test
    report["k"] = trained.k
    report["normalized_iia"] = normalized_iia(test["iia"], test["chance"], report["task_accuracy"])
    # control 1: random subspace of the same size, not trained
    control = Subspace.random(d, max(1, trained.k), seed=seed + 7)
    report["control_random_subspace"] = evaluate(model, site, control, data["test"])
    if shuffled_control:
        report["control_shuffled_variable"] = _shuffled_price_control(
            model, tokenizer, site, init_width, config, seed, (n_train, n_val, n_test)
        )
    report["seconds"] = time.time() - t0
    return report


# --------------------------------------------------------------------------- entities


def entity_experiment(
    *,
    attribute: str = "country",
    other_attributes: tuple[str, ...] = ("language",),
    layer: int = 0,
    k: int = 16,
    n_train: int = 256,
    n_test: int = 128,
    steps: int = 300,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """MDAS vs cause-only DAS for ``attribute`` at the entity token of
    ``blocks.{layer}.hook_resid_pre``, both ``DAS(d, k)`` with the same seed and steps."""
    from circuits.models import zoo

    t0 = time.time()
    model, tokenizer = zoo.load("toy-gpt2")
    site = Site(f"blocks.{layer}.hook_resid_pre", "entity")
    kwargs = dict(other_attributes=other_attributes, n_cause=n_train, n_isolate=n_train)
    train = entity_pairs(tokenizer, attribute, seed=seed, split="train", **kwargs)
    val = entity_pairs(tokenizer, attribute, seed=seed + 100, split="train",
                       other_attributes=other_attributes, n_cause=64, n_isolate=64)  # fmt: skip
    test = entity_pairs(tokenizer, attribute, seed=seed + 200, split="test",
                        other_attributes=other_attributes, n_cause=n_test, n_isolate=n_test)  # fmt: skip
    d = int(model.cfg.d_model)
    config = TrainConfig(steps=steps, batch_size=64, lr=2e-3, eval_every=50, patience=None,
                         seed=seed, progress=progress)  # fmt: skip
    report: dict[str, Any] = {
        "site": site.label,
        "k": k,
        "task_accuracy": task_accuracy(model, test),
    }
    cause_only = train.select(train.kind_mask("cause"))
    das = DAS(d, k, seed=seed)
    train_intervention(
        model, site, das, cause_only, val.select(val.kind_mask("cause")), config=config
    )
    report["das_cause_only"] = evaluate(model, site, das, test)
    mdas = DAS(d, k, seed=seed)
    mconfig = replace(config, kind_weights={"cause": 1.0, "isolate": 1.0})
    train_intervention(model, site, mdas, train, val, config=mconfig)
    report["mdas"] = evaluate(model, site, mdas, test)
    report["seconds"] = time.time() - t0
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="?", default="all", choices=["planted", "price", "entity", "all"]
    )
    parser.add_argument("--out", default=None, help="folder for the heatmap")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--planted-seeds", type=int, nargs="+", default=[0, 1, 2],
        help="seeds of the planted-direction runs (one table row each)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    runs = {
        "planted": lambda: {
            f"seed {s}": planted_experiment(seed=s, progress=args.progress)
            for s in args.planted_seeds
        },
        "price": lambda: price_experiment(progress=args.progress, out=args.out),
        "entity": lambda: entity_experiment(progress=args.progress),
    }
    for name, run in runs.items():
        if args.which in (name, "all"):
            print(f"== {name}")
            print(json.dumps(run(), indent=1, default=str))


if __name__ == "__main__":
    main()
