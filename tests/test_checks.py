"""Verdicts and warnings of a run (circuits.app.checks), in metrics.json, the report and the
command line's summary; a discover run with an unreachable target says so."""

from __future__ import annotations

import copy
import csv
import io
import math
import warnings

import pytest
from test_report import METRICS, both

from circuits.app.checks import (
    IG_GAP_THRESHOLD,
    MIN_CI_EXAMPLES,
    run_warnings,
    summary_text,
    t_upper_tail,
    verdict_text,
)
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
    m["faithfulness"].update(m_full=3.0, m_empty=0.0, m_diff_se=2.0, n_examples=2)
    assert "task-signal-not-shown" in codes(m)  # within noise on 2 examples: not shown
    assert "model-does-not-do-task" not in codes(m)  # ...which is no evidence against the model
    m["faithfulness"].update(m_diff_se=0.1)
    assert not codes(m) & {"model-does-not-do-task", "task-signal-not-shown"}
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


def warning(metrics, code) -> dict:
    (found,) = [w for w in run_warnings(metrics) if w["code"] == code]
    return found


def few_rows(n: int, diffs: list[float]) -> dict:
    """A run on ``n`` held-out rows of a 10-row prompt file whose test split has ``n`` rows,
    with per-example m(M) − m(∅) ``diffs`` (m(∅) = 0)."""
    m = copy.deepcopy(METRICS)
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    m["faithfulness"].update(
        n_examples=n, m_full=mean, m_empty=0.0, m_diff_se=sd / math.sqrt(n), ci=None
    )
    m["task"].update(data_file="ten.jsonl", n_rows=10, n_train_rows=10 - n, n_test_rows=n)
    return m


@pytest.mark.parametrize(
    ("t", "df", "p"),  # one-sided critical values from a printed table of Student's t
    [(12.706, 1, 0.025), (4.303, 2, 0.025), (2.015, 5, 0.05), (3.365, 5, 0.01),
     (2.086, 20, 0.025), (0.0, 7, 0.5), (-2.015, 5, 0.95)],
)  # fmt: skip
def test_t_upper_tail_matches_the_table(t, df, p):
    assert t_upper_tail(t, df) == pytest.approx(p, abs=2e-4)


def test_two_rows_that_favour_the_answer_are_not_called_a_model_failure():
    m = few_rows(2, [1.0, 5.0])  # both rows right (clean accuracy 100 %), mean 3 ± 2
    assert "model-does-not-do-task" not in codes(m)
    w = warning(m, "task-signal-not-shown")
    p = 0.5 - math.atan(1.5) / math.pi  # t = 1.5 with 1 degree of freedom, by hand
    assert "t-test" in w["message"] and "1 degree of freedom" in w["message"]
    assert f"p = {p:.2g}" in w["message"] and "2 evaluation examples" in w["message"]
    # the fix is what the file can give: its 2 test rows are all used, not "--n-eval 100"
    assert "--n-eval 100" not in w["fix"] and "every test row is used" in w["fix"]
    assert "ten.jsonl" in w["fix"] and "2 of its 10 rows" in w["fix"]
    assert "every test row is used" in warning(m, "too-few-examples")["fix"]
    # enough rows with the same spread show the effect: no warning at all
    many = few_rows(40, [1.0, 5.0] * 20)
    assert not codes(many) & {"model-does-not-do-task", "task-signal-not-shown"}


def test_the_signal_fix_is_sized_by_signal_alpha(monkeypatch):
    import circuits.app.checks as checks

    m = few_rows(2, [1.0, 5.0])  # mean 3 ± 2: n' = ⌈2·(z·2/3)²⌉ + 1
    for key in ("data_file", "n_rows", "n_train_rows", "n_test_rows"):
        del m["task"][key]
    assert "(--n-eval 4)" in warning(m, "task-signal-not-shown")["fix"]  # z(0.05) = 1.645
    monkeypatch.setattr(checks, "SIGNAL_ALPHA", 0.01)
    w = warning(m, "task-signal-not-shown")
    assert "(--n-eval 6)" in w["fix"] and "not below 0.01" in w["message"]  # z(0.01) = 2.326


def test_wrong_sign_is_still_a_model_failure_whatever_the_rows():
    m = few_rows(2, [-1.0, -3.0])
    assert "model-does-not-do-task" in codes(m) and "task-signal-not-shown" not in codes(m)


def test_more_rows_fixes_suggest_what_the_file_or_task_can_give():
    m = few_rows(2, [1.0, 5.0])
    m["task"].update(n_rows=60, n_test_rows=12)  # 12 test rows, 2 used
    assert "--n-eval 12;" in warning(m, "too-few-examples")["fix"]
    assert f"to reach {MIN_CI_EXAMPLES}" in warning(m, "too-few-examples")["fix"]
    m["task"].update(n_rows=300, n_test_rows=60)
    assert f"--n-eval {MIN_CI_EXAMPLES};" in warning(m, "too-few-examples")["fix"]
    for key in ("data_file", "n_rows", "n_train_rows", "n_test_rows"):
        del m["task"][key]  # a bundled task draws as many as asked
    assert warning(m, "too-few-examples")["fix"].endswith(f"(--n-eval {MIN_CI_EXAMPLES})")
    # a too-wide interval: about n·(width/distance)² examples narrow it to the margin
    wide = greater_than_like()
    n, width, distance = 80, 0.912 - 0.856, 0.9 - 0.8875
    expected = math.ceil(n * (width / distance) ** 2) + 1
    assert f"--n-eval {expected})" in warning(wide, "ci-wider-than-margin")["fix"]
