"""The run folder's safety and integrity: one run per output folder (a lock), an output that
cannot be written refused before any work, graph files checked against the checksums in
metrics.json by every reader, and a --data run's prompt file found from anywhere and refused
when it changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuits.app.cli import main
from graphs import load_graph

WORKTREE = Path(__file__).resolve().parents[1]
FAST = ["--n-examples", "8", "--n-eval", "8", "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(WORKTREE)}


def _error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def _no_model_work(monkeypatch) -> None:
    import circuits.app.discovery

    def no_loading(*args, **kwargs):
        raise AssertionError("the output check must stop the run before loading the model")

    monkeypatch.setattr(circuits.app.discovery.job, "load_for_task", no_loading)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ one run per folder

_HOLDER = """
import sys, time
from circuits.app.output import output_lock
with output_lock(sys.argv[1], "circuits discover --out same --seed 1"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_run_into_a_locked_folder_exits_2_at_once_naming_the_first(
    tmp_path, capsys, monkeypatch
):
    from circuits.app.output import lock_path, output_lock

    out = tmp_path / "same"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        _no_model_work(monkeypatch)
        assert main(["discover", *FAST, "--method", "eap", "--out", str(out), "--seed", "2"]) == 2
        err = _error(capsys)
        assert f"another run is writing {out}" in err
        assert f"pid {holder.pid}, `circuits discover --out same --seed 1`, started " in err
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without removing its lock file
        holder.wait()
    # the kernel released the dead holder's lock: its file is taken over, then removed
    assert lock_path(out).exists()
    with output_lock(out, "next"):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()


def _discover_process(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "circuits", "discover", *FAST, "--steps", "1", *args],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_two_concurrent_runs_into_one_new_folder_one_fails_and_one_stays(tmp_path):
    """Both used to succeed, the last to finish silently replacing the other's folder."""
    first = _discover_process(tmp_path, "--out", "same", "--seed", "1")
    lock, deadline = tmp_path / ".circuits-lock-same", time.monotonic() + 120
    while not lock.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = _discover_process(tmp_path, "--method", "eap", "--out", "same", "--seed", "2")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2, err
    assert f"pid {first.pid}" in err and "--seed 1" in err
    assert first.poll() is None, "the second run must fail while the first still runs"
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    record = json.loads((tmp_path / "same" / "metrics.json").read_text())
    assert record["settings"]["method"] == "eap-ig-inputs" and record["settings"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no lock or temporary left


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_that_cannot_be_created_exits_2_before_any_work(capsys, monkeypatch):
    """--out /proc/foo passed every check (os.access says yes) and failed with a raw
    FileNotFoundError, exit 1, after the whole run."""
    _no_model_work(monkeypatch)
    assert main(["discover", *FAST, "--out", "/proc/circuits-test-run"]) == 2
    err = _error(capsys)
    assert "cannot write the run folder /proc/circuits-test-run: creating a folder in /proc" in err
    assert "choose a writable --out" in err


# ------------------------------------------------------------------------ checksums


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _flip_tensor_bytes(path: Path) -> None:
    """Invert ten bytes inside the scores tensor, keeping the header valid."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[:8], "little")
    begin, end = json.loads(data[8 : 8 + size])["scores"]["data_offsets"]
    for i in range(8 + size + begin + 40, 8 + size + begin + 50):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_record_holds_the_checksum_of_every_graph_file_and_tensor(small_run_dir):
    from safetensors import safe_open

    integrity = json.loads((small_run_dir / "metrics.json").read_text())["integrity"]
    assert integrity["algorithm"] == "sha256"
    names = ["graph.graphml", "graph.json", "scores.safetensors"]
    assert sorted(integrity["files"]) == names
    for name in names:
        assert integrity["files"][name] == _sha256(small_run_dir / name), name
    with safe_open(str(small_run_dir / "scores.safetensors"), framework="pt") as handle:
        tensors = {
            k: hashlib.sha256(handle.get_tensor(k).numpy().tobytes()).hexdigest()
            for k in handle.keys()
        }
    assert integrity["tensors"]["scores.safetensors"] == tensors


def test_a_damaged_tensor_is_refused_by_every_reader(small_run_dir, tmp_path, capsys):
    """Flipped bytes inside the tensor data read back as a valid graph with wrong scores."""
    from circuits.app.explorer import write_explorer
    from circuits.app.integrity import RunIntegrityError
    from circuits.app.serve import LiveEvaluator

    run = _copy_run(small_run_dir, tmp_path)
    scores = run / "scores.safetensors"
    _flip_tensor_bytes(scores)
    damaged = load_graph(scores)  # the format itself cannot tell
    assert not damaged.scores.equal(load_graph(small_run_dir / "scores.safetensors").scores)
    commands = {
        "evaluate": ["evaluate", str(scores), "--quiet"],
        "export": ["export", str(scores), "--format", "json", "--out", str(tmp_path / "x.json")],
        "export mib": ["export", str(run), "--format", "mib"],
        "compare": ["compare", str(small_run_dir), str(run), "--out", str(tmp_path / "c.html")],
        "report": ["report", str(run)],
    }
    for what, argv in commands.items():
        assert main(argv) == 2, what
        err = _error(capsys)
        assert f"{scores} is not the file the run wrote" in err, what
        assert "(tensor 'scores' differs)" in err and "re-run `circuits discover`" in err, what
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "c.html").exists()
    with pytest.raises(RunIntegrityError, match="tensor 'scores' differs"):
        LiveEvaluator(run)
    with pytest.raises(RunIntegrityError):
        write_explorer(run)


def test_an_edited_graph_json_is_refused(small_run_dir, tmp_path, capsys):
    run = _copy_run(small_run_dir, tmp_path)
    text = (run / "graph.json").read_text()
    (run / "graph.json").write_text(text.replace('"in_graph": false', '"in_graph": true', 1))
    assert main(["export", str(run / "graph.json"), "--format", "dot"]) == 2
    assert f"{run / 'graph.json'} is not the file the run wrote" in _error(capsys)


def test_an_old_run_folder_without_checksums_is_read_with_a_warning(small_run_dir, tmp_path):
    from circuits.app.explorer import load_run_graph

    run = _copy_run(small_run_dir, tmp_path)
    record = json.loads((run / "metrics.json").read_text())
    del record["integrity"]
    (run / "metrics.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="records no checksums .* cannot be checked for damage"):
        graph = load_run_graph(run)
    assert graph.scores.equal(load_graph(run / "scores.safetensors").scores)


def test_a_graph_file_outside_a_run_folder_is_read_unchecked(small_run_dir, tmp_path):
    import warnings

    from circuits.app.integrity import load_checked_graph

    alone = tmp_path / "scores.safetensors"
    shutil.copy(small_run_dir / "scores.safetensors", alone)
    _flip_tensor_bytes(alone)  # nothing to check it against
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checked_graph(alone).n_edges > 0


# ------------------------------------------------------------------------ --data runs


def _write_prompts(path: Path, n: int = 8) -> Path:
    from circuits.tasks import get_task

    rows = [
        {"clean": e.clean, "corrupted": e.corrupted, "answers": list(e.answers),
         "distractors": list(e.distractors), "split": split}
        for split in ("train", "test")
        for e in get_task("ioi").examples(n, seed=0, split=split)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    """A --data run made in its own folder with a relative prompt file path."""
    made = tmp_path_factory.mktemp("made_here")
    _write_prompts(made / "prompts.jsonl")
    cwd = os.getcwd()
    os.chdir(made)
    try:
        assert main(["discover", "--data", "prompts.jsonl", "--method", "eap", *FAST]) == 0
    finally:
        os.chdir(cwd)
    return made


def _changed_copy(data_run: Path, tmp_path: Path) -> Path:
    """The run's prompts, still valid, in other bytes (compact JSON)."""
    rows = [json.loads(line) for line in (data_run / "prompts.jsonl").read_text().splitlines()]
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    return changed


def _evaluate(run: Path, *args: str) -> int:
    graph = run / "circuit_run" / "scores.safetensors"
    return main(["evaluate", str(graph), "--n-examples", "8", "--bootstrap", "10", *args])


@pytest.mark.slow
def test_a_data_run_is_evaluated_from_another_folder(data_run, tmp_path, capsys, monkeypatch):
    prompts = data_run / "prompts.jsonl"
    task = json.loads((data_run / "circuit_run" / "metrics.json").read_text())["task"]
    assert task["data_file"] == str(prompts.resolve())
    assert task["data_sha256"] == _sha256(prompts)
    monkeypatch.chdir(tmp_path)
    assert _evaluate(data_run, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "prompts" and result["n_examples"] == 8
    moved = shutil.copy(prompts, tmp_path / "moved.jsonl")  # the same bytes elsewhere
    assert _evaluate(data_run, "--data", str(moved)) == 0


@pytest.mark.slow
def test_a_changed_prompt_file_is_refused_unless_allowed(data_run, tmp_path, capsys):
    prompts = data_run / "prompts.jsonl"
    changed = _changed_copy(data_run, tmp_path)
    assert _evaluate(data_run, "--data", str(changed)) == 2
    err = _error(capsys)
    assert f"the prompt file {changed} has changed since the run" in err
    assert f"its SHA-256 is {_sha256(changed)}, the run recorded {_sha256(prompts)}" in err
    assert "--allow-changed-data" in err
    assert _evaluate(data_run, "--data", str(changed), "--allow-changed-data") == 0
    original = prompts.read_bytes()
    try:  # the recorded file itself changed
        prompts.write_bytes(changed.read_bytes())
        assert _evaluate(data_run) == 2
        assert f"the prompt file {prompts.resolve()} has changed since the run" in _error(capsys)
    finally:
        prompts.write_bytes(original)


@pytest.mark.slow
def test_recorded_settings_read_the_graph_metadata_else_the_run_record(data_run, tmp_path):
    """evaluate's defaults and the prompt file's checksum come from one lookup: each setting
    as the graph file's metadata records it, else as the run record beside it does."""
    from circuits.app.integrity import recorded_settings

    run = data_run / "circuit_run"
    record = json.loads((run / "metrics.json").read_text())
    from_record = recorded_settings({}, run)
    assert from_record == {
        "model": record["model"]["name"], "task": "prompts",
        "metric": record["settings"]["metric"], "ablation": record["settings"]["ablation"],
        "seed": record["task"]["seed"], "data": str((data_run / "prompts.jsonl").resolve()),
        "counterfactual": record["task"]["counterfactual"],
        "data_sha256": _sha256(data_run / "prompts.jsonl"),
    }  # fmt: skip
    given = {"task": "ioi", "seed": 7, "data_sha256": "ab" * 32}  # the metadata's come first
    assert recorded_settings(given, run) == {**from_record, **given}
    # an empty checksum is none recorded; a folder without a run record of ours has nothing
    assert recorded_settings({"data_sha256": ""}, run) == from_record
    (tmp_path / "metrics.json").write_text('{"accuracy": 1}')
    assert recorded_settings({"seed": 3}, tmp_path) == {**dict.fromkeys(from_record), "seed": 3}


@pytest.mark.slow
def test_serve_and_report_take_the_prompt_file(data_run, tmp_path, capsys):
    from circuits.app.integrity import PromptFileChangedError
    from circuits.app.serve import LiveEvaluator

    run = data_run / "circuit_run"
    moved = shutil.copy(data_run / "prompts.jsonl", tmp_path / "moved.jsonl")
    changed = _changed_copy(data_run, tmp_path)
    live = LiveEvaluator(run, data=moved, bootstrap=10)
    assert live.settings.data == str(moved) and len(live.data) == 8
    with pytest.raises(PromptFileChangedError, match="has changed since the run"):
        LiveEvaluator(run, data=changed)
    assert LiveEvaluator(run, data=changed, allow_changed_data=True).settings.data == str(changed)
    assert main(["serve", str(run), "--port", "0", "--data", str(changed)]) == 2
    assert f"the prompt file {changed} has changed since the run" in _error(capsys)
    assert main(["report", str(run), "--data", str(moved)]) == 0
    assert f"{moved}: the run's prompt file (SHA-256 {_sha256(moved)})" in capsys.readouterr().out
    assert main(["report", str(run), "--data", str(changed)]) == 2
    assert "has changed since the run" in _error(capsys)


@pytest.mark.slow
def test_report_checks_the_prompt_file_reading_it_once(data_run, tmp_path, monkeypatch):
    import circuits.app.integrity as integrity

    run = data_run / "circuit_run"
    moved = shutil.copy(data_run / "prompts.jsonl", tmp_path / "moved.jsonl")
    changed = _changed_copy(data_run, tmp_path)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(p) or real(p))
    line = integrity.check_run_prompt_file(run, moved)
    assert line == f"{moved}: the run's prompt file (SHA-256 {_sha256(moved)})"
    assert hashed == [moved]
    line = integrity.check_run_prompt_file(run, changed, allow_changed=True)
    assert line == f"warning: {changed} differs from the run's prompt file (--allow-changed-data)"
    assert hashed == [moved, changed]


@pytest.mark.parametrize("command", ["evaluate", "serve", "report"])
def test_help_names_the_data_options(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--data FILE" in out and "--allow-changed-data" in out
