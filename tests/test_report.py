"""Reports rendered from a run folder: report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import struct
import zlib
from html.parser import HTMLParser

import pytest

from circuits.app import report
from circuits.app.report import ReportError, render_html, render_markdown, write_report

EDGE = "a0.h1->a2.h3<q>"

METRICS = {
    "format": "circuit-discovery-run",
    "schema_version": 1,
    "package_version": "0.1.0",
    "created": "2026-11-21T22:30:00+00:00",
    "command": "circuits discover --task ioi --model toy-gpt2 --out runs/x",
    "model": {
        "name": "toy-gpt2",
        "source": "zoo",
        "architecture": "GPT2LMHeadModel",
        "n_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 4,
        "d_model": 128,
        "n_parameters": 854016,
        "dtype": "float32",
        "device": "cpu",
        "processing": {
            "fold_ln": False,
            "center_writing_weights": False,
            "center_unembed": False,
            "fold_value_biases": False,
        },
    },
    "task": {
        "name": "ioi",
        "description": "indirect object identification: <IO> vs <S>",
        "metric": "logit_diff",
        "n_attribution": 120,
        "n_evaluation": 80,
        "attribution_split": "train",
        "evaluation_split": "test",
        "n_positions": 19,
        "seed": 0,
    },
    "settings": {
        "method": "eap-ig-inputs",
        "steps": 5,
        "quadrature_rule": "riemann_left",
        "ablation": "patching",
        "target": [0.9, None],
        "absolute": True,
        "batch_size": 16,
        "fractions": [0.001, 0.01, 0.1, 1.0],
        "bootstrap": 1000,
        "seed": 0,
    },
    "graph": {"n_nodes": 21, "n_edges": 1234},
    "circuit": {"n_edges": 57, "n_nodes": 15, "edge_fraction": 57 / 1234, "reached_target": True},
    "faithfulness": {
        "f": 0.9312,
        "ci": [0.8817, 0.9743],
        "ci_level": 0.95,
        "m_full": 3.1416,
        "m_circuit": 2.9251,
        "m_empty": 0.0213,
        "random_f": 0.0517,
        "n_examples": 80,
    },
    "curve": {
        "fractions": [0.001, 0.01, 0.1, 1.0],
        "n_edges": [1, 12, 123, 1234],
        "f": [0.1, 0.42, 0.88, 1.0],
        "random_f": [0.0, 0.01, 0.12, 1.0],
        "cpr": 0.8123,
        "cmd": 0.2234,
        "log_x": True,
    },
    "search": {
        "target": [0.9, 1.1],
        "n_evaluations": 3,
        "evaluations": [
            {"phase": "exponential", "n_edges": 32, "f": 0.4, "meets_target": False},
            {"phase": "exponential", "n_edges": 64, "f": 0.95, "meets_target": True},
            {"phase": "binary", "n_edges": 57, "f": 0.9312, "meets_target": True},
        ],
    },
    "attribution": {
        "ig_gap": 0.003142,
        "metric_clean": 3.1416,
        "metric_ablated": 0.0213,
        "input_edge_sum": -3.117,
    },
    "timings": {
        "load_model_s": 0.5,
        "attribution_s": 3.2,
        "search_s": 4.0,
        "evaluate_s": 2.0,
        "curve_s": 5.0,
        "figures_s": 1.0,
        "total_s": 16.0,
    },
    "top_edges": [
        {"edge": EDGE, "score": 0.5123, "in_circuit": True},
        {"edge": "m1->logits", "score": -0.2468, "in_circuit": False},
    ],
    "figures": {
        "circuit": "circuit.png",
        "faithfulness_curve": "faithfulness_curve.png",
        "score_histogram": "score_histogram.png",
    },
}

FIGURE_KEYS = ("circuit", "faithfulness_curve", "score_histogram")


def png_bytes(width: int = 2, height: int = 1, seed: int = 0) -> bytes:
    """A small valid PNG (8-bit grey), distinct per seed, without needing matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\x00" + bytes((seed + x + y) % 256 for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_run(tmp_path, metrics=None, figures=FIGURE_KEYS):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(METRICS if metrics is None else metrics))
    images = {}
    for i, key in enumerate(figures):
        images[key] = png_bytes(seed=i)
        (run / f"{key}.png").write_bytes(images[key])
    return run, images


def both(metrics):
    """The markdown and the HTML report of ``metrics``, with all figures present."""
    md = render_markdown(metrics, {k: f"{k}.png" for k in FIGURE_KEYS})
    page = render_html(metrics, {k: png_bytes() for k in FIGURE_KEYS})
    return md, page


# ---------------------------------------------------------------------------------------------
# Content


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_reports_state_the_key_numbers(fmt):
    md, page = both(METRICS)
    text = md if fmt == "md" else page
    for expected in [
        "toy-gpt2",  # model name, also in the title
        "ioi",
        "0.9312",  # f
        "0.8817",  # CI bounds
        "0.9743",
        "95%",  # CI level
        "57 edges",  # circuit edges
        "4.619%",  # 57 / 1234 as a percentage, 4 significant digits
        "1,234",  # graph edges
        "15 of 21 nodes",
        "0.8123",  # CPR
        "0.2234",  # CMD
        "0.0517",  # random-circuit f
        "3.142",  # m(M) to 4 significant digits
        "2.925",  # m(C)
        "0.0213",  # m(∅)
        "0.003142",  # IG gap
        "integrated-gradients convergence gap",
        "854,016",  # parameters
        "GPT2LMHeadModel",
        "reached",
        "0.9 ≤ f ≤ 1.1",  # search target
        "held-out",
        "16 s",  # total time
        "0.1.0",  # package version in the footer
        "2026-11-21T22:30:00+00:00",
        "circuits discover --task ioi --model toy-gpt2 --out runs/x",
    ]:
        assert expected in text, f"{expected!r} missing from the {fmt} report"
    assert "3.1416" not in text  # more than 4 significant digits


def test_summary_says_when_the_target_was_missed():
    metrics = copy.deepcopy(METRICS)
    metrics["circuit"]["reached_target"] = False
    for text in both(metrics):
        assert "did not reach" in text
    for text in both(METRICS):
        assert "did not reach" not in text


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_every_setting_and_model_field_is_listed(fmt):
    metrics = copy.deepcopy(METRICS)
    metrics["settings"]["brand_new_option"] = "xyzzy-42"  # unknown keys must show up too
    md, page = both(metrics)
    text = md if fmt == "md" else page
    for key in metrics["settings"]:
        assert f"<code>{key}</code>" in text if fmt == "html" else f"`{key}`" in text, key
    assert "xyzzy-42" in text
    for key, value in metrics["model"].items():
        if key == "processing":
            for sub in value:
                assert f"processing.{sub}" in text
        else:
            assert key in text
    for key in metrics["task"]:
        assert key in text
    assert "0.001, 0.01, 0.1, 1" in text  # a list setting, inline


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_tables_of_search_edges_and_timings(fmt):
    md, page = both(METRICS)
    text = md if fmt == "md" else page
    assert "binary" in text and "exponential" in text
    assert "+0.5123" in text  # signed scores
    assert "-0.2468" in text
    assert "load model" in text and "31.25%" in text  # curve_s share of the total
    if fmt == "md":
        assert "| 1 | `a0.h1->a2.h3<q>` | +0.5123 | yes |" in md
        assert "| 2 | `m1->logits` | -0.2468 | no |" in md
        assert "| 3 | binary | 57 | 0.9312 | yes |" in md


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_definitions_are_explained(fmt):
    md, page = both(METRICS)
    text = md if fmt == "md" else page
    for phrase in [
        "(m(C) − m(∅)) / (m(M) − m(∅))",
        "patched to its ablated value",
        "bootstrap over examples",
        "higher is better",
        "lower is better",
    ]:
        assert phrase in text, phrase


def test_number_formatting():
    num, pct = report.fmt_num, report.fmt_pct
    assert num(None) == "—"
    assert num(True) == "yes" and num(False) == "no"
    assert num(1234567) == "1,234,567"
    assert num(0.123456) == "0.1235"
    assert num(12345.6) == "12,350"
    assert num(1.5e-6) == "1.5e-6"
    assert num(0.0) == "0"
    assert num(0.25, signed=True) == "+0.25"
    assert num(-0.25, signed=True) == "-0.25"
    assert num(float("inf")) == "∞"
    assert pct(0.046) == "4.6%"
    assert pct(0.001) == "0.1%"
    assert pct(None) == "—"


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_nulls_render_as_dashes_not_none(fmt):
    metrics = copy.deepcopy(METRICS)
    metrics["attribution"]["ig_gap"] = None
    metrics["faithfulness"]["random_f"] = None
    metrics["faithfulness"]["ci"] = None
    metrics["curve"]["cpr"] = None
    metrics["curve"]["random_f"] = [None, None, None, None]
    metrics["circuit"]["reached_target"] = None
    metrics["settings"]["steps"] = None
    metrics["top_edges"].append({"edge": "m2->logits", "score": None, "in_circuit": None})
    md, page = both(metrics)
    text = md if fmt == "md" else page
    assert "None" not in text and "null" not in text and "nan" not in text
    assert "—" in text
    # the IG gap is shown only when there is one (the attribution check still lists it as a dash)
    assert "0.003142" not in text
    assert "A random circuit of the same size" not in text  # no sentence about a missing value
    assert "reached" not in text


def test_minimal_metrics_render():
    metrics = {"format": "circuit-discovery-run", "schema_version": 1}
    md = render_markdown(metrics, {})
    page = render_html(metrics, {})
    for text in (md, page):
        assert "Circuit report" in text
        assert text.count("figure not available") == 3
        assert "None" not in text


# ---------------------------------------------------------------------------------------------
# HTML


class _StructureChecker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parse(page: str) -> _StructureChecker:
    checker = _StructureChecker()
    checker.feed(page)
    checker.close()
    return checker


def test_html_is_well_formed():
    _, page = both(METRICS)
    checker = parse(page)
    assert checker.errors == []
    assert checker.stack == []
    names = [tag for tag, _ in checker.tags]
    for tag in ["html", "head", "title", "style", "body", "main", "table", "figure", "footer"]:
        assert tag in names
    assert names.count("img") == 3
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page


def test_html_escapes_text():
    _, page = both(METRICS)
    assert "a0.h1-&gt;a2.h3&lt;q&gt;" in page
    assert "<q>" not in page
    assert "&lt;IO&gt; vs &lt;S&gt;" in page  # free text too
    assert "<IO>" not in page
    assert not any(tag == "q" for tag, _ in parse(page).tags)


def test_markdown_shows_edge_names_literally():
    md, _ = both(METRICS)
    assert f"`{EDGE}`" in md  # code span: <q> is displayed, not taken for HTML
    assert "\\<IO> vs \\<S>" in md  # free text escapes '<'


def test_write_report_inlines_images(tmp_path):
    run, images = make_run(tmp_path)
    md_path, html_path = write_report(run)
    assert (md_path, html_path) == (run / "report.md", run / "report.html")
    page = html_path.read_text(encoding="utf-8")
    for key in FIGURE_KEYS:
        encoded = base64.b64encode(images[key]).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    anchors = [s for s in sources if s.startswith("#")]  # the table of contents, in-page only
    assert anchors and all(f'id="{a[1:]}"' in page for a in anchors)
    sources = [s for s in sources if not s.startswith("#")]
    # the figures inlined, and one link to the explorer page beside the report
    assert [s for s in sources if not s.startswith("data:image/png;base64,")] == ["explorer.html"]
    assert len(sources) == 4
    assert "<script" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page
    assert "figure not available" not in page

    md = md_path.read_text(encoding="utf-8")
    for key in FIGURE_KEYS:
        assert f"![{key}]({key}.png)" in md
    assert "base64" not in md
    assert "figure not available" not in md


def test_missing_or_broken_figure_gives_a_note(tmp_path):
    run, images = make_run(tmp_path, figures=("circuit", "score_histogram"))
    (run / "score_histogram.png").write_bytes(b"not a png at all")
    md_path, html_path = write_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    for text in (md, page):
        assert text.count("figure not available") == 2
        assert "faithfulness_curve.png" in text
    assert "![circuit](circuit.png)" in md
    assert "![faithfulness_curve]" not in md and "![score_histogram]" not in md
    assert base64.b64encode(images["circuit"]).decode() in page
    assert page.count("data:image/png;base64,") == 1
    assert "is not a PNG image" in page  # the HTML tells a broken file from a missing one
    assert parse(page).errors == []


def test_extra_png_figures_listed_in_metrics_are_included(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["figures"]["attention"] = "attention.png"
    metrics["figures"]["circuit_vector"] = "circuit.svg"  # not a PNG: not a figure of the report
    run, _ = make_run(tmp_path, metrics=metrics)
    (run / "attention.png").write_bytes(png_bytes(seed=5))
    (run / "circuit.svg").write_text("<svg/>")
    md_path, html_path = write_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    assert "![attention](attention.png)" in md
    assert "Figure 4" in md and "Figure 5" not in md
    assert base64.b64encode(png_bytes(seed=5)).decode() in page
    assert "circuit.svg" not in md and "circuit.svg" not in page
    assert "figure not available" not in md + page


def test_figure_names_cannot_leave_the_run_folder(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["figures"]["circuit"] = "../outside.png"
    run, _ = make_run(tmp_path, metrics=metrics)
    (tmp_path / "outside.png").write_bytes(png_bytes(seed=99))
    md_path, html_path = write_report(run)
    page = html_path.read_text()
    assert base64.b64encode(png_bytes(seed=99)).decode() not in page
    assert "outside.png" not in md_path.read_text()
    assert page.count("figure not available") == 1


def test_figure_names_come_from_metrics(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["figures"]["circuit"] = "my circuit.png"
    run, _ = make_run(tmp_path, metrics=metrics)
    (run / "my circuit.png").write_bytes(png_bytes(seed=7))
    md_path, html_path = write_report(run)
    assert "![circuit](my%20circuit.png)" in md_path.read_text()
    assert base64.b64encode(png_bytes(seed=7)).decode() in html_path.read_text()


# ---------------------------------------------------------------------------------------------
# Errors and writing


def test_missing_metrics_raises(tmp_path):
    with pytest.raises(ReportError) as info:
        write_report(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "metrics.json") in message
    assert "circuits discover" in message
    assert isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a circuit-discovery run file"),
        (json.dumps({"format": "something-else", "schema_version": 1}), "circuit-discovery-run"),
        (json.dumps({"format": "circuit-discovery-run", "schema_version": "1"}), "schema_version"),
        (json.dumps({"format": "circuit-discovery-run", "schema_version": 2}), "upgrade"),
    ],
)
def test_invalid_metrics_raises(tmp_path, content, fragment):
    (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(ReportError, match="metrics.json") as info:
        write_report(tmp_path)
    assert fragment in str(info.value)
    assert not (tmp_path / "report.md").exists()
    assert not (tmp_path / "report.html").exists()


def test_writes_atomically_and_reproducibly(tmp_path):
    run, _ = make_run(tmp_path)
    before = set(p.name for p in run.iterdir())
    md_path, html_path = write_report(run)
    first = md_path.read_bytes(), html_path.read_bytes()
    write_report(run)  # rebuilding an unchanged folder gives the same bytes
    assert (md_path.read_bytes(), html_path.read_bytes()) == first
    assert set(p.name for p in run.iterdir()) == before | {"report.md", "report.html"}
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())


def test_failed_render_keeps_old_reports(tmp_path, monkeypatch):
    run, _ = make_run(tmp_path)
    (run / "report.md").write_text("old md")
    (run / "report.html").write_text("old html")
    before = set(p.name for p in run.iterdir())

    def boom(metrics, images):
        raise RuntimeError("render failed")

    monkeypatch.setattr(report.write, "render_html", boom)
    with pytest.raises(RuntimeError):
        write_report(run)
    assert (run / "report.md").read_text() == "old md"
    assert (run / "report.html").read_text() == "old html"
    assert set(p.name for p in run.iterdir()) == before


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    run, _ = make_run(tmp_path)
    before = set(p.name for p in run.iterdir())

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(
        report.write.os, "replace", fail
    )  # graphs.atomic_files uses the same os module
    with pytest.raises(OSError, match="disk full"):
        write_report(run)
    assert set(p.name for p in run.iterdir()) == before


# ---------------------------------------------------------------------------------------------
# The curve's areas, each under one name, and the numbers of the curve table


def by_hand(x: list[float], y: list[float]) -> float:
    return sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1))


def hand_areas(curve: dict) -> dict[str, float]:
    """MIB's CPR/CMD over the edge fraction and the log pair over log10 of it rescaled to
    [0, 1], by the trapezoid rule written out."""
    k, f = curve["fractions"], curve["f"]
    lx = [(math.log10(x) - math.log10(k[0])) / (math.log10(k[-1]) - math.log10(k[0])) for x in k]
    gap = [abs(1 - v) for v in f]
    return {"cpr": by_hand(k, f), "cmd": by_hand(k, gap),
            "cpr_log": by_hand(lx, f), "cmd_log": by_hand(lx, gap)}  # fmt: skip


def test_each_area_of_a_recorded_curve_has_one_name_and_its_own_value():
    from circuits.app.checks import summary_text
    from circuits.app.curve_text import AREA_LABELS, recorded_areas

    m = copy.deepcopy(METRICS)
    del m["curve"]["log_x"]
    m["curve"].update(hand_areas(m["curve"]))
    expected = hand_areas(m["curve"])
    assert recorded_areas(m["curve"]) == pytest.approx(expected, abs=1e-12)
    assert abs(expected["cpr"] - expected["cpr_log"]) > 0.1  # two numbers, two names
    md, page = both(m)
    for key, value in expected.items():
        label = AREA_LABELS[key].replace("|", "\\|")  # markdown escapes the bars
        assert f"| {label} | {report.fmt_num(value)} |" in md
        assert report.fmt_num(value) in page
    line = summary_text(m).splitlines()[0]
    assert f"CPR {expected['cpr']:.3f}, CMD {expected['cmd']:.3f} (MIB's" in line
    assert f"CPR_log {expected['cpr_log']:.3f}, CMD_log {expected['cmd_log']:.3f} (log10" in line


def test_an_old_record_keeps_its_log_axis_numbers_under_the_log_names():
    from circuits.app.curve_text import recorded_areas

    old = METRICS["curve"]  # written before cpr_log: "cpr" was the log-axis area (log_x true)
    areas = recorded_areas(old)
    assert areas["cpr_log"] == 0.8123 and areas["cmd_log"] == 0.2234
    assert areas["cpr"] == pytest.approx(hand_areas(old)["cpr"], abs=1e-12)  # recomputed
    md, _ = both(METRICS)
    assert (
        "| CPR_log: area under f over log10 of the edge fraction, rescaled to [0, 1] | 0.8123 |"
        in md
    )
    linear = {k: v for k, v in old.items() if k != "log_x"}  # a linear-axis record
    assert recorded_areas(linear)["cpr"] == 0.8123


def test_tiny_random_baselines_print_at_the_precision_of_their_spread():
    m = copy.deepcopy(METRICS)
    m["faithfulness"].update(random_f=7.893e-8, random_f_std=2.282e-7, random_draws=10,
                             random_fs=[-3.1e-8, 7.2e-7])  # fmt: skip
    m["curve"].update(random_f=[1.2e-8, 0.4123, 0.12, 1.0], random_f_std=[3e-8, 0.1234, 0.05, 0.0],
                      f=[-3.01e-8, 0.42, 0.88, 1.0])  # fmt: skip
    md, page = both(m)
    for text in (md, page):
        assert "f = 0.000 ± 0.000" in text and "range 0.000 to 0.000" in text
        assert "e-7" not in text and "e-8" not in text
    assert "| f of random circuits of the same size (mean) | 0.000 |" in md
    assert "| 1% | 12 | 0.42 | 0.41 | 0.12 |" in md  # 2 significant digits of the spread
    assert "| 0.1% | 1 | 0.0000 | 0.000 | 0.000 |" in md


def test_a_size_that_repeats_a_smaller_circuit_says_so():
    m = copy.deepcopy(METRICS)
    m["curve"].update(fractions=[0.001, 0.002, 0.1, 1.0], n_edges=[1, 1, 123, 1234],
                      f=[0.1, 0.1, 0.88, 1.0])  # fmt: skip
    md, _ = both(m)
    assert "| 0.2% | 1 | same circuit as 0.1% |" in md
    assert md.count("| 0.1 |") == 1  # its f is not printed twice
    from circuits.app.curve_text import sizes_text

    text = sizes_text([0.001, 0.002, 0.005], [1, 1, 2], [0.1, 0.1, 0.31])
    assert text == "0.1% (1 edge) 0.100, 0.2% (1 edge, same circuit as 0.1%), 0.5% (2 edges) 0.310"
