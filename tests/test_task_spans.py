"""Span schemas of tasks and prompt files (issue #17): character span starts → token spans.

Checks: under the bundled word-level tokenizer and a byte-level BPE tokenizer (GPT-2's
scheme, trained here offline on task text) every IOI example's spans cover its prompt in
order, END is the last token alone, each span's tokens decode to the text the task put in
it, the name spans hold the names the example's variables say, and clean and corrupted spans
agree; the same for greater-than's years; hand-written prompt files give the span tensor
written out by hand here; every malformed spans cell is refused with its line, before any
model; and EAP's per-span scores on IOI sum to its position-agnostic scores on toy-gpt2.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import pytest
import torch

from attribution import attribute
from circuits import zoo
from circuits.models.zoo.tokenizer import build_tokenizer
from circuits.tasks import (
    IOI,
    PromptFileError,
    all_words,
    encode_examples,
    get_task,
    load_prompt_file,
    read_prompt_file,
)
from circuits.tasks.base import Example
from circuits.tasks.ioi import NAMES
from graphs import Graph
from graphs.positions import PositionError, SpanSchema

IOI_SPANS = ("prefix", "A", "and", "B", "middle", "S2", "S2+1", "rest", "END")

ROW1 = {
    "clean": "When Mary and John went to the store, John gave a drink to",
    "corrupted": "When Alice and Bob went to the store, Tom gave a drink to",
    "answer": " Mary",
    "distractor": " John",
    # offsets; the corrupted spans are found word for word
    "spans": {"prefix": 0, "IO": 5, "and": 9, "S1": 14, "middle": 18, "S2": 38, "rest": 42, "END": 55},
}  # fmt: skip
ROW2 = {
    "clean": "Then, Anna and Paul had a long day at the park. Paul gave a book to",
    "corrupted": "Then, Emma and Mark had a long day at the park. Kate gave a book to",
    "answer": " Anna",
    "distractor": " Paul",
    # texts, and explicit corrupted spans
    "spans": {"prefix": "Then, ", "IO": "Anna", "and": " and ", "S1": "Paul",
              "middle": " had a long day at the park. ", "S2": "Paul", "rest": " gave a book",
              "END": " to"},
    "corrupted_spans": {"prefix": 0, "IO": 6, "and": 10, "S1": 15, "middle": 19, "S2": 48,
                        "rest": 52, "END": 64},
}  # fmt: skip
# the tokens, by hand: <bos> When | Mary | and | John | went to the store , | John | gave a drink | to
EXPECTED1 = [0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 5, 6, 6, 6, 7]
# <bos> Then , | Anna | and | Paul | had a long day at the park . | Paul | gave a book | to
EXPECTED2 = [0, 0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6, 6, 6, 7]


@functools.cache
def word_tokenizer():
    return build_tokenizer(all_words())


@functools.cache
def bpe_tokenizer():
    """A byte-level BPE tokenizer like GPT-2's (leading spaces inside tokens, offsets that
    include them), trained offline on IOI text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    lines = []
    for e in get_task("ioi").examples(400, seed=9):
        lines += [e.clean + e.answers[0], e.corrupted]
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _pieces(text: str, starts: tuple[int, ...]) -> list[str]:
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _span_texts(tokenizer, ids: torch.Tensor, spans: torch.Tensor, n: int) -> list[str]:
    return [tokenizer.decode(ids[spans == s].tolist(), skip_special_tokens=True) for s in range(n)]


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("which", ["word-level", "bpe"])
def test_ioi_spans_hold_the_text_and_names_they_say(which):
    tokenizer = word_tokenizer() if which == "word-level" else bpe_tokenizer()
    task = get_task("ioi")
    assert task.span_schema == SpanSchema(IOI_SPANS)
    examples = task.examples(48, seed=1) + task.examples(16, seed=1, split="test")
    data = encode_examples(examples, tokenizer, schema=task.span_schema)
    assert data.span_names == IOI_SPANS
    n_spans = len(IOI_SPANS)
    templates, orders = set(), set()
    for i, e in enumerate(examples):
        length = int(data.attention_mask[i].sum())
        row = data.spans[i]
        assert (row[:length] >= 0).all() and (row[length:] == -1).all()
        assert (row[:length].diff() >= 0).all()  # contiguous, in order
        assert row[length - 1] == n_spans - 1 and (row[: length - 1] < n_spans - 1).all()
        for side, ids, text, starts in (
            ("clean", data.clean[i], e.clean, e.span_starts),
            ("corrupted", data.corrupted[i], e.corrupted, e.corrupted_span_starts),
        ):
            decoded = _span_texts(tokenizer, ids[:length], row[:length], n_spans)
            pieces = _pieces(text, starts)
            assert [_squash(d) for d in decoded] == [_squash(p) for p in pieces], (side, i)
            if which == "bpe":  # byte-level BPE decodes losslessly: the spans rebuild the text
                assert "".join(decoded) == text
            named = dict(zip(IOI_SPANS, (d.strip() for d in decoded), strict=True))
            assert named["END"] == "to"
            if side == "clean":
                io, s = e.variables["io"], e.variables["s"]
                first, second = (io, s) if e.variables["order"] == "ABBA" else (s, io)
                assert (named["A"], named["B"], named["S2"]) == (first, second, s)
            else:  # ABC: three different names
                names = {named["A"], named["B"], named["S2"]}
                assert len(names) == 3 and names <= set(NAMES)
        templates.add(e.variables["template"])
        orders.add(e.variables["order"])
    assert len(templates) == 8 and orders == {"ABBA", "BABA"}  # every template and order seen


def test_ioi_one_order_names_spans_by_role():
    tokenizer = word_tokenizer()
    for order, first in (("ABBA", "io"), ("BABA", "s")):
        task = IOI(order)
        assert task.span_schema.names[1:4] == (
            ("IO", "and", "S1") if order == "ABBA" else ("S1", "and", "IO")
        )
        examples = task.examples(12, seed=2)
        assert {e.variables["order"] for e in examples} == {order}
        data = encode_examples(examples, tokenizer, schema=task.span_schema)
        io_span = task.span_schema.names.index("IO")
        for i, e in enumerate(examples):
            (io,) = data.clean[i][data.spans[i] == io_span].tolist()
            assert tokenizer.convert_ids_to_tokens(io) == e.variables["io"]
            (a,) = data.clean[i][data.spans[i] == 1].tolist()
            assert tokenizer.convert_ids_to_tokens(a) == e.variables[first]
    with pytest.raises(Exception, match="ABBA"):
        IOI("AABB")


def test_greater_than_spans_hold_the_years():
    tokenizer = word_tokenizer()
    task = get_task("greater-than")
    names = task.span_schema.names
    assert names == ("prefix", "noun", "middle", "XX", "YY", "rest", "END")
    examples = task.examples(40, seed=3)
    data = encode_examples(examples, tokenizer, schema=task.span_schema)
    for i, e in enumerate(examples):
        length = int(data.attention_mask[i].sum())
        assert data.spans[i, length - 1] == len(names) - 1
        for ids, yy in ((data.clean[i], f"{e.variables['start']:02d}"), (data.corrupted[i], "01")):
            decoded = dict(
                zip(names, _span_texts(tokenizer, ids, data.spans[i], len(names)), strict=True)
            )
            assert decoded["XX"] == decoded["END"] == e.variables["century"]
            assert (decoded["YY"], decoded["noun"]) == (yy, e.variables["noun"])


def test_tasks_without_a_schema_and_examples_without_starts():
    assert get_task("copying").span_schema is None
    tokenizer = word_tokenizer()
    examples = get_task("ioi").examples(3, seed=0)
    assert encode_examples(examples, tokenizer).spans is None
    bare = [Example(e.clean, e.corrupted, e.answers, e.distractors) for e in examples]
    with pytest.raises(PositionError, match="example 0 has no clean span starts"):
        encode_examples(bare, tokenizer, schema=SpanSchema(IOI_SPANS))
    e = examples[1]
    late = Example(e.clean, e.corrupted, e.answers, e.distractors, span_starts=e.span_starts,
                   corrupted_span_starts=(3, *e.corrupted_span_starts[1:]))  # fmt: skip
    with pytest.raises(PositionError, match="example 1: the corrupted prompt: the first span"):
        encode_examples([examples[0], late], tokenizer, schema=SpanSchema(IOI_SPANS))
    # the corrupted IO is two words, S1 empty: as many tokens as the clean prompt, other spans
    two = Example(ROW1["clean"], "When Mary Anna and went to the store, John gave a drink to",
                  (" Mary",), (" John",), span_starts=tuple(ROW1["spans"].values()),
                  corrupted_span_starts=(0, 5, 14, 18, 18, 38, 42, 55))  # fmt: skip
    assert len(tokenizer(two.corrupted)["input_ids"]) == len(tokenizer(two.clean)["input_ids"])
    assert encode_examples([two], tokenizer).clean.shape == (1, 15)  # fine without a schema
    with pytest.raises(PositionError, match="example 0: the corrupted prompt's spans"):
        encode_examples([two], tokenizer, schema=SpanSchema(tuple(ROW1["spans"])))


class _NoOffsets:
    """A tokenizer that cannot say which characters its tokens cover (like a slow one)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, texts, **kwargs):
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("return_offset_mapping is not available")
        return self.inner(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_tokenizer_without_offsets_is_a_clear_error():
    task = get_task("ioi")
    with pytest.raises(PositionError, match="no character offsets"):
        encode_examples(task.examples(2), _NoOffsets(word_tokenizer()), schema=task.span_schema)


# ---------------------------------------------------------------- prompt files


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _expected(*rows: list[int]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [-1] * (width - len(r)) for r in rows])


def test_prompt_file_spans_give_the_hand_written_tensor(tmp_path):
    tokenizer = word_tokenizer()
    names = tuple(ROW1["spans"])
    path = _jsonl(tmp_path / "p.jsonl", [ROW1, ROW2])
    prompts = load_prompt_file(path, tokenizer)
    assert prompts.schema == SpanSchema(names) and prompts.describe()["file_spans"] == list(names)
    data = prompts.encode(tokenizer, spans=True)
    assert data.span_names == names
    assert torch.equal(data.spans, _expected(EXPECTED1, EXPECTED2))
    plain = prompts.encode(tokenizer)
    assert plain.spans is None and torch.equal(plain.clean, data.clean)
    # the same rows in CSV (the cells hold the JSON), and limit keeps the first rows
    header = ["clean", "corrupted", "answer", "distractor", "spans", "corrupted_spans"]
    with (tmp_path / "p.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in (ROW1, ROW2):
            spans = [json.dumps(r[h]) if h in r else "" for h in header[4:]]
            w.writerow([r[h] for h in header[:4]] + spans)
    from_csv = load_prompt_file(tmp_path / "p.csv", tokenizer).encode(tokenizer, spans=True)
    assert torch.equal(from_csv.spans, data.spans)
    first = prompts.encode(tokenizer, limit=1, spans=True)
    assert first.spans.tolist() == [EXPECTED1]
    # the reference EAP-IG layout (answers as token ids) takes spans the same way
    ids = tokenizer.convert_tokens_to_ids(["Mary", "John"])
    with (tmp_path / "eap.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clean", "corrupted", "correct_idx", "incorrect_idx", "spans"])
        w.writerow([ROW1["clean"], ROW1["corrupted"], ids[0], ids[1], json.dumps(ROW1["spans"])])
    eap = load_prompt_file(tmp_path / "eap.csv", tokenizer)
    assert eap.format == "eap-ig"
    assert eap.encode(tokenizer, spans=True).spans.tolist() == [EXPECTED1]
    # a file without spans has no position axis
    bare = _jsonl(tmp_path / "bare.jsonl", [{k: v for k, v in ROW1.items() if k != "spans"}])
    no_spans = load_prompt_file(bare, tokenizer)
    assert no_spans.schema is None and "file_spans" not in no_spans.describe()
    with pytest.raises(PositionError, match="gives no spans"):
        no_spans.encode(tokenizer, spans=True)


def test_prompt_file_spans_under_bpe_match_the_words(tmp_path):
    tokenizer = bpe_tokenizer()
    prompts = load_prompt_file(_jsonl(tmp_path / "p.jsonl", [ROW1, ROW2]), tokenizer)
    data = prompts.encode(tokenizer, spans=True)
    for i, row in enumerate((ROW1, ROW2)):
        length = int(data.attention_mask[i].sum())
        decoded = _span_texts(tokenizer, data.clean[i, :length], data.spans[i, :length], 8)
        assert "".join(decoded) == row["clean"]
        names = [d.strip() for d in decoded[1:4]]
        assert names == [row["answer"].strip(), "and", row["distractor"].strip()]


def _problems(tmp_path, rows, tokenizer=None) -> str:
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(PromptFileError) as err:
        if tokenizer is None:
            read_prompt_file(path)  # no tokenizer, no model: the first thing a run does
        else:
            load_prompt_file(path, tokenizer)
    return str(err.value)


def _with(row: dict, **changes) -> dict:
    return {**row, **changes}


def test_bad_spans_are_refused_with_their_line(tmp_path):
    spans = ROW1["spans"]
    late = _problems(tmp_path, [ROW1, _with(ROW1, spans={**spans, "prefix": 2})])
    assert (
        "bad.jsonl:2: spans of the clean prompt: the first span (prefix) starts at character 2"
        in late
    )
    swapped = {"prefix": 0, "IO": 9, "and": 5, **{k: spans[k] for k in list(spans)[3:]}}
    assert "bad.jsonl:1: spans of the clean prompt: span and starts at character 5, before span IO" in _problems(tmp_path, [_with(ROW1, spans=swapped)])  # fmt: skip
    assert "span END starts at character 80, beyond the prompt (58 characters)" in _problems(
        tmp_path, [_with(ROW1, spans={**spans, "END": 80})]
    )
    renamed = {("IO2" if k == "IO" else k): v for k, v in spans.items()}
    other = _problems(tmp_path, [ROW1, ROW1, _with(ROW1, spans=renamed)])
    assert (
        "bad.jsonl:3: spans named prefix, IO2, and" in other and "line 1 names prefix, IO" in other
    )
    some = _problems(tmp_path, [ROW1, {k: v for k, v in ROW1.items() if k != "spans"}])
    assert "bad.jsonl:2: no spans, but line 1 has spans" in some
    texts = _problems(tmp_path, [_with(ROW2, spans={**ROW2["spans"], "END": " too"})])
    assert "bad.jsonl:1: spans of the clean prompt: the span texts join to" in texts
    assert "bad.jsonl:1: spans must be a non-empty JSON object" in _problems(
        tmp_path, [_with(ROW1, spans=[0, 5])]
    )
    assert "all offsets or all texts" in _problems(
        tmp_path, [_with(ROW1, spans={"a": 0, "b": "x"})]
    )
    dup = json.dumps(ROW1).replace('"IO": 5', '"IO": 5, "IO": 6')
    (tmp_path / "dup.jsonl").write_text(dup + "\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="dup.jsonl:1: the key 'IO' appears twice"):
        read_prompt_file(tmp_path / "dup.jsonl")
    # no corrupted_spans, and the words do not line up
    fewer = _with(ROW1, corrupted=ROW1["corrupted"].replace("When ", "", 1))
    assert "bad.jsonl:1: no corrupted_spans, and the corrupted prompt has 13 words where the clean one has 14" in _problems(tmp_path, [fewer])  # fmt: skip
    inside = _with(ROW1, spans={**spans, "IO": 6})
    assert "span IO starts inside the word 'Mary'" in _problems(tmp_path, [inside])
    names = _with(ROW2, corrupted_spans={"prefix": 0})
    assert "bad.jsonl:1: corrupted_spans names prefix, spans prefix, IO" in _problems(tmp_path, [names])  # fmt: skip


def test_spans_that_do_not_fit_the_tokens_are_refused_with_their_line(tmp_path):
    tokenizer = word_tokenizer()
    # the corrupted IO is two words and S1 empty: 15 tokens each, but other span lengths
    corrupted = "When Mary Anna and went to the store, John gave a drink to"
    cspans = {"prefix": 0, "IO": 5, "and": 14, "S1": 18, "middle": 18, "S2": 38, "rest": 42,
              "END": 55}  # fmt: skip
    shifted = _with(ROW1, corrupted=corrupted, corrupted_spans=cspans)
    message = _problems(tmp_path, [ROW1, shifted], tokenizer)
    assert "bad.jsonl:2: the spans have other token lengths in the corrupted prompt (prefix 2, IO 2, and 1, S1 0" in message  # fmt: skip
    assert "bad.jsonl:1" not in message
    # a span starting inside a token: the bundled tokenizer has "drink" as one token
    cspans = {"prefix": 0, "IO": 5, "and": 10, "S1": 15, "middle": 18, "S2": 38, "rest": 41,
              "END": 54}  # fmt: skip
    inside = _with(ROW1, spans={**ROW1["spans"], "END": 52}, corrupted_spans=cspans)
    message = _problems(tmp_path, [inside], tokenizer)
    assert "bad.jsonl:1: the clean prompt: span END starts at character 52, inside the token 'drink'" in message  # fmt: skip


# ---------------------------------------------------------------- end to end


def test_eap_position_scores_on_ioi_sum_to_position_agnostic_scores():
    model, tokenizer = zoo.load("toy-gpt2", dtype=torch.float64)
    graph = Graph.from_model(model)
    task = get_task("ioi")
    examples = task.examples(8, seed=4)
    plain = attribute(model, graph.copy(), encode_examples(examples, tokenizer), method="eap",
                      quiet=True).scores  # fmt: skip
    data = encode_examples(examples, tokenizer, schema=task.span_schema)
    g = graph.copy()
    per_span = attribute(model, g, data, method="eap", quiet=True).position_scores
    assert g.positions == IOI_SPANS and per_span.shape[0] == len(IOI_SPANS)
    scale = float(plain.abs().max())
    assert scale > 1e-3
    torch.testing.assert_close(per_span.sum(0), plain, rtol=0, atol=1e-10 * scale)
    # the names and END carry score: the axis is not the sum in one slot
    best = per_span.abs().amax(dim=(1, 2))
    for name in ("A", "B", "S2", "END"):
        assert best[IOI_SPANS.index(name)] > 1e-3 * scale, name


def test_data_check_lists_the_spans_and_refuses_bad_ones(tmp_path, capsys):
    from circuits.app.cli import main

    path = _jsonl(tmp_path / "p.jsonl", [ROW1, ROW2])
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 0
    out = capsys.readouterr().out
    # ROW1's split: <bos> When | Mary | and | John | went to the store , | ...
    assert "8 spans in every row, median tokens: prefix 2, IO 1, and 1, S1 1, middle 5" in out
    assert "clean and corrupted prompts and their spans have equal token lengths" in out
    bad = _jsonl(tmp_path / "bad.jsonl", [ROW1, _with(ROW1, spans={**ROW1["spans"], "IO": 3})])
    assert main(["data", "check", str(bad), "--model", "toy-gpt2"]) == 2
    assert "bad.jsonl:2: no corrupted_spans, and span IO starts inside the word 'When'" in (
        capsys.readouterr().err
    )


USER_MODULE = '''
from circuits.tasks.ioi import IOI


class Shifted(IOI):
    """IOI whose corrupted S2 span starts one character late in every example."""

    def sample(self, rng):
        e = super().sample(rng)
        starts = list(e.corrupted_span_starts)
        starts[5] += 1
        return type(e)(e.clean, e.corrupted, e.answers, e.distractors,
                       span_starts=e.span_starts, corrupted_span_starts=tuple(starts))


def shifted():
    return Shifted()
'''


def test_user_tasks_spans_are_checked_for_position_aware_runs(tmp_path, monkeypatch):
    from circuits.tasks.user import user_task_problems

    tokenizer = word_tokenizer()
    for spec in ("circuits.tasks.ioi:ioi_abba", "circuits.tasks.ioi:ioi_baba"):
        task = get_task(spec)
        assert user_task_problems(spec, task, tokenizer, 6, 0, spans=True) == []
    (tmp_path / "span_tasks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "span_tasks:shifted"
    task = get_task(spec)
    assert user_task_problems(spec, task, tokenizer, 3, 0) == []  # position-agnostic: fine
    problems = user_task_problems(spec, task, tokenizer, 3, 0, spans=True)
    assert len(problems) == 6  # each example of both splits
    assert problems[0].startswith(
        "span_tasks:shifted:train: example 1: the corrupted prompt: span S2"
    )
    assert "inside the token" in problems[0]
    none = user_task_problems("circuits.tasks.copying:Copying", get_task("copying"), tokenizer, 2, 0,
                              spans=True)  # fmt: skip
    assert len(none) == 1 and "has no span_schema" in none[0]
