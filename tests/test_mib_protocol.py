"""MIB's protocol end to end on a bundled model, offline: the submission folder reads back with
MIB's format, CPR comes from the signed ranking's curve and CMD from the |score| one (as MIB's
print_results.py takes them), and bad input fails before any model loads."""

from __future__ import annotations

import json

import pytest

import circuits.app.discovery as discovery
from circuits.app.mib_export import MIBExportError, mib_cpr_cmd
from circuits.app.mib_protocol import run_mib
from circuits.tasks.mib_rows import BUNDLED, MIBRowError
from tests.test_mib_export import load_mib_json


def _rows(path, n=8, edit=None):
    rows = [json.loads(x) for x in BUNDLED["ioi"].read_text().splitlines()[:n]]
    if edit:
        edit(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_run_mib_writes_a_submission_and_a_table(tmp_path):
    rows = _rows(tmp_path / "ioi.jsonl")
    result = run_mib("ioi", "toy-gpt2", tmp_path / "sub", rows=rows, method="eap")
    folder = tmp_path / "sub" / "ioi_toy-gpt2"
    assert (
        [p.name for p in folder.iterdir()] == ["importances.json"] == [p.name for p in result.files]
    )
    assert (result.n_attribution, result.n_evaluation) == (6, 2)
    loaded = load_mib_json(folder / "importances.json")
    assert loaded.scores.abs().sum() > 0
    for curve in (result.signed, result.absolute):
        assert curve["n_edges"] == [0, 0, 2, 4, 9, 23, 47, 95, 239, 479]
        assert curve["f"][-1] == pytest.approx(1.0) and curve["f"][0] == pytest.approx(0.0)
    assert result.cpr == pytest.approx(mib_cpr_cmd(result.signed["f"])["cpr"])
    assert result.cmd == pytest.approx(mib_cpr_cmd(result.absolute["f"])["cmd"])
    table = result.table_file.read_text()
    assert f"| eap (patching) | {result.cpr:.4f} | {result.cmd:.4f} |" in table
    # a second run refuses the non-empty folder unless told
    with pytest.raises(MIBExportError, match="exists and is not empty"):
        run_mib("ioi", "toy-gpt2", tmp_path / "sub", rows=rows, method="eap")


def test_bad_input_fails_before_the_model_loads(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(discovery, "load_for_task", no_model)
    with pytest.raises(
        MIBExportError, match="MIB defines no mcqa_gpt2: its tasks for gpt2 are ioi"
    ):
        run_mib("mcqa", "gpt2", tmp_path)

    def drop_subject(rows):
        del rows[1]["metadata"]["subject"]

    bad = _rows(tmp_path / "bad.jsonl", edit=drop_subject)
    with pytest.raises(MIBRowError, match=rf"{bad}:2: no field 'metadata.subject'"):
        run_mib("ioi", "toy-gpt2", tmp_path, rows=bad)
    good = _rows(tmp_path / "good.jsonl")
    with pytest.raises(MIBRowError, match=rf"{good}:1: no counterfactual 'nope'"):
        run_mib("ioi", "toy-gpt2", tmp_path, rows=good, counterfactual="nope")
    with pytest.raises(MIBExportError, match="no rows bundled for MIB task 'arc-easy'"):
        run_mib("arc_easy", "toy-gpt2", tmp_path)


def test_mib_command_prints_and_writes_the_table(tmp_path, capsys):
    from circuits.app.cli import main

    rows = _rows(tmp_path / "ioi.jsonl")
    out = tmp_path / "sub"
    argv = ["mib", "--task", "ioi", "--model", "toy-gpt2", "--rows", str(rows), "--method",
            "eap", "--contents", "circuits", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = (out / "ioi_toy-gpt2.md").read_text()
    assert printed.startswith(table) and "| eap (patching) |" in table
    assert len(list((out / "ioi_toy-gpt2").iterdir())) == 10


def test_mib_command_refuses_bad_rows_with_their_line_before_the_model(
    tmp_path, capsys, monkeypatch
):
    from circuits.app.cli import main

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(discovery, "load_for_task", no_model)

    def drop_subject(rows):
        del rows[2]["metadata"]["subject"]

    bad = _rows(tmp_path / "bad.jsonl", edit=drop_subject)
    argv = ["mib", "--task", "ioi", "--model", "toy-gpt2", "--rows", str(bad), "--out",
            str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 2
    assert f"{bad}:3: no field 'metadata.subject'" in capsys.readouterr().err
    assert main(["mib", "--task", "mcqa", "--model", "gpt2", "--out", str(tmp_path / "o")]) == 2
    assert "MIB defines no mcqa_gpt2" in capsys.readouterr().err
