"""MIB rows read as MIB's loader (MIB-circuit-track b759df3, ``dataset.py``) reads them: only the
fields it reads per task, its leading-space rule, its default counterfactuals and filters; every
bad row reported with FILE:LINE and the fix; the bundled row files rebuild and encode."""

from __future__ import annotations

import json

import pytest

from circuits.models import zoo
from circuits.tasks.base import TaskError
from circuits.tasks.encode import encode_examples
from circuits.tasks.mib_rows import (
    BUNDLED,
    MIBRowError,
    bundled_rows,
    mib_row_examples,
    read_mib_rows,
)

IOI = {
    "prompt": "When Mary and John went to the store, John gave a drink to",
    "metadata": {"indirect_object": "Mary", "subject": "John"},
    "s2_io_flip_counterfactual": {
        "prompt": "When Mary and John went to the store, Mary gave a drink to"
    },
}
MCQA = {
    "prompt": "Question: A banana is yellow. What color is a banana?\nA. red\nB. yellow\nAnswer:",
    "choices": {"label": ["A", "B"], "text": ["red", "yellow"]},
    "answerKey": 1,
    "symbol_counterfactual": {
        "prompt": "Question: ...\nA. yellow\nB. red\nAnswer:",
        "choices": {"label": ["A", "B"], "text": ["yellow", "red"]},
        "answerKey": 0,
    },
}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_ioi_reads_only_mibs_fields_with_the_leading_space(tmp_path):
    # no choices/answerKey: the old reader refused such rows; MIB's IOI loader never reads them
    (e,) = read_mib_rows(_write(tmp_path / "ioi.jsonl", [IOI]), "ioi")
    assert e.clean == IOI["prompt"] and e.corrupted == IOI["s2_io_flip_counterfactual"]["prompt"]
    assert e.answers == (" Mary",) and e.distractors == (" John",)


@pytest.mark.parametrize("task", ["mcqa", "arc_easy", "arc-challenge"])
def test_choice_tasks_read_the_label_without_a_space(task):
    (e,) = mib_row_examples([("rows:1", MCQA)], task)
    assert e.answers == ("B",) and e.distractors == ("A",)
    assert e.corrupted == MCQA["symbol_counterfactual"]["prompt"]


def test_arithmetic_reads_label_and_keeps_mibs_rows():
    def row(op, cf=True):
        other = {"prompt": "What is 5 + 3?", "label": 8} if cf else None
        return {
            "prompt": "What is 2 + 3?",
            "label": 5,
            "operator": op,
            "random_counterfactual": other,
        }

    rows = [("f:1", row("+")), ("f:2", row("-")), ("f:3", row("+", cf=False))]
    (e,) = mib_row_examples(rows, "arithmetic_addition")
    assert (e.answers, e.distractors, e.corrupted) == (("5",), ("8",), "What is 5 + 3?")
    (e,) = mib_row_examples(rows, "arithmetic-subtraction")


def test_missing_field_and_counterfactual_name_file_line_and_fix(tmp_path):
    bad = json.loads(json.dumps(IOI))
    del bad["metadata"]["subject"]
    path = _write(tmp_path / "rows.jsonl", [IOI, bad])
    with pytest.raises(MIBRowError) as e:
        read_mib_rows(path, "ioi")
    assert f"{path}:2: no field 'metadata.subject'" in str(e.value) and "add it" in str(e.value)
    assert len(e.value.problems) == 1
    with pytest.raises(MIBRowError) as e:
        read_mib_rows(path, "ioi", counterfactual="abc_counterfactual")
    msg = str(e.value)
    assert f"{path}:1: no counterfactual 'abc_counterfactual'" in msg
    assert "s2_io_flip_counterfactual" in msg and "--counterfactual" in msg
    wrong_key = dict(MCQA, answerKey=5)
    with pytest.raises(MIBRowError, match=r"rows:1: answerKey 5 is outside"):
        mib_row_examples([("rows:1", wrong_key)], "mcqa")
    with pytest.raises(TaskError, match="MIB defines no task 'greater-than'"):
        read_mib_rows(path, "greater-than")


@pytest.mark.parametrize("task", sorted(BUNDLED))
def test_bundled_rows_rebuild_and_encode(task):
    path = BUNDLED[task]
    assert path.read_text(encoding="utf-8") == "".join(
        json.dumps(r) + "\n" for r in bundled_rows(task)
    )
    counterfactual = "query_counterfactual" if task == "mcqa" else None
    examples = read_mib_rows(path, task, counterfactual=counterfactual)
    pairs = encode_examples(examples, zoo.load_tokenizer("toy-gpt2"))
    assert len(pairs) == len(examples) == 64
    if task == "ioi":  # the bundled ABC prompts are there too, under MIB's name
        assert len(read_mib_rows(path, task, counterfactual="abc_counterfactual")) == 64
