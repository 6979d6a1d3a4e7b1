"""Verdicts and warnings of a run (circuits.app.checks), in metrics.json, the report and the
command line's summary; a discover run with an unreachable target says so."""

from __future__ import annotations

import copy
import csv
import io
import warnings

import pytest
from test_report import METRICS, both

from circuits.app.checks import IG_GAP_THRESHOLD, run_warnings, summary_text, verdict_text
from circuits.app.report import edges_csv, write_report


def greater_than_like() -> dict:
    """Search reached f ≥ 0.9 on train, held-out f = 0.8875 [0.856, 0.912] (issue #22)."""
    m = copy.deepcopy(METRICS)
    m["settings"]["target"] = m["search"]["target"] = [0.9, None]
    m["circuit"].update(reached_target=True, f_search=0.93)
    m["faithfulness"].update(f=0.8875, ci=[0.856, 0.912])
    m.pop("warnings", None)
    return m


def codes(metrics) -> set[str]:
    return {w["code"] for w in run_warnings(metrics)}


def test_verdict_states_both_splits_labelled():
    text = verdict_text(greater_than_like())
    assert "search (train): reached, f = 0.93" in text
    assert "held-out (test): f = 0.8875 [0.856, 0.912], below target" in text
    assert "held-out-misses-target" in codes(greater_than_like())
    good = copy.deepcopy(METRICS)
    assert "meets the target" in verdict_text(good)
    assert "held-out-misses-target" not in codes(good)


def test_report_headline_and_summary_line_say_below_target():
    m = greater_than_like()
    m["warnings"] = run_warnings(m)
    for text in both(m):
        assert "held-out (test): f = 0.8875" in text and "below target" in text
        assert "search (train): reached" in text
    line = summary_text(m)
    assert "held-out (test): f = 0.8875" in line and "warning: the search reached" in line


def test_each_untrustworthy_result_gets_a_warning_with_a_fix():
    m = greater_than_like()
    assert "ci-wider-than-margin" in codes(m)  # width 0.056 > |0.8875 − 0.9|
    m["attribution"]["ig_gap"] = 0.36  # greater-than with 5 steps
    assert "ig-not-converged" in codes(m)
    m["attribution"]["ig_gap"] = IG_GAP_THRESHOLD / 2
    assert "ig-not-converged" not in codes(m)
    m["faithfulness"].update(n_examples=1, ci=[1.099, 1.099])
    assert "too-few-examples" in codes(m)
    m["faithfulness"].update(m_full=-0.03, m_empty=0.01, m_diff_se=0.5)  # random weights
    assert "model-does-not-do-task" in codes(m)
    m["faithfulness"].update(m_full=3.0, m_empty=0.0, m_diff_se=2.0)  # within noise
    assert "model-does-not-do-task" in codes(m)
    m["faithfulness"].update(m_diff_se=0.1)
    assert "model-does-not-do-task" not in codes(m)
    for w in run_warnings(greater_than_like()):
        assert w["message"] and w["fix"]


def test_unreachable_target_is_warned_and_said():
    m = copy.deepcopy(METRICS)
    m["settings"]["target"] = m["search"]["target"] = [1.5, None]
    m["circuit"]["reached_target"] = False
    found = codes(m)
    assert {"target-excludes-full-model", "target-not-reached"} <= found
    assert "target not reached" in verdict_text(m)
    assert not codes(METRICS) - {"ci-wider-than-margin"}  # a healthy run


def test_report_has_warnings_box_contents_circuit_first_and_every_edge():
    m = greater_than_like()
    m["warnings"] = run_warnings(m)
    m["circuit_edges"] = [{"edge": f"a0.h{i}->m1", "score": -1.0 / (i + 1)} for i in range(40)]
    m["examples"] = [{"clean": "When Mary and John", "corrupted": "When Amy and Bob",
                      "answer": " Mary", "distractor": " John"}]  # fmt: skip
    m["behaviour"] = {"accuracy_clean": 0.97, "accuracy_corrupted": 0.05, "metric_clean": 3.1,
                      "metric_corrupted": 0.2, "quantiles": [0.0, 0.5, 1.0],
                      "m_circuit_quantiles": [0.5, 2.5, 4.25]}  # fmt: skip
    md, page = both(m)
    for text in (md, page):
        assert text.index("Warning") < text.index("Contents") < text.index("Model")
        assert text.index("Figure 1") < text.index("<table" if text is page else "| Field")
        assert "a0.h39-&gt;m1" in text or "a0.h39->m1" in text  # the 40th edge: all are listed
        assert "When Amy and Bob" in text and "97%" in text and "4.25" in text
        assert "Fix:" in text
    assert '<p class="warning">' in page and '<nav class="contents">' in page
    rows = list(csv.DictReader(io.StringIO(edges_csv(m))))
    assert len(rows) == 40 and rows[0]["edge"] == "a0.h0->m1" and rows[0]["port"] == "m1"
    assert float(rows[3]["score"]) == -0.25


def test_ig_gap_is_labelled_relative_and_explained_for_non_integrating_methods():
    md, _ = both(METRICS)
    assert "gap (relative)" in md and "relative error" in md
    m = copy.deepcopy(METRICS)
    m["attribution"]["ig_gap"] = None
    md, _ = both(m)
    assert "does not integrate" in md


def test_discover_with_target_above_one_warns_before_and_reports_the_miss(tmp_path, capsys):
    from circuits.app.cli import main

    args = ["--task", "ioi", "--n-examples", "8", "--n-eval", "8", "--quiet", "--target", "1.5"]
    with pytest.warns(UserWarning, match="excludes f = 1"):
        assert main(["discover", *args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "target not reached" in out and "warning:" in out
    report = (tmp_path / "run" / "report.md").read_text()
    assert "target not reached" in report and "Warnings" in report
    import json

    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"target-not-reached", "target-excludes-full-model"} <= {
        w["code"] for w in record["warnings"]
    }
    assert record["verdict"]["search_reached"] is False
    rows = list(csv.reader((tmp_path / "run" / "circuit_edges.csv").open()))
    assert len(rows) - 1 == record["circuit"]["n_edges"] == len(record["circuit_edges"])
    assert record["task"]["n_evaluation_distinct_clean"] == 8
    assert len(record["examples"]) == 3 and record["examples"][0]["clean"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(tmp_path / "run")  # rebuilding from the folder alone works
