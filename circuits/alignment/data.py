"""Counterfactual training pairs for interchange interventions.

A pair is a *base* prompt, a *source* prompt and the label the base run should produce once a
high-level variable takes its value from the source: the causal model's output on the base
input with the variable set to its value on the source input
(:meth:`circuits.tasks.causal.CausalModel.counterfactual`). The base's own answer is kept too,
so that *informative* pairs (where the intervention should change the answer) can be counted
and evaluated apart: on an uninformative pair doing nothing is already right.

Builders:

- :func:`causal_pairs`: any task whose ``Example.variables`` hold the causal model's inputs
  (price tagging with :data:`~circuits.tasks.price_tagging.PRICE_CAUSAL_MODEL`), with a chosen
  share of informative pairs and balanced labels.
- :func:`entity_pairs`: RAVEL-style *cause* examples (intervene on attribute A with a source
  city, query A → the source's value) and *isolate* examples (same intervention, query another
  attribute B → the base's value), with the entity token as the named position ``"entity"``.
- :func:`shuffled_variable`: a control causal model where one variable is replaced by a
  pseudo-random boolean of the inputs, which no model computes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attribution.data import DataError
from circuits.alignment.sites import AlignmentError
from circuits.tasks.base import Task, split_of
from circuits.tasks.causal import CausalModel
from circuits.tasks.encode import continuation_ids, pad_id, pad_rows, token_ids

__all__ = [
    "CounterfactualPairs",
    "causal_pairs",
    "entity_pairs",
    "make_pairs",
    "shuffled_variable",
]


@dataclass
class CounterfactualPairs:
    """Tokenised base/source prompts (right-padded) and counterfactual labels.

    Attributes:
        base, source: ``[n, pos]`` token ids (every row starts with the tokenizer's BOS).
        base_mask, source_mask: ``[n, pos]`` 1 on real tokens.
        labels: ``[n]`` token id of the counterfactual output (what the intervened base run
            should predict after its last token).
        base_labels: ``[n]`` token id of the base's own output.
        kinds: ``n`` strings, ``"cause"`` or ``"isolate"`` (MDAS objectives), or the name
            of the intervened variable for single-objective data.
        positions: named per-example positions, ``name -> ([n, k] base, [n, k] source)``.
        variables: the high-level variables interchanged.
        base_texts, source_texts: the prompts, for reports.
    """

    base: torch.Tensor
    source: torch.Tensor
    base_mask: torch.Tensor
    source_mask: torch.Tensor
    labels: torch.Tensor
    base_labels: torch.Tensor
    kinds: tuple[str, ...] = ()
    positions: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    base_texts: tuple[str, ...] = ()
    source_texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.base.shape[0]
        if self.source.shape[0] != n:
            raise AlignmentError(
                f"base and source batches differ in length: {n} base vs "
                f"{self.source.shape[0]} source examples; every base needs exactly one source"
            )
        for name in ("labels", "base_labels", "base_mask", "source_mask"):
            if getattr(self, name).shape[0] != n:
                raise AlignmentError(
                    f"{name} has {getattr(self, name).shape[0]} rows for {n} base/source pairs"
                )
        if self.base_mask.shape != self.base.shape or self.source_mask.shape != self.source.shape:
            raise AlignmentError("attention masks must have the shapes of their token batches")
        if not self.kinds:
            self.kinds = ("cause",) * n
        if len(self.kinds) != n:
            raise AlignmentError(f"{len(self.kinds)} kinds for {n} pairs")
        for name, (b, s) in self.positions.items():
            if b.shape[0] != n or s.shape[0] != n:
                raise AlignmentError(f"named position {name!r} does not have {n} rows")

    def __len__(self) -> int:
        return int(self.base.shape[0])

    @property
    def informative(self) -> torch.Tensor:
        """``[n]`` bool: the counterfactual label differs from the base's own label."""
        return self.labels != self.base_labels

    @property
    def informative_share(self) -> float:
        return float(self.informative.float().mean()) if len(self) else 0.0

    def kind_mask(self, kind: str) -> torch.Tensor:
        return torch.tensor([k == kind for k in self.kinds], dtype=torch.bool)

    def select(self, index: torch.Tensor | Sequence[int]) -> CounterfactualPairs:
        """The pairs at ``index`` (a list, long tensor, or bool mask)."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = torch.nonzero(index).flatten()
        idx = index.tolist()
        return CounterfactualPairs(
            base=self.base[index],
            source=self.source[index],
            base_mask=self.base_mask[index],
            source_mask=self.source_mask[index],
            labels=self.labels[index],
            base_labels=self.base_labels[index],
            kinds=tuple(self.kinds[i] for i in idx),
            positions={k: (b[index], s[index]) for k, (b, s) in self.positions.items()},
            variables=self.variables,
            base_texts=tuple(self.base_texts[i] for i in idx) if self.base_texts else (),
            source_texts=tuple(self.source_texts[i] for i in idx) if self.source_texts else (),
        )

    def to(self, device: torch.device | str) -> CounterfactualPairs:
        return CounterfactualPairs(
            base=self.base.to(device),
            source=self.source.to(device),
            base_mask=self.base_mask.to(device),
            source_mask=self.source_mask.to(device),
            labels=self.labels.to(device),
            base_labels=self.base_labels.to(device),
            kinds=self.kinds,
            positions={k: (b.to(device), s.to(device)) for k, (b, s) in self.positions.items()},
            variables=self.variables,
            base_texts=self.base_texts,
            source_texts=self.source_texts,
        )

    @staticmethod
    def concat(parts: Sequence[CounterfactualPairs]) -> CounterfactualPairs:
        """Pairs of several sets in one (rows padded to the widest)."""
        if not parts:
            raise AlignmentError("nothing to concatenate")

        def cat(tensors: list[torch.Tensor], pad: int) -> torch.Tensor:
            width = max(t.shape[1] for t in tensors)
            return torch.cat(
                [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad) for t in tensors]
            )

        names = set(parts[0].positions)
        if any(set(p.positions) != names for p in parts):
            raise AlignmentError("pairs to concatenate carry different named positions")
        return CounterfactualPairs(
            base=cat([p.base for p in parts], 0),
            source=cat([p.source for p in parts], 0),
            base_mask=cat([p.base_mask for p in parts], 0),
            source_mask=cat([p.source_mask for p in parts], 0),
            labels=torch.cat([p.labels for p in parts]),
            base_labels=torch.cat([p.base_labels for p in parts]),
            kinds=tuple(k for p in parts for k in p.kinds),
            positions={
                k: (
                    torch.cat([p.positions[k][0] for p in parts]),
                    torch.cat([p.positions[k][1] for p in parts]),
                )
                for k in names
            },
            variables=tuple(dict.fromkeys(v for p in parts for v in p.variables)),
            base_texts=tuple(t for p in parts for t in p.base_texts),
            source_texts=tuple(t for p in parts for t in p.source_texts),
        )


def make_pairs(
    tokenizer: Any,
    base_prompts: Sequence[str],
    source_prompts: Sequence[str],
    labels: Sequence[str],
    base_labels: Sequence[str],
    *,
    kinds: Sequence[str] = (),
    variables: Sequence[str] = (),
    positions: Mapping[str, tuple[Sequence, Sequence]] | None = None,
    same_length: bool = True,
) -> CounterfactualPairs:
    """Tokenise prompt pairs; ``labels``/``base_labels`` are continuations (one token each).

    Raises:
        AlignmentError: the batches differ in length, a base and its source tokenise to
            different lengths while ``same_length``, or a label is not one token.
    """
    n = len(base_prompts)
    if len(source_prompts) != n:
        raise AlignmentError(
            f"base and source batches differ in length: {n} base vs {len(source_prompts)} "
            "source prompts; every base needs exactly one source"
        )
    if len(labels) != n or len(base_labels) != n:
        raise AlignmentError(f"{len(labels)} labels / {len(base_labels)} base labels for {n} pairs")
    if n == 0:
        raise AlignmentError("no pairs")
    base_ids = token_ids(tokenizer, list(base_prompts))
    source_ids = token_ids(tokenizer, list(source_prompts))
    if same_length:
        for i, (b, s) in enumerate(zip(base_ids, source_ids, strict=True)):
            if len(b) != len(s):
                raise AlignmentError(
                    f"pair {i}: base has {len(b)} tokens, source {len(s)} "
                    f"({base_prompts[i]!r} vs {source_prompts[i]!r}); positions would not line up"
                )

    def single_tokens(answers: Sequence[str], what: str) -> list[int]:
        rows = continuation_ids(tokenizer, base_prompts, base_ids, [(a,) for a in answers], what)
        return [row[0] for row in rows]

    try:  # each label must be one token after its base prompt
        label_ids = single_tokens(labels, "label")
        base_label_ids = single_tokens(base_labels, "base label")
    except DataError as err:
        raise AlignmentError(str(err)) from None
    pad = pad_id(tokenizer)
    base, base_mask = pad_rows(base_ids, pad)
    source, source_mask = pad_rows(source_ids, pad)
    return CounterfactualPairs(
        base=base,
        source=source,
        base_mask=base_mask,
        source_mask=source_mask,
        labels=torch.tensor(label_ids),
        base_labels=torch.tensor(base_label_ids),
        kinds=tuple(kinds),
        positions={
            k: (torch.as_tensor(b, dtype=torch.long), torch.as_tensor(s, dtype=torch.long))
            for k, (b, s) in (positions or {}).items()
        },
        variables=tuple(variables),
        base_texts=tuple(base_prompts),
        source_texts=tuple(source_prompts),
    )


def _causal_inputs(causal_model: CausalModel, example: Any) -> dict[str, Any]:
    """The causal model's inputs, read from a task example's ``variables``."""
    missing = [k for k in causal_model.inputs if k not in example.variables]
    if missing:
        raise AlignmentError(
            f"task examples do not carry the causal model's inputs {missing}; "
            f"they have {sorted(example.variables)}"
        )
    return {k: example.variables[k] for k in causal_model.inputs}


def _label_buckets(
    rng: random.Random,
    pool: Sequence[Any],
    causal_model: CausalModel,
    variables: tuple[str, ...],
    group: bool | None,
    count: int,
    balance: bool,
    max_tries: int,
) -> dict[Any, list]:
    """Random (base, source, label, base label) pairs of ``group`` (informative or not;
    ``None``: any) by counterfactual label (one bucket without ``balance``), drawn until
    every bucket could give its share of ``count`` or ``max_tries`` rounds are spent."""
    buckets: dict[Any, list] = {}
    tries = 0
    while True:
        tries += 1
        for _ in range(4 * count):
            base, source = rng.choice(pool), rng.choice(pool)
            b_in, s_in = _causal_inputs(causal_model, base), _causal_inputs(causal_model, source)
            label = causal_model.counterfactual(b_in, s_in, variables)
            base_label = causal_model.run(b_in)[causal_model.output]
            informative = label != base_label
            if group is not None and informative != group:
                continue
            buckets.setdefault(label if balance else None, []).append(
                (base, source, label, base_label)
            )
        per = -(-count // max(1, len(buckets)))
        if all(len(v) >= per for v in buckets.values()) or tries >= max_tries:
            return buckets


def _round_robin(rng: random.Random, buckets: dict[Any, list], count: int) -> list:
    """Up to ``count`` pairs taken in turn from each label's shuffled bucket, so that each
    label gets an equal share where possible."""
    lists = [rng.sample(v, len(v)) for _, v in sorted(buckets.items(), key=lambda kv: str(kv[0]))]
    picked: list = []
    while len(picked) < count and any(lists):
        for lst in lists:
            if lst and len(picked) < count:
                picked.append(lst.pop())
    return picked


def causal_pairs(
    task: Task,
    causal_model: CausalModel,
    variables: str | Sequence[str],
    tokenizer: Any,
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    informative_share: float | None = 0.5,
    balance: bool = True,
    max_tries: int = 200,
) -> CounterfactualPairs:
    """``n`` base/source pairs of ``task`` labelled by ``causal_model`` interchanging
    ``variables``.

    Both prompts come from ``split``; the causal model's inputs are read from each example's
    ``variables``. ``informative_share`` (``None``: as sampled) fixes the share of pairs whose
    counterfactual label differs from the base label; with ``balance`` each of the two groups
    has as many pairs of each label as possible, so a constant answer scores at most about
    1/(number of labels).
    """
    variables = (variables,) if isinstance(variables, str) else tuple(variables)
    unknown = [v for v in variables if v not in causal_model.mechanisms]
    if unknown:
        raise AlignmentError(
            f"unknown causal variable(s) {unknown}; the causal model has {list(causal_model.variables)}"
        )
    rng = random.Random(f"pairs:{seed}:{split}")
    # the pairs use clean prompts only: their corrupted prompts' split does not matter here
    pool = task.clean_prompts(max(4 * n, 64), seed=seed, split=split)
    if informative_share is None:
        want = {None: n}
    else:
        if not 0 <= informative_share <= 1:
            raise AlignmentError(f"informative_share must be in [0, 1], got {informative_share}")
        k_inf = round(n * informative_share)
        want = {True: k_inf, False: n - k_inf}
    chosen: list[tuple[Any, Any, Any, Any]] = []
    for group, count in want.items():
        if count == 0:
            continue
        buckets = _label_buckets(
            rng, pool, causal_model, variables, group, count, balance, max_tries
        )
        picked = _round_robin(rng, buckets, count)
        if len(picked) < count:
            raise AlignmentError(
                f"could not sample {count} {'informative' if group else 'uninformative'} pairs "
                f"for {variables} in {max_tries} tries; lower informative_share"
            )
        chosen += picked
    rng.shuffle(chosen)
    return make_pairs(
        tokenizer,
        [b.clean for b, _, _, _ in chosen],
        [s.clean for _, s, _, _ in chosen],
        [lab for _, _, lab, _ in chosen],
        [bl for _, _, _, bl in chosen],
        kinds=("+".join(variables),) * len(chosen),
        variables=variables,
    )


def _entity_position(tokenizer: Any, template: str, entity: str) -> int:
    prefix = template.split("[E]")[0]
    return len(token_ids(tokenizer, [prefix + entity])[0]) - 1


@dataclass
class _EntityDraw:
    """Draws :func:`entity_pairs`' rows ``(kind, base prompt, source prompt, label, base
    label, base entity position, source entity position)`` into ``rows``."""

    tokenizer: Any
    attribute: str
    other_attributes: tuple[str, ...]
    split: str
    world: Any
    rng: random.Random
    rows: list[tuple[str, str, str, str, str, int, int]] = field(default_factory=list)

    def prompt_split(self, query: str, t: int, entity: str) -> str:
        from circuits.tasks.entities import TEMPLATES

        return "train" if t == 0 else split_of(TEMPLATES[query][t].replace("[E]", entity))

    def __call__(self, kind: str, count: int) -> None:
        """``count`` rows of ``kind`` (``"cause"`` or ``"isolate"``)."""
        from circuits.tasks.entities import TEMPLATES

        rng, facts, attribute = self.rng, self.world.facts, self.attribute
        entities = list(self.world.entities)
        made = 0
        for _ in range(1000 * max(1, count)):
            if made == count:
                return
            query = attribute if kind == "cause" else rng.choice(list(self.other_attributes))
            t = rng.randrange(len(TEMPLATES[query]))
            base_e, source_e = rng.sample(entities, 2)
            if facts[base_e][attribute] == facts[source_e][attribute]:
                continue
            if kind == "isolate" and facts[base_e][query] == facts[source_e][query]:
                continue
            if (
                self.prompt_split(query, t, base_e) != self.split
                or self.prompt_split(query, t, source_e) != self.split
            ):
                continue
            template = TEMPLATES[query][t]
            label_e = source_e if kind == "cause" else base_e
            self.rows.append(
                (
                    kind,
                    template.replace("[E]", base_e),
                    template.replace("[E]", source_e),
                    " " + facts[label_e][query],
                    " " + facts[base_e][query],
                    _entity_position(self.tokenizer, template, base_e),
                    _entity_position(self.tokenizer, template, source_e),
                )
            )
            made += 1
        raise AlignmentError(f"could not sample {count} {kind} pairs in split {self.split!r}")


def entity_pairs(
    tokenizer: Any,
    attribute: str,
    *,
    other_attributes: Sequence[str] = ("language",),
    n_cause: int = 64,
    n_isolate: int = 64,
    seed: int = 0,
    split: str = "train",
    world: Any = None,
) -> CounterfactualPairs:
    """RAVEL-style pairs for localising ``attribute`` of a city.

    Cause pairs: base and source prompts ask ``attribute`` (same template, so they have the
    same length) about two cities whose values differ; label = the source city's value.
    Isolate pairs: base and source ask an attribute in ``other_attributes`` about two cities
    that differ in both that attribute and ``attribute``; label = the base city's value (an
    intervention on ``attribute``'s subspace must leave it alone). The intervention site is the
    entity token, named position ``"entity"``.

    ``split`` follows :class:`~circuits.tasks.entities.EntityAttributes`: template 0 prompts
    are always ``"train"``; test pairs use held-out templates (base prompt in the test split).
    """
    from circuits.tasks.entities import TEMPLATES, WORLD

    world = world or WORLD
    for a in (attribute, *other_attributes):
        if a not in TEMPLATES:
            raise AlignmentError(f"unknown attribute {a!r}; choose from {list(TEMPLATES)}")
    if attribute in other_attributes:
        raise AlignmentError(f"{attribute!r} cannot be its own isolate attribute")
    if n_isolate and not other_attributes:
        raise AlignmentError("isolate pairs need at least one other attribute")
    draw = _EntityDraw(
        tokenizer, attribute, tuple(other_attributes), split, world,
        random.Random(f"entity-pairs:{seed}:{split}:{attribute}"),
    )  # fmt: skip
    draw("cause", n_cause)
    draw("isolate", n_isolate)
    rows = draw.rows
    draw.rng.shuffle(rows)
    return make_pairs(
        tokenizer,
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
        kinds=[r[0] for r in rows],
        variables=(attribute,),
        positions={"entity": ([[r[5]] for r in rows], [[r[6]] for r in rows])},
    )


def shuffled_variable(causal_model: CausalModel, variable: str, *, seed: int = 0) -> CausalModel:
    """A control causal model: ``variable`` becomes a pseudo-random boolean of the inputs
    (a hash, fixed by ``seed``), so no network computes it; the output mechanism is unchanged."""
    if variable not in causal_model.variables:
        raise AlignmentError(
            f"unknown causal variable {variable!r}; the causal model has {list(causal_model.variables)}"
        )

    def random_bit(values: Mapping[str, Any]) -> bool:
        key = repr((seed, tuple(values[k] for k in causal_model.inputs)))
        return hashlib.sha256(key.encode()).digest()[0] % 2 == 1

    mechanisms = dict(causal_model.mechanisms)
    mechanisms[variable] = random_bit
    parents = None
    if causal_model.parents is not None:
        parents = {**causal_model.parents, variable: tuple(causal_model.inputs)}
    return CausalModel(causal_model.inputs, mechanisms, causal_model.output, parents)
