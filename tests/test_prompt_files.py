"""Prompt files (circuits.tasks.files): each layout gives exactly the tensors and scores of the
equivalent hand-built PromptPairs, and every malformed file is refused with its line number."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from attribution import PromptPairs, attribute
from circuits import zoo
from circuits.tasks import PromptFileError, encode_examples, get_task, load_prompt_file
from circuits.tasks.files import read_prompt_file
from graphs import Graph

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Alice and Bob went to the store, Tom gave a drink to"


@pytest.fixture(scope="module")
def toy():
    return zoo.load("toy-gpt2")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def _hand_built(tokenizer, pairs: list[tuple[str, str, list[int], list[int]]]) -> PromptPairs:
    """Prompt pairs built directly from the tokenizer's ids (the prompts have equal lengths)."""
    clean = [_ids(tokenizer, c) for c, _, _, _ in pairs]
    width = max(len(c) for c in clean)
    pad = tokenizer.pad_token_id
    tokens = torch.tensor([c + [pad] * (width - len(c)) for c in clean])
    corrupted = torch.tensor(
        [
            _ids(tokenizer, r) + [pad] * (width - len(c))
            for (_, r, _, _), c in zip(pairs, clean, strict=True)
        ]
    )
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in clean])
    return PromptPairs(tokens, corrupted, torch.tensor([a for _, _, a, _ in pairs]),
                       torch.tensor([d for _, _, _, d in pairs]), mask)  # fmt: skip


def _same(a: PromptPairs, b: PromptPairs) -> None:
    for name in ("clean", "corrupted", "answers", "distractors", "attention_mask", "positions"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def _scores(model, data: PromptPairs) -> torch.Tensor:
    graph = Graph.from_model(model)
    attribute(model, graph, data, method="eap", batch_size=8, quiet=True)
    return graph.scores.clone()


def _continuation(tokenizer, prompt: str, answer: str) -> int:
    return _ids(tokenizer, prompt + answer)[-1]


def _ioi_rows(n: int) -> list:
    return get_task("ioi").examples(n, seed=3, split="train")


def test_text_jsonl_gives_the_bundled_tensors_and_scores(toy, tmp_path):
    model, tokenizer = toy
    examples = _ioi_rows(6)
    path = _jsonl(tmp_path / "p.jsonl", [
        {"clean": e.clean, "corrupted": e.corrupted, "answer": e.answers[0],
         "distractor": e.distractors[0], "split": "train", "id": f"r{i}"}
        for i, e in enumerate(examples)
    ])  # fmt: skip
    loaded = load_prompt_file(path, tokenizer).encode(tokenizer, "train")
    hand = _hand_built(tokenizer, [
        (e.clean, e.corrupted, [_continuation(tokenizer, e.clean, e.answers[0])],
         [_continuation(tokenizer, e.clean, e.distractors[0])]) for e in examples
    ])  # fmt: skip
    _same(loaded, hand)
    _same(loaded, encode_examples(examples, tokenizer))
    assert torch.equal(_scores(model, loaded), _scores(model, hand))


def test_text_csv_with_answer_lists(toy, tmp_path):
    _, tokenizer = toy
    path = _csv(tmp_path / "p.csv", ["clean", "corrupted", "answers", "distractors"], [
        [CLEAN, CORRUPTED, json.dumps([" Mary", " Anna"]), " John"],
        [CLEAN.replace("drink", "book"), CORRUPTED.replace("drink", "book"), " Mary", " John"],
    ])  # fmt: skip
    prompts = load_prompt_file(path, tokenizer)
    data = prompts.encode(tokenizer)
    mary, anna, john = (_continuation(tokenizer, CLEAN, w) for w in (" Mary", " Anna", " John"))
    assert data.answers.tolist() == [[mary, anna], [mary, -1]]
    assert data.distractors.tolist() == [[john], [john]]
    assert torch.equal(data.clean[0], torch.tensor(_ids(tokenizer, CLEAN)))


def test_eap_ig_csv_ids_are_used_as_they_are(toy, tmp_path):
    model, tokenizer = toy
    examples = _ioi_rows(5)
    pairs = [
        (e.clean, e.corrupted, [_continuation(tokenizer, e.clean, e.answers[0])],
         [_continuation(tokenizer, e.clean, e.distractors[0])]) for e in examples
    ]  # fmt: skip
    path = _csv(tmp_path / "eap.csv", ["clean", "corrupted", "correct_idx", "incorrect_idx"],
                [[c, r, a[0], d[0]] for c, r, a, d in pairs])  # fmt: skip
    prompts = load_prompt_file(path, tokenizer)
    assert prompts.format == "eap-ig"
    loaded, hand = prompts.encode(tokenizer), _hand_built(tokenizer, pairs)
    _same(loaded, hand)
    assert torch.equal(_scores(model, loaded), _scores(model, hand))


def test_mib_rows_pick_the_counterfactual_by_name(toy, tmp_path):
    model, tokenizer = toy
    other = CLEAN.replace("John gave", "Mary gave")
    row = {
        "prompt": CLEAN, "choices": [" Mary", " John"], "answerKey": 0,
        "abc_counterfactual": {"prompt": CORRUPTED},
        "s2_io_flip_counterfactual": {"prompt": other, "choices": [" Mary", " John"], "answerKey": 1},
    }  # fmt: skip
    path = _jsonl(tmp_path / "mib.jsonl", [row, {**row, "prompt": CLEAN.replace("drink", "book")}])
    mary, john = (_continuation(tokenizer, CLEAN, w) for w in (" Mary", " John"))
    abc = load_prompt_file(path, tokenizer, counterfactual="abc")
    assert abc.format == "mib" and abc.rows[0].corrupted == CORRUPTED
    flip = load_prompt_file(path, tokenizer, counterfactual="s2_io_flip_counterfactual")
    data = flip.encode(tokenizer)
    hand = _hand_built(tokenizer, [(CLEAN, other, [mary], [john]),
                                   (CLEAN.replace("drink", "book"), other, [mary], [john])])  # fmt: skip
    _same(data, hand)
    assert torch.equal(_scores(model, data), _scores(model, hand))
    with pytest.raises(
        PromptFileError, match=r"mib.jsonl:1: 2 counterfactual prompts .*--counterfactual"
    ):
        read_prompt_file(path)
    with pytest.raises(PromptFileError, match=r"mib.jsonl:1: no counterfactual 'nope'"):
        read_prompt_file(path, counterfactual="nope")


def test_mib_ioi_rows_are_read_with_only_the_fields_mibs_loader_reads(toy, tmp_path):
    """MIB's IOI rows have no choices or answerKey: prompt, metadata and counterfactuals."""
    from circuits.tasks.mib_rows import BUNDLED

    model, tokenizer = toy
    lines = BUNDLED["ioi"].read_text(encoding="utf-8").splitlines()[:10]
    rows = [json.loads(line) for line in lines]
    path = _jsonl(tmp_path / "ioi_mib.jsonl", rows)
    loaded = load_prompt_file(path, tokenizer)  # MIB's default: s2_io_flip_counterfactual
    assert loaded.format == "mib" and len(loaded.rows) == 10
    by_clean = {r.clean: r for r in loaded.rows}
    for row in rows:
        mine = by_clean[row["prompt"]]
        assert mine.corrupted == row["s2_io_flip_counterfactual"]["prompt"]
        assert mine.answers == (" " + row["metadata"]["indirect_object"],)  # MIB adds the space
        assert mine.distractors == (" " + row["metadata"]["subject"],)
    abc = read_prompt_file(path, counterfactual="abc")
    assert {r.corrupted for r in abc.rows} == {r["abc_counterfactual"]["prompt"] for r in rows}
    del rows[3]["metadata"]["subject"]
    bad = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(PromptFileError, match=r"bad.jsonl:4: no field 'metadata.subject'"):
        read_prompt_file(bad)


def test_seeded_split_without_a_split_column(tmp_path):
    rows = [
        {"clean": f"a b {i}", "corrupted": f"a c {i}", "answer": " x", "id": i} for i in range(50)
    ]
    path = _jsonl(tmp_path / "p.jsonl", rows)
    one, again, other = (read_prompt_file(path, seed=s) for s in (0, 0, 1))
    assert len(one.splits["test"]) == 10 and len(one.splits["train"]) == 40
    assert [r.id for r in one.splits["test"]] == [r.id for r in again.splits["test"]]
    assert [r.id for r in one.splits["test"]] != [r.id for r in other.splits["test"]]
    assert not {r.id for r in one.splits["test"]} & {r.id for r in one.splits["train"]}
    assert one.describe()["split"] == "seeded 80%/20% shuffle (seed 0)"
    assert [r.line for r in one.splits["train"]] == sorted(r.line for r in one.splits["train"])


def _problems(path: Path, tokenizer=None, **kw) -> str:
    with pytest.raises(PromptFileError) as info:
        if tokenizer is None:
            read_prompt_file(path, **kw)
        else:
            load_prompt_file(path, tokenizer, **kw)
    return str(info.value)


def test_structural_errors_name_file_line_and_fix(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert "empty.jsonl: the file has no rows" in _problems(empty)
    missing = _jsonl(tmp_path / "m.jsonl", [{"clean": "a", "corrupted": "b", "answer": " x"},
                                            {"clean": "a", "answer": " x"}])  # fmt: skip
    assert "m.jsonl:2: missing column(s) corrupted; a text row needs clean, corrupted" in _problems(
        missing
    )
    header = _csv(tmp_path / "h.csv", ["clean", "corrupt", "answer"], [["a", "b", " x"]])
    assert "h.csv:2: missing column(s) corrupted" in _problems(header)
    same = _jsonl(
        tmp_path / "s.jsonl", [{"clean": "a", "corrupted": "b", "answer": " x", "distractor": " x"}]
    )
    assert "s.jsonl:1: answer ' x' is also a distractor" in _problems(same)
    dup = _jsonl(
        tmp_path / "d.jsonl", [{"clean": "a", "corrupted": "b", "answer": " x", "id": 7}] * 2
    )
    assert "d.jsonl:2: id '7' already used on line 1" in _problems(dup)
    raw = tmp_path / "u.csv"
    raw.write_bytes(b"clean,corrupted,answer\na,b, x\nc\xe9,d, y\n")
    assert "u.csv:3: not UTF-8 text (byte 0xe9 at column 2); save the file as UTF-8" in _problems(
        raw
    )
    bad_json = tmp_path / "j.jsonl"
    bad_json.write_text('{"clean": "a", "corrupted": "b", "answer": " x"}\n{"clean": \n')
    assert "j.jsonl:2: not valid JSON" in _problems(bad_json)
    split = _jsonl(
        tmp_path / "sp.jsonl", [{"clean": "a", "corrupted": "b", "answer": " x", "split": "dev"}]
    )
    assert "sp.jsonl:1: split 'dev' is not train or test" in _problems(split)
    ids = _csv(tmp_path / "e.csv", ["clean", "corrupted", "correct_idx"], [["a", "b", "x1"]])
    assert "e.csv:2: correct_idx / incorrect_idx must be token ids" in _problems(ids)
    assert "unknown file type '.txt'" in _problems(_jsonl(tmp_path / "p.txt", [{"clean": "a"}]))


def test_tokenizer_errors_say_how_the_text_tokenises(toy, tmp_path):
    _, tokenizer = toy
    path = _jsonl(tmp_path / "t.jsonl", [
        {"clean": CLEAN, "corrupted": CORRUPTED, "answer": " Mary", "distractor": " John"},
        {"clean": CLEAN, "corrupted": CORRUPTED + " then", "answer": " Mary"},
        {"clean": CLEAN, "corrupted": CORRUPTED, "answer": " Mary Anna"},
    ])  # fmt: skip
    message = _problems(path, tokenizer)
    n = len(_ids(tokenizer, CLEAN))
    assert "3 problem(s)" in message  # the unknown word 'then' is listed with the rest
    assert "t.jsonl:2: the corrupted prompt has the word 'then', which this tokenizer" in message
    assert (
        f"t.jsonl:2: clean has {n} tokens but corrupted has {n + 1} under this tokenizer" in message
    )
    assert (
        "t.jsonl:3: ' Mary Anna' is not one token after its prompt under this tokenizer (it tokenises as ['Mary', 'Anna'])"
        in message
    )
    assert "t.jsonl:1" not in message
    # unknown words would both become the word-level tokenizer's <unk>: each is named, in
    # the same pass as the other problems (once a second pass said "example 0:")
    unk = _jsonl(
        tmp_path / "k.jsonl",
        [{"clean": CLEAN, "corrupted": CORRUPTED, "answer": " Zork", "distractor": " Quux"}],
    )
    message = _problems(unk, tokenizer)
    assert "2 problem(s)" in message
    for word in ("Zork", "Quux"):
        assert f"k.jsonl:1: the continuation ' {word}' has the word '{word}'" in message
    eap = _csv(tmp_path / "v.csv", ["clean", "corrupted", "correct_idx", "incorrect_idx"],
               [[CLEAN, CORRUPTED, 5, len(tokenizer) + 3]])  # fmt: skip
    assert (
        f"v.csv:2: token id {len(tokenizer) + 3} is outside the vocabulary (0..{len(tokenizer) - 1})"
        in _problems(eap, tokenizer)
    )
