"""The fast paths of checking a large prompt file (circuits.tasks.files): the piecewise
screen of token_problems, the plain-row reader and the split's shortcuts give exactly the
problems, messages, rows, split and token lengths of the full per-row path."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from circuits.app.prompts import load_tokenizer
from circuits.tasks import files, get_task
from circuits.tasks.files import (
    PromptFileError,
    load_prompt_file,
    read_prompt_file,
    read_rows,
    token_problems,
)

N = 200


def _rows() -> list[dict]:
    """IOI rows with one of each tokenizer problem sprinkled in (and rows that go the
    full way: several answers, an id, text outside ASCII)."""
    rows = [
        {"clean": e.clean, "corrupted": e.corrupted, "answer": e.answers[0],
         "distractor": e.distractors[0]}
        for e in get_task("ioi").examples(N, seed=3, split="train")
    ]  # fmt: skip
    rows[5]["clean"] = rows[5]["clean"].replace(" to", " Zyxqv", 1)  # an unknown word
    rows[17]["corrupted"] += " it"  # unequal lengths
    rows[30]["answer"] = " Mary Anna"  # not one token
    rows[44]["distractor"] = "  " + rows[44]["answer"].strip()  # the answer's token
    rows[70]["answer"] = " Qwzxv"  # an unknown continuation
    rows[90] = {**rows[90], "answers": [rows[90]["answer"], " Anna"], "id": "r90"}
    del rows[90]["answer"]
    rows[120]["corrupted"] = rows[120]["corrupted"].replace(" to", " caf\u00e9", 1)
    rows[150]["corrupted"] = rows[151]["clean"]  # a prompt shared by two rows
    rows.append(dict(rows[160]))  # a duplicate row
    return rows


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("screen") / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    return path


def _check(path: Path, tokenizer) -> tuple[list[str], dict[int, int], object]:
    prompts = read_prompt_file(path)
    problems = token_problems(prompts, tokenizer, context=17, positions="tokens")
    return problems, prompts.token_lengths, prompts


def test_screen_finds_what_the_full_path_finds(prompt_file, monkeypatch):
    tokenizer = load_tokenizer("toy-gpt2")
    full_calls: list[int] = []
    inner = files._row_problems

    def spy(path, rows, *args):
        full_calls.append(len(rows))
        return inner(path, rows, *args)

    monkeypatch.setattr(files, "_row_problems", spy)
    fast, fast_lengths, _ = _check(prompt_file, tokenizer)
    assert 0 < full_calls[-1] < N / 2  # the screen ran: only suspect rows in full
    monkeypatch.setattr(files, "_screen", lambda *args: None)
    slow, slow_lengths, _ = _check(prompt_file, tokenizer)
    assert full_calls[-1] == N  # every row (one duplicate dropped) in full
    assert fast == slow
    assert fast_lengths == slow_lengths
    for needle in ("Zyxqv", "tokens but", "' Mary Anna' is not one token", "same token",
                   "Qwzxv", "'caf'", "more than the model's context", "--positions tokens"):  # fmt: skip
        assert any(needle in p for p in fast), needle


def test_plain_rows_and_split_are_the_full_readers(prompt_file, monkeypatch):
    quick, quick_problems = read_rows(prompt_file, None, 0)
    monkeypatch.setattr(files, "_plain_text_row", lambda n, record: None)
    full, full_problems = read_rows(prompt_file, None, 0)
    assert quick_problems == full_problems == []
    assert quick.rows == full.rows and quick.duplicates == full.duplicates == [(N + 1, 161)]
    assert quick.splits == full.splits
    assert len(quick.splits["test"]) == round(0.2 * N)


def test_collector_is_back_on_after_a_check(tmp_path):
    """The check turns the cyclic garbage collector off while it runs: on again after it,
    also when the file is refused."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"clean": "a", "clean": "b"}\n', encoding="utf-8")
    assert gc.isenabled()
    with pytest.raises(PromptFileError, match="appears twice"):
        load_prompt_file(bad, load_tokenizer("toy-gpt2"))
    assert gc.isenabled()
    gc.disable()  # and stays off where the caller had turned it off
    try:
        with pytest.raises(PromptFileError):
            load_prompt_file(bad, load_tokenizer("toy-gpt2"))
        assert not gc.isenabled()
    finally:
        gc.enable()
