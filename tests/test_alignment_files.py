"""DAS counterfactual pairs from a file equal make_pairs on the same prompts; bad rows are
refused with their line, and a label equal to the base label is allowed (uninformative pair)."""

from __future__ import annotations

import json

import pytest
import torch

from circuits import zoo
from circuits.alignment.data import make_pairs
from circuits.alignment.files import load_counterfactual_file
from circuits.tasks import PromptFileError

BASE = "When Mary and John went to the store, John gave a drink to"
SOURCE = "When Anna and Paul went to the store, Paul gave a drink to"


@pytest.fixture(scope="module")
def tokenizer():
    return zoo.load("toy-gpt2")[1]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_file_pairs_equal_make_pairs(tokenizer, tmp_path):
    rows = [
        {"base": BASE, "source": SOURCE, "label": " Anna", "base_label": " Mary", "split": "train"},
        {"base": BASE, "source": BASE, "label": " Mary", "base_label": " Mary", "split": "train",
         "kind": "isolate"},
        {"base": SOURCE, "source": BASE, "label": " Mary", "base_label": " Anna", "split": "test"},
    ]  # fmt: skip
    pairs = load_counterfactual_file(_write(tmp_path / "cf.jsonl", rows), tokenizer)
    train = rows[:2]
    hand = make_pairs(tokenizer, [r["base"] for r in train], [r["source"] for r in train],
                      [r["label"] for r in train], [r["base_label"] for r in train],
                      kinds=["cause", "isolate"])  # fmt: skip
    for name in ("base", "source", "base_mask", "source_mask", "labels", "base_labels"):
        assert torch.equal(getattr(pairs["train"], name), getattr(hand, name)), name
    assert pairs["train"].kinds == ("cause", "isolate")
    assert pairs["train"].informative.tolist() == [True, False]
    assert len(pairs["test"]) == 1


def test_bad_counterfactual_rows_name_their_line(tokenizer, tmp_path):
    rows = [
        {"base": BASE, "source": SOURCE, "label": " Anna", "base_label": " Mary"},
        {"base": BASE, "source": SOURCE + " then", "label": " Anna", "base_label": " Mary"},
        {"base": BASE, "source": SOURCE, "label": " Anna Mary", "base_label": " Mary"},
        {"base": BASE, "source": SOURCE, "label": " Anna", "base_label": " Mary", "kind": "both"},
        {"base": BASE, "label": " Anna", "base_label": " Mary"},
    ]
    with pytest.raises(PromptFileError) as info:
        load_counterfactual_file(_write(tmp_path / "cf.jsonl", rows), tokenizer)
    message = str(info.value)
    assert "5 problem(s)" in message and "cf.jsonl:1" not in message
    assert "cf.jsonl:2: base has 15 tokens but source has 16" in message
    assert "cf.jsonl:2: the source prompt has the word 'then', which this tokenizer" in message
    assert "cf.jsonl:3: ' Anna Mary' is not one token after its prompt" in message
    assert "cf.jsonl:4: kind 'both' is not cause or isolate" in message
    assert (
        "cf.jsonl:5: missing column(s) source; a das row needs base, source, label, base_label"
        in message
    )
