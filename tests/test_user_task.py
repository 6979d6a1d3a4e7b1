"""``--task package.module:factory``: a user's Task is imported, its examples get the prompt-file
checks before any model work, and a run on it equals the same examples given as a file."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from circuits.app.cli import main
from circuits.app.discovery import DiscoverySettings, RunError, find_circuit
from circuits.tasks import PromptFileError, get_task

MODULE = textwrap.dedent("""
    import random
    from circuits.tasks import Example, Task

    NAMES = ["Mary", "John", "Alice", "Bob", "Tom", "Anna"]

    class Greeting(Task):
        name = "greeting"
        metric = "logit_diff"
        answer = " {io}"

        def sample(self, rng: random.Random) -> Example:
            io, s, c1, c2, c3 = rng.sample(NAMES, 5)
            fill = "When {} and {} went to the store, {} gave a drink to"
            return Example(fill.format(io, s, s), fill.format(c1, c2, c3),
                           (self.answer.format(io=io),), (" " + s,))

    def make():
        return Greeting()

    def broken():
        task = Greeting()
        task.answer = " {io} and"
        return task

    def not_a_task():
        return 42
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_tasks"


def test_a_user_task_runs_like_the_same_examples_from_a_file(user_module, tmp_path):
    task = get_task(f"{user_module}:make")
    assert task.name == "greeting"
    rows = [
        {"clean": e.clean, "corrupted": e.corrupted, "answers": list(e.answers),
         "distractors": list(e.distractors), "split": split}
        for split in ("train", "test") for e in task.examples(8, seed=0, split=split)
    ]  # fmt: skip
    path = tmp_path / "greeting.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = dict(n_examples=8, n_eval=8, method="eap", bootstrap=20)
    a = find_circuit(DiscoverySettings(task=f"{user_module}:make", **common), quiet=True)
    b = find_circuit(DiscoverySettings(data=str(path), **common), quiet=True)
    assert torch.equal(a.graph.scores, b.graph.scores)
    assert a.metrics["faithfulness"] == b.metrics["faithfulness"]
    assert a.metrics["task"]["name"] == "greeting"


def test_a_user_task_with_bad_examples_is_refused_before_the_model(user_module):
    with pytest.raises(PromptFileError) as info:
        DiscoverySettings(task=f"{user_module}:broken", n_examples=4, n_eval=4).check()
    message = str(info.value)
    assert f"{user_module}:broken:train: example 1: ' " in message
    assert "is not one token after its prompt under this tokenizer" in message


def test_bad_task_references_exit_2_with_the_fix(user_module, tmp_path, capsys):
    cases = {
        f"{user_module}:not_a_task": "returned int, which lacks name, metric, examples",
        f"{user_module}:missing": "my_tasks has no callable 'missing'",
        "no_such_module_xyz:make": "cannot import 'no_such_module_xyz'",
    }
    for spec, expected in cases.items():
        with pytest.raises(RunError, match=expected):
            DiscoverySettings(task=spec).check()
    out = tmp_path / "run"
    assert main(["discover", "--task", "no_such_module_xyz:make", "--out", str(out)]) == 2
    assert "put its folder on PYTHONPATH" in capsys.readouterr().err and not out.exists()
