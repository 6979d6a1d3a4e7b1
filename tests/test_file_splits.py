"""A prompt file's duplicate rows and train/test split: no prompt of one split occurs in the
other (by construction, and measured by discover from the token ids it used), and
``circuits data check`` and ``discover --data`` share one validation pass, which also knows the
model's context length and what ``--positions tokens`` needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from attribution import PromptPairs
from circuits import zoo
from circuits.app.cli import main
from circuits.app.discovery import DiscoverySettings, find_circuit
from circuits.app.report import render_markdown
from circuits.tasks import PromptFileError
from circuits.tasks.files import read_prompt_file

ROWS = [  # two IOI-like rows the toy tokenizer knows, of one token length (15)
    {"clean": "When Mary and John went to the store, John gave a drink to",
     "corrupted": "When Alice and Bob went to the store, Tom gave a drink to",
     "answer": " Mary", "distractor": " John"},
    {"clean": "When Anna and Paul went to the park, Paul gave a book to",
     "corrupted": "When Emma and Mark went to the park, Kate gave a book to",
     "answer": " Anna", "distractor": " Paul"},
]  # fmt: skip
NAMES = ["Mary", "John", "Anna", "Paul", "Alice", "Bob", "Emma", "Mark", "Kate", "Tom"]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(a: str, b: str, c: str) -> dict:
    """An IOI-like row over the names a, b (the answer) and c (the corrupted prompt's)."""
    return {"clean": f"When {a} and {b} went to the store, {b} gave a drink to",
            "corrupted": f"When {a} and {c} went to the store, {c} gave a drink to",
            "answer": f" {a}", "distractor": f" {b}"}  # fmt: skip


def _texts(rows) -> set[str]:
    return {r.clean for r in rows} | {r.corrupted for r in rows}


def _refuse_model(monkeypatch) -> None:
    import circuits.app.discovery as discovery

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(discovery.job, "load_for_task", refuse)


# ------------------------------------------------------------ 1: duplicates and the split


def test_repeated_rows_are_dropped_before_the_split_and_listed(tmp_path, capsys):
    """The issue's file: 2 rows repeated 20 times gave train and test the same 2 prompts."""
    path = _jsonl(tmp_path / "dup40.jsonl", ROWS * 20)
    prompts = read_prompt_file(path)
    assert len(prompts.rows) == 2 and [r.line for r in prompts.rows] == [1, 2]
    assert prompts.duplicates == [(n, 1 + (n - 1) % 2) for n in range(3, 41)]
    assert prompts.describe()["n_duplicate_rows_dropped"] == 38
    train, test = prompts.splits["train"], prompts.splits["test"]
    assert len(train) == 1 and len(test) == 1 and not _texts(train) & _texts(test)
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 0
    out = capsys.readouterr().out
    assert "dropped 38 duplicate row(s) before the split" in out
    odd, even = (", ".join(str(n) for n in range(k, 41, 2)) for k in (3, 4))
    assert f"{path}:1 is repeated on line(s) {odd}\n" in out
    assert f"{path}:2 is repeated on line(s) {even}\n" in out
    assert "1 train, 1 test" in out


def test_rows_with_the_same_prompts_but_other_answers_are_kept_in_one_split(tmp_path):
    other = {**ROWS[0], "answer": " Anna"}  # not a repeat: it says something else
    rows = [ROWS[0], other] + [_row(a, b, "Tom") for a in NAMES[:4] for b in NAMES[4:8]]
    for seed in range(10):
        prompts = read_prompt_file(_jsonl(tmp_path / "p.jsonl", rows), seed=seed)
        assert prompts.duplicates == [] and len(prompts.rows) == len(rows)
        lines = {s: {r.line for r in prompts.splits[s]} for s in ("train", "test")}
        assert {1, 2} <= lines["train"] or {1, 2} <= lines["test"]


def test_the_seeded_split_never_cuts_rows_that_share_a_prompt(tmp_path):
    """One row's corrupted prompt is the next one's clean prompt: a chain over 4 rows, plus
    rows sharing nothing; no seed may put a chained prompt in both splits."""
    chain = [_row("Mary", "John", "Anna"), _row("Mary", "Anna", "Paul"),
             _row("Mary", "Paul", "Kate"), _row("Mary", "Kate", "Emma")]  # fmt: skip
    rows = chain + [_row(a, b, "Tom") for a in NAMES[4:8] for b in NAMES[:2]]
    assert rows[0]["corrupted"] == rows[1]["clean"]
    sizes = set()
    for seed in range(30):
        prompts = read_prompt_file(_jsonl(tmp_path / "p.jsonl", rows), seed=seed)
        train, test = prompts.splits["train"], prompts.splits["test"]
        assert not _texts(train) & _texts(test), seed
        assert len(train) + len(test) == len(rows)
        sizes.add(len(test))
    assert min(sizes) >= round(0.2 * len(rows))  # test still gets its share


def test_a_split_column_that_leaks_a_prompt_is_refused_with_both_lines(tmp_path):
    rows = [{**_row("Mary", "John", "Anna"), "split": "train"},
            {**_row("Mary", "Anna", "Paul"), "split": "test"},  # its clean is line 1's corrupted
            {**_row("Kate", "Emma", "Tom"), "split": "test"}]  # fmt: skip
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(_jsonl(tmp_path / "s.jsonl", rows))
    assert len(info.value.problems) == 1
    assert re.search(
        r"s\.jsonl:2: the clean prompt .* also a prompt of train line 1", str(info.value)
    )
    # an exact repeat in the other split is dropped instead (its first occurrence stays)
    again = [rows[0], {**rows[0], "split": "test"}, rows[2]]
    prompts = read_prompt_file(_jsonl(tmp_path / "r.jsonl", again))
    assert prompts.duplicates == [(2, 1)] and [r.line for r in prompts.splits["test"]] == [3]


def test_the_held_out_count_is_measured_from_the_token_ids():
    from circuits.app.prompts import held_out_prompts

    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])

    def pairs(clean, corrupted):
        n = len(clean)
        return PromptPairs(torch.tensor(clean), torch.tensor(corrupted),
                           torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.long),
                           mask[:n])  # fmt: skip

    train = pairs([[5, 6, 7], [5, 6, 0]], [[8, 6, 7], [8, 6, 9]])
    apart = pairs([[9, 9, 9], [5, 6, 7]], [[4, 4, 4], [1, 2, 3]])  # [5, 6] is padded in train
    assert held_out_prompts(train, apart) == {"n_prompts_in_both_splits": 1}  # [5, 6, 7]
    assert held_out_prompts(train, pairs([[9, 9, 9]], [[8, 6, 9]])) == {
        "n_prompts_in_both_splits": 0  # [8, 6, 9] in train is [8, 6] with padding
    }
    leaked = pairs([[8, 6, 7], [9, 9, 1]], [[5, 6, 7], [1, 2, 3]])  # two of train's
    assert held_out_prompts(train, leaked)["n_prompts_in_both_splits"] == 2


@pytest.mark.parametrize("shared", [0, 3, None])
def test_the_reports_held_out_sentence_follows_the_measured_count(shared):
    task = {"n_attribution": 4, "n_evaluation": 2, "attribution_split": "train",
            "evaluation_split": "test", "n_attribution_distinct_clean": 4,
            "n_attribution_distinct_corrupted": 4, "n_evaluation_distinct_clean": 2,
            "n_evaluation_distinct_corrupted": 2, "data_file": "p.jsonl",
            "n_duplicate_rows_dropped": 38}  # fmt: skip
    if shared is not None:
        task["n_prompts_in_both_splits"] = shared
    md = render_markdown({"format": "circuit-discovery-run", "task": task}, {})
    claim = "No prompt, clean or corrupted, of one split occurs in the other"
    assert (claim in md) == (shared == 0)
    assert ("3 distinct prompts (clean or corrupted) of the evaluation split" in md) == (
        shared == 3
    )
    assert "38 duplicate rows of the prompt file" in md


@pytest.mark.slow
def test_discover_on_the_issues_repeated_file_holds_out_its_test_prompt(tmp_path, capsys):
    path = _jsonl(tmp_path / "dup40.jsonl", ROWS * 20)
    out = tmp_path / "run"
    assert main(["discover", "--data", str(path), "--out", str(out), "--quiet"]) == 0
    assert "data: dropped 38 duplicate row(s)" in capsys.readouterr().out
    task = json.loads((out / "metrics.json").read_text())["task"]
    assert task["n_duplicate_rows_dropped"] == 38 and task["n_rows"] == 2
    assert task["n_attribution"] == 1 and task["n_evaluation"] == 1
    assert task["n_prompts_in_both_splits"] == 0
    report = (out / "report.md").read_text()
    assert "No prompt, clean or corrupted, of one split occurs in the other" in report
    assert "38 duplicate rows of the prompt file" in report


# ------------------------------------------------------------ 2-4: one validation pass


def _problem_lines(text: str) -> list[str]:
    return sorted(line.strip() for line in text.splitlines() if line.startswith("  "))


def test_check_and_discover_report_the_same_problems_each_with_its_line(
    tmp_path, capsys, monkeypatch
):
    """Three rows, three problems: an unknown-word answer was found in a second pass,
    labelled "example 0:", and left out of the list."""
    rows = [{**ROWS[0], "answer": " Zzyzx"},
            {**ROWS[1], "corrupted": ROWS[1]["corrupted"] + " to"},
            {**ROWS[1], "answer": " Mary John"}]  # fmt: skip
    path = _jsonl(tmp_path / "three.jsonl", rows)
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 2
    checked = capsys.readouterr().err
    _refuse_model(monkeypatch)
    assert main(["discover", "--data", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    discovered = capsys.readouterr().err
    assert _problem_lines(checked) == _problem_lines(discovered)
    assert "3 problem(s)" in checked and "example 0" not in checked
    for n, what in ((1, "has the word 'Zzyzx'"), (2, "has 15 tokens but corrupted has 16"),
                    (3, "' Mary John' is not one token")):  # fmt: skip
        assert f"three.jsonl:{n}: " in checked and what in checked


def test_a_file_without_test_rows_fails_data_check_as_it_fails_discover(tmp_path, capsys):
    one = tmp_path / "one.csv"
    clean, corrupted = ROWS[0]["clean"], ROWS[0]["corrupted"]
    one.write_text(f'clean,corrupted,answer,distractor\n"{clean}","{corrupted}", Mary, John\n')
    for cmd in (["data", "check", str(one)],
                ["discover", "--data", str(one), "--out", str(tmp_path / "r"), "--quiet"]):  # fmt: skip
        assert main(cmd) == 2
        assert "one.csv: no test rows; add rows: the seeded 80/20 split needs at least 2" in (
            capsys.readouterr().err
        )
    train_only = _jsonl(tmp_path / "t.jsonl", [{**r, "split": "train"} for r in ROWS])
    assert main(["data", "check", str(train_only)]) == 2
    assert "no test rows; give some rows split=test" in capsys.readouterr().err


def test_positions_tokens_checks_train_and_test_rows_together(tmp_path, capsys, monkeypatch):
    """Train rows of 15 tokens, test rows of 16: once found only after attribution."""
    longer = {"clean": "When Mary and John went to the big store, John gave a drink to",
              "corrupted": "When Alice and Bob went to the big store, Tom gave a drink to",
              "answer": " Mary", "distractor": " John"}  # fmt: skip
    rows = [{**r, "split": "train"} for r in ROWS] + [{**longer, "split": "test"}]
    path = _jsonl(tmp_path / "len.jsonl", rows)
    assert main(["data", "check", str(path)]) == 0  # fine without --positions
    capsys.readouterr()
    assert main(["data", "check", str(path), "--positions", "tokens"]) == 2
    err = capsys.readouterr().err
    assert "len.jsonl:3: 16 tokens, but 2 of the 3 rows (e.g. line 1) have 15" in err
    _refuse_model(monkeypatch)
    settings = DiscoverySettings(data=str(path), positions="tokens", n_examples=2, n_eval=1)
    with pytest.raises(PromptFileError, match="len.jsonl:3: 16 tokens"):
        find_circuit(settings, quiet=True)


def test_positions_tokens_refuses_a_task_whose_splits_differ_in_length(monkeypatch):
    """The same rule for tasks (bundled or module:factory), whose splits are not file rows."""
    import circuits.app.prompts as prompts
    from attribution import get_method
    from attribution.positions import with_positions
    from circuits.app.discovery import RunError, check_positions
    from tests.conftest import random_pairs

    train, test = (with_positions(random_pairs(3, n, seed=n), "tokens") for n in (7, 8))
    monkeypatch.setattr(prompts, "load_tokenizer", lambda model: None)
    monkeypatch.setattr(prompts, "prompt_pairs", lambda settings, tokenizer: (train, test, {}))
    settings = DiscoverySettings(task="ioi", positions="tokens")
    with pytest.raises(RunError, match="train prompts have 7 tokens and the test prompts 8"):
        check_positions(settings, get_method(settings.method))
    test = with_positions(random_pairs(3, 7, seed=8), "tokens")
    check_positions(settings, get_method(settings.method))  # one length: accepted


def test_prompts_beyond_the_models_context_are_refused_before_it_loads(
    tmp_path, capsys, monkeypatch
):
    from circuits.app.prompts import model_context

    config = json.loads((zoo.model_dir("toy-gpt2") / "config.json").read_text())
    context = config["n_positions"]
    assert model_context("toy-gpt2") == context
    filler = " and".join([" the store"] * context)  # far more tokens than the context
    long = {
        **ROWS[1],
        "clean": ROWS[1]["clean"] + filler,
        "corrupted": ROWS[1]["corrupted"] + filler,
    }
    path = _jsonl(
        tmp_path / "long.jsonl", [ROWS[0], long, *(_row(a, "Tom", "Bob") for a in NAMES[:4])]
    )
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"long\.jsonl:2: the prompt has \d+ tokens, more than the model's context "
                     rf"of {context} tokens", err)  # fmt: skip
    assert "long.jsonl:1" not in err
    _refuse_model(monkeypatch)
    assert main(["discover", "--data", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert f"more than the model's context of {context} tokens" in capsys.readouterr().err


# ------------------------------------------------------------ 6: docs named in messages


def test_every_doc_the_code_names_exists():
    """An error message once sent users to docs/data.md, which did not exist."""
    root = Path(__file__).parent.parent
    named = {
        (source.relative_to(root), doc)
        for package in ("circuits", "attribution", "graphs")
        for source in (root / package).rglob("*.py")
        for doc in re.findall(r"docs/[\w./-]+\.md", source.read_text(encoding="utf-8"))
    }
    assert named, "no doc is named at all: the pattern is wrong"
    assert [(str(s), d) for s, d in sorted(named) if not (root / d).is_file()] == []


# ------------------------------------------------------------ 5: the batched tokenisation


@pytest.mark.parametrize("model", ["toy-gpt2", "toy-llama"])
def test_batched_token_ids_equal_the_tokenizers_own(model):
    """token_ids runs the tokenizers backend in one batch; the ids must be the tokenizer's."""
    from circuits.app.prompts import load_tokenizer
    from circuits.tasks.encode import token_ids

    tokenizer = load_tokenizer(model)
    texts = [r[k] for r in ROWS for k in ("clean", "corrupted")]
    texts += ["", " ", "When  Mary\tand 1745 -> é ü 漢字 John", ROWS[0]["clean"] + " Zzyzx"]
    texts += texts[:3]  # repeated texts are encoded once, and each row gets its own list
    ids = token_ids(tokenizer, texts)
    assert ids == tokenizer(texts, add_special_tokens=True)["input_ids"]
    assert ids[0] is not ids[-3]
    # a backend saved with truncation would cut long prompts short: the tokenizer's own call
    # (which switches it off) is used instead, so the context check sees every token
    long = ROWS[0]["clean"] * 3
    tokenizer.backend_tokenizer.enable_truncation(max_length=8)
    assert len(token_ids(tokenizer, [long])[0]) == len(tokenizer(long)["input_ids"]) > 8
