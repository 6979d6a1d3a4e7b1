"""``--data FILE`` and ``circuits data check``: bad files exit 2 naming the line before any model
work and leave no output folder; the bundled IOI task written to a file finds the same circuit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuits.app.cli import main
from circuits.app.discovery import DiscoverySettings, RunError, find_circuit
from circuits.tasks import PromptFileError, get_task

N = 24


def write_task(path: Path, task: str = "ioi", n: int = N, seed: int = 0) -> Path:
    """The task's train and test examples as JSONL, the split column carrying its split."""
    rows = [
        {"id": f"{split}-{i}", "clean": e.clean, "corrupted": e.corrupted,
         "answers": list(e.answers), "distractors": list(e.distractors), "split": split}
        for split in ("train", "test")
        for i, e in enumerate(get_task(task).examples(n, seed=seed, split=split))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _bad_file(tmp_path: Path) -> Path:
    clean = "When Mary and John went to the store, John gave a drink to"
    rows = [
        {"clean": clean, "corrupted": clean, "answer": " Mary", "distractor": " John"},
        {"clean": clean, "corrupted": clean + " it", "answer": " Mary"},
        {"clean": clean, "answer": " Mary"},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_data_check_describes_a_good_file(tmp_path, capsys):
    path = write_task(tmp_path / "ioi.jsonl")
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 0
    out = capsys.readouterr().out
    assert f"{2 * N} rows, text layout" in out
    assert f"split column of the file: {N} train, {N} test" in out
    assert f"{N} answers and {N} distractors, each one token" in out


def test_data_check_lists_every_problem_and_exits_2(tmp_path, capsys):
    path = _bad_file(tmp_path)
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "bad.jsonl:3: missing column(s) corrupted" in err
    # the two readable rows share their clean prompt, so no row can be held out for test
    assert "bad.jsonl: no test rows; all rows share prompts" in err
    assert "bad.jsonl:2: clean has 15 tokens but corrupted has 16 under this tokenizer" in err


def test_discover_with_a_bad_file_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["discover", "--data", str(_bad_file(tmp_path)), "--out", str(out), "--quiet"]) == 2
    assert "bad.jsonl:3: missing column(s) corrupted" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.jsonl"]


def test_counterfactual_on_a_text_file_is_refused(tmp_path):
    settings = DiscoverySettings(data=str(write_task(tmp_path / "p.jsonl")), counterfactual="abc")
    with pytest.raises(PromptFileError, match="drop --counterfactual"):
        settings.check()
    with pytest.raises(RunError, match="unknown method"):
        DiscoverySettings(data=str(tmp_path / "p.jsonl"), method="nope").check()


def test_the_bundled_task_from_a_file_finds_the_same_circuit(tmp_path):
    path = write_task(tmp_path / "ioi.jsonl")
    common = dict(n_examples=N, n_eval=N, seed=0, bootstrap=50, method="eap-ig-inputs")
    bundled = find_circuit(DiscoverySettings(task="ioi", **common), quiet=True)
    from_file = find_circuit(DiscoverySettings(data=str(path), **common), quiet=True)
    assert torch.equal(bundled.graph.scores, from_file.graph.scores)
    assert torch.equal(bundled.graph.in_graph, from_file.graph.in_graph)
    a, b = bundled.metrics, from_file.metrics
    assert a["faithfulness"] == b["faithfulness"] and a["curve"] == b["curve"]
    task = b["task"]
    assert task["name"] == "ioi" and task["data_file"] == str(path)
    assert task["split"] == "split column of the file" and task["n_attribution"] == N


def test_the_guides_ten_line_file_is_valid(tmp_path, capsys):
    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text()
    block = guide[guide.index("## Your own prompts") :].split("```")[1].strip()
    path = tmp_path / "my_prompts.jsonl"
    path.write_text(block + "\n")
    assert main(["data", "check", str(path), "--model", "toy-gpt2"]) == 0
    assert "10 rows, text layout" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["discover", "evaluate"])
def test_task_and_data_together_are_refused(tmp_path, capsys, command):
    """Both name the prompts; before, --data silently won over an explicit --task."""
    from circuits.app.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"clean": "a", "corrupted": "b", "answer": " c"}\n')
    graph = tmp_path / "graph.json"
    graph.write_text("{}")
    target = ["--out", str(tmp_path / "run")] if command == "discover" else [str(graph)]
    code = main([command, *target, "--task", "ioi", "--data", str(data), "--quiet"])
    assert code == 2
    assert "either --task (ioi) or --data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


_CLEAN = "When Mary and John went to the store, John gave a drink to"
_ROW = {"clean": _CLEAN, "corrupted": _CLEAN, "answer": " Mary", "distractor": " John"}
MALFORMED = {  # name: (file name, bytes, the FILE:LINE the message must name)
    "empty": ("e.jsonl", b"\n", "e.jsonl"),
    "missing column": ("m.jsonl", (json.dumps({"clean": _CLEAN, "answer": " Mary"}) + "\n").encode(), "m.jsonl:1"),
    "token lengths": ("t.jsonl", (json.dumps({**_ROW, "corrupted": _CLEAN + " it"}) + "\n").encode(), "t.jsonl:1"),
    "answer not one token": ("a.jsonl", (json.dumps({**_ROW, "answer": " Mary John"}) + "\n").encode(), "a.jsonl:1"),
    "answer is distractor": ("s.jsonl", (json.dumps({**_ROW, "distractor": " Mary"}) + "\n").encode(), "s.jsonl:1"),
    "id out of vocabulary": ("v.csv", f"clean,corrupted,correct_idx,incorrect_idx\n{_CLEAN},{_CLEAN},5,99999\n".encode(), "v.csv:2"),
    "duplicate id": ("d.jsonl", "".join(json.dumps({**_ROW, "id": 1}) + "\n" for _ in range(2)).encode(), "d.jsonl:2"),
    "not UTF-8": ("u.csv", b"clean,corrupted,answer\nc\xe9,d, y\n", "u.csv:2"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_every_malformed_file_exits_2_naming_its_line_and_writes_nothing(tmp_path, capsys, case):
    name, content, where = MALFORMED[case]
    (tmp_path / name).write_bytes(content)
    out = tmp_path / "run"
    code = main(["discover", "--data", str(tmp_path / name), "--out", str(out), "--quiet"])
    assert code == 2
    assert where in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [name]
