"""A task is one module plus one ``register_task`` line: a task registered from a module
outside the package is a ``--task`` choice listed by the command line, runs ``circuits
discover`` end to end, and changes neither the bundled tasks nor the bundled vocabulary."""

from __future__ import annotations

import importlib
import json
import random
import sys

import pytest

from circuits.app.cli import main
from circuits.tasks import (
    TASK_NAMES,
    TaskError,
    all_words,
    get_task,
    register_task,
    registry,
    task_names,
)

OUTSIDE = '''
from circuits.tasks import IOI, register_task


class ReversedIOI(IOI):
    """IOI with clean and corrupted prompts swapped: the same words, another task."""

    name = "ioi-reversed"

    def sample(self, rng):
        example = super().sample(rng)
        return type(example)(example.corrupted, example.clean, example.answers,
                             example.distractors)


register_task("ioi-reversed", ReversedIOI)
'''


@pytest.fixture
def outside_task(tmp_path, monkeypatch):
    """The registry with the module above imported from a folder outside the package (a name
    of its own, removed afterwards, so other tests' modules are not shadowed)."""
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    (tmp_path / "outside_registered_task.py").write_text(OUTSIDE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("outside_registered_task")
    sys.modules.pop("outside_registered_task", None)


def test_a_registered_task_is_found_listed_and_refused_twice(outside_task, capsys):
    assert "ioi-reversed" not in TASK_NAMES and task_names()[-1] == "ioi-reversed"
    task = get_task("ioi_reversed")  # the names' usual spelling rules hold
    assert isinstance(task, outside_task.ReversedIOI)
    ioi, mine = get_task("ioi").sample(random.Random(0)), task.sample(random.Random(0))
    assert (mine.clean, mine.corrupted) == (ioi.corrupted, ioi.clean)
    with pytest.raises(TaskError, match="'ioi-reversed' is already registered"):
        register_task("ioi-reversed", outside_task.ReversedIOI)
    with pytest.raises(SystemExit):
        main(["discover", "--help"])
    assert "ioi-reversed" in capsys.readouterr().out.replace("\n", " ")
    words = all_words()
    all_words.cache_clear()
    assert all_words() == words  # the bundled vocabulary is the bundled tasks' only


def test_an_unregistered_task_names_the_registered_ones():
    with pytest.raises(TaskError, match="unknown task 'nope'; available tasks: ioi, "):
        get_task("nope")


@pytest.mark.slow
def test_a_registered_task_runs_discover(outside_task, tmp_path):
    out = tmp_path / "run"
    argv = ["discover", "--task", "ioi-reversed", "--method", "eap", "--n-examples", "4",
            "--n-eval", "6", "--batch-size", "4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["task"]["name"] == "ioi-reversed"
    assert record["faithfulness"]["n_examples"] == 6
