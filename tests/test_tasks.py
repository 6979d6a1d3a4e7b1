"""Task generators: seeds, splits, token lengths, answers, causal model, tokenizer."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest
import torch

from attribution.data import DataError
from circuits.models.zoo.tokenizer import build_tokenizer
from circuits.tasks import (
    PRICE_CAUSAL_MODEL,
    TASK_NAMES,
    WORLD,
    Example,
    Task,
    TaskError,
    all_words,
    encode_examples,
    get_task,
    words_of,
)
from circuits.tasks.entities import TEMPLATES as ENTITY_TEMPLATES
from circuits.tasks.ioi import NAMES


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(all_words()).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_same_seed_same_examples_other_seed_other_examples(name):
    task = get_task(name)
    a = task.examples(40, seed=3, split="train")
    assert a == get_task(name).examples(40, seed=3, split="train")
    assert a != task.examples(40, seed=4, split="train")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_train_and_test_prompts_never_overlap(name):
    task = get_task(name)
    train = {e.clean for seed in range(3) for e in task.examples(150, seed=seed, split="train")}
    test = {e.clean for seed in range(3) for e in task.examples(150, seed=seed, split="test")}
    assert train and test
    assert not train & test
    assert all(task.split_of(e) == "test" for e in task.examples(50, split="test"))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_prompts_encode_with_bundled_tokenizer(name, tokenizer):
    task = get_task(name)
    examples = task.examples(100, seed=1, split="test")
    data = encode_examples(examples, tokenizer)
    data.validate(len(tokenizer))
    unk = tokenizer.unk_token_id
    mask = data.attention_mask.bool()
    assert not (data.clean[mask] == unk).any() and not (data.corrupted[mask] == unk).any()
    # corrupted prompts have exactly the clean prompt's length, token for token
    for i, e in enumerate(examples):
        n = len(tokenizer(e.clean)["input_ids"])
        assert int(data.attention_mask[i].sum()) == n == len(tokenizer(e.corrupted)["input_ids"])
        assert int(data.positions[i]) == n - 1
    # every answer is one token: the token the tokenizer gives for the answer word itself
    for i, e in enumerate(examples[:10]):
        ids = data.answers[i][data.answers[i] >= 0].tolist()
        assert ids == [tokenizer.convert_tokens_to_ids(a.strip()) for a in e.answers]
        assert unk not in ids
        assert (data.distractors[i][data.distractors[i] >= 0] != unk).all()


def test_ioi_names_subject_twice_and_abc_corruption():
    for e in get_task("ioi").examples(100, seed=0):
        words = words_of(e.clean)
        io, s = e.answers[0].strip(), e.distractors[0].strip()
        assert words.count(io) == 1 and words.count(s) == 2
        corrupted_names = [w for w in words_of(e.corrupted) if w in NAMES]
        assert len(corrupted_names) == 3 == len(set(corrupted_names))
        assert [w for w in words_of(e.clean) if w not in NAMES] == [
            w for w in words_of(e.corrupted) if w not in NAMES
        ]


def test_greater_than_answers_are_later_years():
    for e in get_task("greater-than").examples(100, seed=0):
        start = e.variables["start"]
        assert re.search(rf"year \d\d{start:02d} ", e.clean)
        assert e.corrupted.replace(f"{e.variables['century']}01 ", "X ") == e.clean.replace(
            f"{e.variables['century']}{start:02d} ", "X "
        )
        assert sorted(int(a) for a in e.answers) == list(range(start + 1, 100))
        assert sorted(int(d) for d in e.distractors) == list(range(0, start + 1))


def test_price_tagging_answers_follow_causal_model_and_corruption_flips():
    for e in get_task("price-tagging").examples(200, seed=0):
        v = e.variables
        lo, hi, p = v["lower"], v["upper"], v["price"]
        assert e.answers == ((" Yes",) if lo <= p <= hi else (" No",))
        assert e.corrupted_answers != e.answers and e.distractors == e.corrupted_answers
        assert f"{p // 100}.{p % 100:02d} dollars" in e.clean


def test_price_causal_model_interventions():
    m = PRICE_CAUSAL_MODEL
    inside = {"lower": 200, "upper": 500, "price": 300}
    below = {"lower": 200, "upper": 500, "price": 100}
    assert m.run(inside)["answer"] == " Yes" and m.run(below)["answer"] == " No"
    assert m.run(below)["above_lower"] is False and m.run(below)["below_upper"] is True
    # swapping in the source's above_lower value makes the below-range base say yes
    assert m.counterfactual(below, inside, ("above_lower",)) == " Yes"
    assert m.counterfactual(inside, below, ("below_upper",)) == " Yes"
    assert m.counterfactual(inside, below, ("above_lower",)) == " No"
    assert m.variables == ("above_lower", "below_upper")
    with pytest.raises(ValueError, match="cannot intervene on price_x"):
        m.run(inside, {"price_x": 1})


def test_causal_model_mechanisms_see_only_their_parents():
    from circuits.tasks import CausalModel

    leaky = CausalModel(
        inputs=("x", "y"),
        mechanisms={"a": lambda v: v["x"] > 0, "out": lambda v: v["a"] and v["y"] > 0},
        output="out",
        parents={"a": ("x",), "out": ("a",)},  # out also reads y, which is not declared
    )
    with pytest.raises(
        ValueError, match="mechanism 'out' read 'y', which is not one of its parents"
    ):
        leaky.run({"x": 1, "y": 1})
    with pytest.raises(
        ValueError, match=r"parents of 'a' must be inputs or earlier mechanisms; \['out'\]"
    ):
        CausalModel(
            ("x",), {"a": lambda v: 1, "out": lambda v: 2}, "out", {"a": ("out",), "out": ("a",)}
        )
    with pytest.raises(ValueError, match="output 'z' is not one of the mechanisms"):
        CausalModel(("x",), {"a": lambda v: 1}, "z")


def test_entity_answers_are_world_facts_and_every_fact_is_in_training():
    task = get_task("entity-attributes")
    for e in task.examples(200, seed=0, split="test"):
        v = e.variables
        assert e.answers == (" " + WORLD.facts[v["entity"]][v["attribute"]],)
        assert e.distractors == (" " + WORLD.facts[v["corrupted_entity"]][v["attribute"]],)
        assert e.answers != e.distractors and v["template"] != 0
    for entity in WORLD.entities:
        for attribute in WORLD.attributes:
            assert (
                task.split_of(
                    Example(task.prompt(entity, attribute, 0), "", (), variables={"template": 0})
                )
                == "train"
            )
    # continent is a function of country, language is not
    pairs = {(f["country"], f["continent"]) for f in WORLD.facts.values()}
    assert len(pairs) == len({c for c, _ in pairs})
    langs = {(f["country"], f["language"]) for f in WORLD.facts.values()}
    assert len(langs) > len({c for c, _ in langs})
    assert len(ENTITY_TEMPLATES) == 3 and not set(WORLD.entities) & set(NAMES)


def test_copying_answer_is_the_queried_word():
    for e in get_task("copying").examples(100, seed=0):
        assert e.clean.endswith(e.answers[0].strip() + " ->")
        assert e.corrupted.endswith(e.distractors[0].strip() + " ->")
        assert e.clean.rsplit(";", 1)[0] == e.corrupted.rsplit(";", 1)[0]


def _copying_prompts_hash() -> str:
    rows = [
        [e.clean, e.corrupted, e.answers, e.distractors]
        for seed in (0, 1, 7)
        for split in ("train", "test")
        for e in get_task("copying").examples(40, seed=seed, split=split)
    ]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


#: Recorded when copying's words were frozen (they were gathered from the other tasks before):
#: a change here changes every copying prompt and every zoo model's tokenizer.
COPYING_PROMPTS_SHA256 = "255ec9d001057b08e6945a00efd58b426f20a940cfce57a4a5880d1209d8be9b"
BUNDLED_VOCAB_SHA256 = "90f1e5551b347c782e2b43aa22e57b54e0a14b12cb3fd714af51266055590857"


def test_copying_prompts_and_the_bundled_vocabulary_are_frozen():
    assert _copying_prompts_hash() == COPYING_PROMPTS_SHA256
    vocab = build_tokenizer(all_words()).get_vocab()
    assert len(vocab) == 410
    assert hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest() == (
        BUNDLED_VOCAB_SHA256
    )


def test_registering_a_task_does_not_change_copying(monkeypatch):
    from circuits.tasks import registry

    class Extra(Task):
        name = "extra"

        def sample(self, rng):
            return Example("Zorblax went", "Quuxly went", (" home",))

        def vocabulary(self):
            return {"Zorblax", "Quuxly", "went", "home"}

    real_get_task = registry.get_task
    monkeypatch.setattr(registry, "TASK_NAMES", (*registry.TASK_NAMES, "extra"))
    monkeypatch.setattr(
        registry, "get_task", lambda name: Extra() if name == "extra" else real_get_task(name)
    )
    clear_caches = [f.cache_clear for f in vars(registry).values() if hasattr(f, "cache_clear")]
    for clear in clear_caches:  # whatever the registry derives from its tasks is recomputed
        clear()
    try:
        assert "Zorblax" in registry.all_words()  # the registration took effect
        assert "Zorblax" not in get_task("copying").words
        assert _copying_prompts_hash() == COPYING_PROMPTS_SHA256
    finally:
        monkeypatch.undo()
        for clear in clear_caches:
            clear()


def test_encode_rejects_length_mismatch_and_multi_token_answers(tokenizer):
    good = Example("When Mary and John went", "When Anna and Bob went", (" Mary",), (" John",))
    longer = Example("When Mary and John went", "When Mary and John went to", (" Mary",))
    with pytest.raises(
        DataError, match="example 1: the clean prompt has 6 tokens but the corrupted one has 7"
    ):
        encode_examples([good, longer], tokenizer)
    two_tokens = Example("The year 17", "The year 01", ("4567",))
    with pytest.raises(DataError, match="example 0: answer '4567' is not a single token"):
        encode_examples([two_tokens], tokenizer)


def test_unknown_task_and_split_are_clear_errors():
    with pytest.raises(TaskError, match="unknown task 'iot'; available tasks: ioi, greater-than"):
        get_task("iot")
    with pytest.raises(TaskError, match="unknown split 'dev'"):
        get_task("ioi").examples(3, split="dev")
    assert get_task("Greater_Than").name == "greater-than"


def test_tokenizer_splits_digit_pairs_and_round_trips(tokenizer, tmp_path):
    ids = tokenizer("from the year 1732 to 2.50 ; x ->")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == [
        "<bos>",
        "from",
        "the",
        "year",
        "17",
        "32",
        "to",
        "2",
        ".",
        "50",
        ";",
        "<unk>",
        "->",
    ]
    assert len(tokenizer) == len(all_words()) + 4


def test_training_lines_come_from_the_train_split_only():
    from dataclasses import replace

    from circuits.models.zoo.recipes import get_recipe
    from circuits.models.zoo.train import training_lines
    from circuits.tasks.base import split_of

    recipe = replace(get_recipe("toy-gpt2"), mixture={"ioi": 1.0, "greater-than": 1.0})
    lines = training_lines(recipe, random.Random(0), 300)
    assert lines == training_lines(recipe, random.Random(0), 300)
    for text, is_task in lines:
        assert is_task
        prompt = text.rsplit(" ", 1)[0] if text.endswith(tuple(NAMES)) else text[:-2]
        assert split_of(prompt) == "train", text


def test_training_is_deterministic_from_the_seed():
    from dataclasses import replace

    from circuits.models.zoo.recipes import get_recipe
    from circuits.models.zoo.train import train

    recipe = replace(
        get_recipe("toy-gpt2"),
        steps=3,
        batch_size=8,
        config={"n_layer": 1, "n_head": 2, "n_embd": 16},
    )
    a, _, log_a = train(recipe, eval_every=0, quiet=True)
    b, _, log_b = train(recipe, eval_every=0, quiet=True)
    c, _, _ = train(replace(recipe, seed=1), eval_every=0, quiet=True)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert log_a["loss"] == log_b["loss"]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_encode_refuses_words_the_tokenizer_does_not_know(tokenizer):
    """Out-of-vocabulary words used to become <unk> silently, so the model read garbage."""
    cases = {
        Example("When Mary and John went", "When Anna and Bob went", (" Zzyzx",)): (
            "example 0: answer ' Zzyzx' has the word 'Zzyzx'"
        ),
        Example("When Mary and Qwxy went", "When Anna and Bob went", (" Mary",)): (
            "example 0: the clean prompt has the word 'Qwxy'"
        ),
        Example("When Mary and John went", "When Anna and Vrrp went", (" Mary",)): (
            "example 0: the corrupted prompt has the word 'Vrrp'"
        ),
        Example("When Mary and John went", "When Anna and Bob went", (" Mary",), (" Blorf",)): (
            "example 0: distractor ' Blorf' has the word 'Blorf'"
        ),
    }
    for example, message in cases.items():
        with pytest.raises(DataError, match=re.escape(message) + ".*does not know.*<unk>"):
            encode_examples([example], tokenizer)
    known = Example("When Mary and John went", "When Anna and Bob went", (" Mary",), (" John",))
    assert encode_examples([known], tokenizer).answers.tolist()[0][0] != tokenizer.unk_token_id


@pytest.mark.parametrize("name", TASK_NAMES)
def test_test_prompts_clean_or_corrupted_never_occur_in_the_train_split(name):
    task = get_task(name)
    train = [e for seed in range(3) for e in task.examples(300, seed=seed, split="train")]
    test = [e for seed in range(3) for e in task.examples(100, seed=seed, split="test")]
    train_prompts = {e.clean for e in train} | {e.corrupted for e in train}
    assert not {e.corrupted for e in test} & train_prompts
    assert not {e.clean for e in test} & train_prompts


@pytest.mark.parametrize("name", TASK_NAMES)
def test_test_examples_repeat_a_clean_prompt_only_when_the_split_is_used_up(name):
    examples = get_task(name).examples(100, seed=0, split="test")
    cleans = [e.clean for e in examples]
    distinct = len(set(cleans))
    if distinct < len(cleans):  # a small prompt space: every prompt once before any repeats
        first_round = cleans[:distinct]
        assert len(set(first_round)) == distinct
    else:
        assert distinct == 100


def test_entity_test_split_uses_each_clean_prompt_before_repeating():
    examples = get_task("entity-attributes").examples(100, seed=0, split="test")
    assert len({e.clean for e in examples}) >= 80  # was 65 of 100 drawn with replacement


@pytest.mark.parametrize("name", TASK_NAMES)
def test_clean_prompts_keep_to_their_split_and_are_seeded(name):
    task = get_task(name)
    pool = task.clean_prompts(50, seed=2, split="test")
    assert len(pool) == 50 and all(task.split_of(e) == "test" for e in pool)
    assert pool == task.clean_prompts(50, seed=2, split="test")
    train = {e.clean for e in task.clean_prompts(200, seed=2, split="train")}
    assert not train & {e.clean for e in pool}
