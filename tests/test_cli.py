"""The `circuits` command line end to end on the bundled model, and its bad-input paths."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import networkx as nx
import pytest
import torch

from circuits.app.cli import main
from graphs import load_graph, save_graph

RUN_ARGS = ["--task", "ioi", "--n-examples", "32", "--n-eval", "32", "--quiet", "--seed", "1"]
RUN_FILES = [
    "graph.graphml",
    "graph.json",
    "scores.safetensors",
    "metrics.json",
    "report.md",
    "report.html",
    *(
        f"{name}.{ext}"
        for name in ("circuit", "faithfulness_curve", "score_histogram")
        for ext in ("png", "svg")
    ),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["discover", *RUN_ARGS, "--out", str(out)]) == 0
    return out


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_discover_writes_every_file_and_they_parse(run_dir):
    for name in RUN_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert not _leftovers(run_dir.parent)
    G = nx.read_graphml(run_dir / "graph.graphml")
    assert G.number_of_nodes() > 0
    json.loads((run_dir / "graph.json").read_text())
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and 'src="circuit.png"' not in html
    assert (run_dir / "circuit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_files_are_strict_json_and_name_the_model_as_given(run_dir):
    """metrics.json had `[0.9, Infinity]` (JavaScript's JSON.parse rejects it), and the graph
    files named the package's install path instead of `toy-gpt2`."""

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    metrics = json.loads((run_dir / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["settings"]["target"] == [0.9, None]  # f >= 0.9: the open bound is null
    assert metrics["model"]["name"] == "toy-gpt2"
    json.loads((run_dir / "graph.json").read_text(), parse_constant=refuse)
    for name in ("graph.json", "graph.graphml", "scores.safetensors"):
        assert load_graph(run_dir / name).spec.model_name == "toy-gpt2", name


def test_metrics_equal_a_recomputation_through_the_python_api(run_dir):
    from attribution import attribute
    from circuits import evaluate, faithfulness_curve, minimal_circuit, zoo
    from circuits.tasks import encode_examples, get_task
    from graphs import Graph

    metrics = json.loads((run_dir / "metrics.json").read_text())
    model, tokenizer = zoo.load("toy-gpt2")
    task = get_task("ioi")
    train = encode_examples(task.examples(32, seed=1, split="train"), tokenizer)
    test = encode_examples(task.examples(32, seed=1, split="test"), tokenizer)
    graph = Graph.from_model(model)
    attribute(
        model,
        graph,
        train,
        "logit_diff",
        method="eap-ig-inputs",
        steps=5,
        batch_size=16,
        quiet=True,
    )
    saved = load_graph(run_dir / "scores.safetensors")
    assert torch.allclose(saved.scores, graph.scores, atol=1e-6)
    found = minimal_circuit(model, graph, train, "logit_diff", target=0.9, batch_size=16)
    assert torch.equal(found.mask, saved.in_graph)
    assert metrics["circuit"]["n_edges"] == found.n_edges == saved.count_included_edges()
    assert metrics["circuit"]["n_nodes"] == saved.count_included_nodes()
    assert metrics["graph"]["n_edges"] == int(graph.real_edges.sum())
    graph.set_in_graph(found.mask)
    faith = evaluate(model, graph, test, "logit_diff", batch_size=16, seed=1)
    for key in ("f", "m_full", "m_circuit", "m_empty", "random_f"):
        assert metrics["faithfulness"][key] == pytest.approx(
            getattr(faith, key), rel=1e-4, abs=1e-5
        ), key
    assert metrics["faithfulness"]["ci"] == pytest.approx(list(faith.ci), rel=1e-4, abs=1e-5)
    curve = faithfulness_curve(model, graph, test, "logit_diff", batch_size=16)
    for key in ("cpr", "cmd", "cpr_log", "cmd_log"):
        assert metrics["curve"][key] == pytest.approx(getattr(curve, key), rel=1e-4, abs=1e-5)
    assert "log_x" not in metrics["curve"]  # each area has its own name now
    assert metrics["curve"]["f"] == pytest.approx(curve.f, rel=1e-4, abs=1e-5)
    # the report shows the same numbers
    report = (run_dir / "report.md").read_text()
    assert str(metrics["circuit"]["n_edges"]) in report and "toy-gpt2" in report


def test_discovered_ioi_circuit_is_small_and_faithful(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["circuit"]["reached_target"]
    assert metrics["circuit"]["edge_fraction"] < 0.5
    assert metrics["faithfulness"]["f"] > 0.7
    assert metrics["faithfulness"]["random_f"] < metrics["faithfulness"]["f"]


def test_scale_options_reach_loading_and_attribution(tmp_path, capsys):
    """--dtype, --device-map and --memory-budget-gb: the model is loaded in float64 through
    Hugging Face's device map, a tiny budget makes attribution build its differences one node
    at a time (and say so first), and the scores still equal an unchunked float64 attribution
    through the Python API."""
    from attribution import attribute
    from circuits import zoo
    from circuits.tasks import encode_examples, get_task
    from graphs import Graph

    out = tmp_path / "run"
    args = ["--task", "ioi", "--n-examples", "8", "--n-eval", "8", "--seed", "1", "--steps", "2"]
    scale = ["--dtype", "float64", "--device-map", "auto", "--memory-budget-gb", "0.001"]
    assert main(["discover", *args, *scale, "--out", str(out)]) == 0
    assert "1 node at a time)" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["dtype"] == "float64" and metrics["settings"]["device_map"] == "auto"
    assert metrics["model"]["devices"] == ["cpu"]  # no GPU here: "auto" keeps everything on cpu
    assert metrics["settings"]["memory_budget_gb"] == 0.001
    model, tokenizer = zoo.load("toy-gpt2", dtype=torch.float64)
    train = encode_examples(get_task("ioi").examples(8, seed=1, split="train"), tokenizer)
    graph = Graph.from_model(model)
    attribute(model, graph, train, "logit_diff", method="eap-ig-inputs", steps=2, quiet=True)
    saved = load_graph(out / "scores.safetensors")
    assert saved.scores.abs().sum() > 0
    torch.testing.assert_close(saved.scores.double(), graph.scores.double(), rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when no GPU is present")
def test_bad_device_and_device_map_exit_2_before_loading(tmp_path, capsys, monkeypatch):
    import circuits.app.discovery

    def no_loading(*args, **kwargs):
        raise AssertionError("the settings check must stop the run before loading the model")

    monkeypatch.setattr(circuits.app.discovery.job, "load_for_task", no_loading)
    out = str(tmp_path / "run")
    cases = {
        ("--device", "cuda"): "device 'cuda': this torch sees no CUDA GPU",
        ("--device-map", "cuda:1"): "device-map 'cuda:1': this torch sees no CUDA GPU",
        ("--device-map", "everywhere"): "device-map 'everywhere' is not a torch device; use "
        "e.g. cpu, cuda or cuda:1, or one of auto, balanced",
        ("--device", "cpu", "--device-map", "auto"): "pass either a device",
        ("--memory-budget-gb", "0"): "memory-budget-gb must be positive, got 0.0",
    }
    for flags, message in cases.items():
        assert main(["discover", *flags, "--out", out, "--quiet"]) == 2, flags
        assert message in _error(capsys), flags
    with pytest.raises(SystemExit) as exit_info:
        main(["discover", "--dtype", "int8", "--out", out])
    assert exit_info.value.code == 2 and "invalid choice: 'int8'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_report_rebuilds_from_the_folder(run_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    (copy / "report.md").unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_text() == (run_dir / "report.html").read_text()


def test_evaluate_a_saved_circuit_matches_discover(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    code = main(
        [
            "evaluate",
            str(run_dir / "graph.graphml"),
            "--task",
            "ioi",
            "--n-examples",
            "32",
            "--seed",
            "1",
            "--quiet",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_edges"] == metrics["circuit"]["n_edges"]
    assert result["f"] == pytest.approx(metrics["faithfulness"]["f"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("fmt", ["graphml", "json", "dot"])
def test_export(run_dir, tmp_path, fmt):
    out = tmp_path / f"exported.{fmt}"
    assert (
        main(["export", str(run_dir / "scores.safetensors"), "--format", fmt, "--out", str(out)])
        == 0
    )
    original = load_graph(run_dir / "scores.safetensors")
    if fmt == "dot":
        text = out.read_text()
        assert text.startswith("digraph") and "rankdir=BT" in text
        # one DOT edge per (circuit edge, reader of its port)
        n = sum(len(e.port.nodes) for e in original.edges_in_graph.values())
        assert text.count(" -> ") == n
    else:
        assert load_graph(out) == original


def _error(capsys) -> str:
    """The one ``error:`` line the command printed on stderr (progress bars may precede it)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_unknown_task_model_and_method_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["discover", "--task", "iot", "--out", str(out)]) == 2
    assert "unknown task 'iot'; available tasks: ioi" in _error(capsys)
    assert main(["discover", "--model", "toy-nothing", "--out", str(out), "--quiet"]) == 2
    err = _error(capsys)
    assert "not a bundled model (available: " in err and "toy-gpt2" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["discover", "--method", "magic", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown method 'magic'; choose one of eap," in err
    with pytest.raises(SystemExit) as exit_info:
        main(["discover", "--method", "ensemble:eap,magic", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown ensemble member 'magic'" in err and "ifr" in err
    assert not out.exists() and not _leftovers(tmp_path)


def test_output_folder_problems_exit_2_and_touch_nothing(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["discover", *RUN_ARGS, "--out", str(busy)]) == 2
    assert "exists and is not empty; pass --overwrite" in _error(capsys)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["discover", *RUN_ARGS, "--out", str(a_file / "run")]) == 2
    assert "is a file, not a folder" in _error(capsys)
    assert not _leftovers(tmp_path)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders"
)
def test_unwritable_output_folder_exits_2(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["discover", *RUN_ARGS, "--out", str(locked / "run")]) == 2
        assert "permission denied" in _error(capsys)
    finally:
        locked.chmod(0o755)


def test_output_folder_without_write_permission_exits_2(tmp_path, capsys, monkeypatch):
    """What the check does for a read-only parent, even when running as root."""
    import circuits.app.discovery

    monkeypatch.setattr(circuits.app.discovery.write.os, "access", lambda path, mode: False)
    assert main(["discover", *RUN_ARGS, "--out", str(tmp_path / "run")]) == 2
    assert f"cannot write to {tmp_path} (permission denied)" in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_graph_of_another_model_exits_2(tmp_path, capsys):
    from circuits.models import load_model
    from circuits.models.random import random_hf_model
    from graphs import Graph

    other = Graph.from_model(load_model(random_hf_model("GPT2LMHeadModel", n_layers=2)))
    other = Graph(dataclasses.replace(other.spec, model_name="tiny-2-layer"))
    path = tmp_path / "other.graphml"
    save_graph(other, path)
    assert main(["evaluate", str(path), "--task", "ioi", "--n-examples", "4", "--quiet"]) == 2
    err = _error(capsys)
    assert "does not fit the model (n_layers: graph has 2, model has 4" in err
    # a command-line user is told which --model to pass, not a Python call
    assert (
        f"Pass --model {other.spec.model_name}, the model it was built for" in err
        and "Graph.from_model" not in err
    )
    assert main(["evaluate", str(tmp_path / "missing.json"), "--task", "ioi"]) == 2
    assert "does not exist" in _error(capsys)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "circuits discover" in _error(capsys)


@pytest.mark.parametrize(
    "name, argv",
    [
        ("afile", ["evaluate", "{path}"]),
        ("graph.dot", ["evaluate", "{path}"]),
        ("graph.dot", ["export", "{path}", "--format", "json"]),
        ("graph.txt", ["export", "{path}", "--format", "dot"]),
    ],
)
def test_graph_file_of_unknown_format_exits_2_with_command_line_advice(
    tmp_path, capsys, name, argv
):
    """A file that is not .graphml/.json/.safetensors is bad input (2), and the advice is for
    the command line (which files it reads), not Python's ``format=`` argument."""
    path = tmp_path / name
    path.write_text("digraph circuit {}\n")
    assert main([a.format(path=path) for a in argv]) == 2
    err = _error(capsys)
    assert str(path) in err and ".graphml, .json or .safetensors" in err
    assert "format=" not in err
    if name.endswith(".dot"):
        assert "export" in err  # DOT is written by `circuits export`, never read
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def _screenshot(html: Path, png: Path) -> None:
    import shutil
    import subprocess

    browser = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
         f"--screenshot={png}", "--window-size=1200,5000", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(
    not any(
        __import__("shutil").which(b) for b in ("chromium", "chromium-browser", "google-chrome")
    ),
    reason="no headless Chromium here (Debian: apt-get install chromium; .ci/run installs it when it can)",
)
def test_html_report_displays_in_headless_chromium(run_dir, tmp_path):
    """The report renders with its figures: a copy whose images are blanked shows far fewer
    coloured pixels, so the colour in the real screenshot comes from the inlined figures."""
    import re

    import matplotlib.image

    def coloured_pixels(png: Path) -> int:
        rgb = matplotlib.image.imread(png)[..., :3]
        return int(((rgb.max(-1) - rgb.min(-1)) > 0.2).sum())  # saturated, i.e. not grey text

    # The report's own coloured boxes (summary, warnings) are greyed in both copies, so the
    # colour left is the figures'.
    grey = "<style>*:not(img){background:#fff!important;border-color:#888!important;color:#000!important}</style>"
    html = (run_dir / "report.html").read_text().replace("</head>", grey + "</head>", 1)
    assert grey in html
    blank = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,", html)
    assert blank != html
    (tmp_path / "report.html").write_text(html)
    (tmp_path / "blank.html").write_text(blank)
    _screenshot(tmp_path / "report.html", tmp_path / "report.png")
    _screenshot(tmp_path / "blank.html", tmp_path / "blank.png")
    with_figures, without = (
        coloured_pixels(tmp_path / "report.png"),
        coloured_pixels(tmp_path / "blank.png"),
    )
    assert with_figures > 2_000 and with_figures > 10 * max(without, 1)


@pytest.mark.parametrize("command", [[], ["discover"], ["evaluate"], ["export"], ["report"]])
def test_help_of_every_command_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: circuits") and "--help" in out


def test_console_script_is_declared():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["circuits"] == "circuits.app.cli:main"


# ------------------------------------------------------------------ data loss and interruptions

WORKTREE = Path(__file__).resolve().parents[1]


def _no_model_work(monkeypatch) -> None:
    import circuits.app.discovery

    def no_loading(*args, **kwargs):
        raise AssertionError("the output check must stop the run before loading the model")

    # the job loads through its own module; evaluate and serve through the package
    monkeypatch.setattr(circuits.app.discovery.job, "load_for_task", no_loading)
    monkeypatch.setattr(circuits.app.discovery, "load_for_task", no_loading)


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_overwrite_keeps_a_folder_that_is_not_a_run_folder(tmp_path, capsys, monkeypatch):
    """--overwrite used to replace any folder, user files included."""
    _no_model_work(monkeypatch)
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    (mine / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = _tree(mine)
    assert main(["discover", *RUN_ARGS, "--out", str(mine), "--overwrite"]) == 2
    err = _error(capsys)
    assert "--overwrite replaces only a run folder written by `circuits discover`" in err
    assert "it holds notes.txt, sub/, and no metrics.json" in err
    (mine / "metrics.json").write_text('{"loss": 0.1}')  # another tool's metrics
    assert main(["discover", *RUN_ARGS, "--out", str(mine), "--overwrite"]) == 2
    assert 'a metrics.json without "format": "circuit-discovery-run"' in _error(capsys)
    (mine / "metrics.json").unlink()
    assert _tree(mine) == before and not _leftovers(tmp_path)


def test_overwrite_accepts_a_run_folder_and_an_empty_one(tmp_path):
    from circuits.app.discovery import check_output_folder

    run = tmp_path / "run"
    run.mkdir()
    check_output_folder(run, overwrite=True)
    (run / "metrics.json").write_text('{"format": "circuit-discovery-run", "schema_version": 9}')
    (run / "report.md").write_text("old report")
    check_output_folder(run, overwrite=True)  # a run folder, even of a newer version


def test_current_home_and_repository_folders_are_never_replaced(tmp_path, capsys, monkeypatch):
    """--out . (or a folder holding it, the home folder, a repository) is refused before any
    work, even when it looks like a run folder."""
    _no_model_work(monkeypatch)
    here = tmp_path / "here"
    (here / "inner").mkdir(parents=True)
    (here / "metrics.json").write_text('{"format": "circuit-discovery-run"}')
    home = tmp_path / "home"
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cases = {
        (here, "."): "is the current folder",
        (here / "inner", ".."): "contains the current folder",
        (WORKTREE, str(home)): "is your home folder",
        (WORKTREE, str(tmp_path)): "contains your home folder",
        (WORKTREE, str(repo)): "is a git repository (it holds .git)",
    }
    before = _tree(tmp_path)
    for (cwd, out), why in cases.items():
        monkeypatch.chdir(cwd)
        for flags in (["--overwrite"], []):
            assert main(["discover", *RUN_ARGS, "--out", out, *flags]) == 2, (out, flags)
            err = _error(capsys)
            assert f"refusing to write the run folder {out}: it {why}" in err, err
            assert "choose a new folder, e.g. --out" in err
    assert _tree(tmp_path) == before


def test_a_signal_between_the_renames_of_a_replacement_strands_nothing(tmp_path, monkeypatch):
    """Ctrl-C right after the old folder was moved aside used to leave it hidden as
    .NAME.<hex>.old and no folder at NAME; the swap now completes, then the interrupt."""
    import signal

    from graphs.atomic_files import atomic_directory

    run = tmp_path / "run"
    run.mkdir()
    (run / "old.txt").write_text("old")
    real_rename = Path.rename

    def rename_then_interrupt(self, target):
        result = real_rename(self, target)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(Path, "rename", rename_then_interrupt)
    # a shell starts background jobs with SIGINT ignored; this test needs Python's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(run, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    signal.signal(signal.SIGINT, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in run.iterdir()] == ["new.txt"]


def test_the_command_module_imports_without_torch():
    """Start-up (torch and the models) happens inside main(), where Ctrl-C is caught."""
    import subprocess
    import sys

    code = (
        "import sys, circuits.app.cli; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=WORKTREE, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_version_help_and_the_data_parser_import_no_torch():
    """The command table names each command's module: --version and --help import none of
    them, and the data command's parser imports that command's module alone, so none of
    these start-ups pay for torch."""
    import subprocess
    import sys

    code = """
import contextlib, io, sys
from circuits.app.cli import build_parser, main

def loaded():
    heavy = sorted({'torch', 'transformers'} & set(sys.modules))
    return heavy, sorted(m for m in sys.modules if m.startswith('circuits.app.cli.'))

for argv in (['--version'], ['--help']):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exit:
            assert exit.code == 0, argv
    print(argv, loaded())
args = build_parser(['data']).parse_args(['data', 'check', 'rows.jsonl', '--seed', '3'])
assert (args.command, args.data_command, args.file, args.seed) == ('data', 'check', 'rows.jsonl', 3)
print('data', loaded())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=WORKTREE, capture_output=True, text=True, check=True
    )
    common = "circuits.app.cli.common"
    assert out.stdout.splitlines() == [
        f"['--version'] ([], ['{common}'])",
        f"['--help'] ([], ['{common}'])",
        f"data ([], ['{common}', 'circuits.app.cli.data'])",
    ]


def test_circuits_help_lists_the_command_table():
    import contextlib
    import io

    from circuits.app.cli import COMMANDS

    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(out.getvalue().split())
    where = [text.find(f" {name} {command.help} ") for name, command in COMMANDS.items()]
    assert -1 not in where and where == sorted(where)  # each with its line, in the table's order


def _start(tmp_path: Path, *args: str):
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(WORKTREE)}
    import signal

    def default_sigint():  # a shell starts background jobs (and so CI steps) with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "circuits", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )  # fmt: skip


def test_ctrl_c_during_start_up_prints_one_line(tmp_path):
    import signal
    import time

    proc = _start(tmp_path, "discover", *RUN_ARGS, "--out", "run")
    # wait until main() is importing torch (its libraries are mapped), however loaded the
    # machine is: a fixed sleep could signal the interpreter before main() even runs
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 120
    while "libtorch" not in maps.read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never started importing torch"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["interrupted by SIGINT; no partial output was left"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_while_writing_the_run_folder_leaves_nothing(tmp_path):
    """Python's default SIGTERM ended the process at once, leaving .run.<hex>.tmp behind."""
    import signal
    import time

    args = ["--n-examples", "8", "--n-eval", "8", "--steps", "1", "--quiet", "--seed", "1"]
    proc = _start(tmp_path, "discover", *args, "--out", "run")
    deadline = time.monotonic() + 300
    while not any(p.name.startswith(".run.") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # the write phase: graphs, figures, report
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.splitlines() == ["interrupted by SIGTERM; no partial output was left"]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ self-describing graph files


def test_graph_files_record_how_they_were_made(run_dir):
    from circuits import zoo
    from graphs.spec import weights_fingerprint

    expected = {"model": "toy-gpt2", "task": "ioi", "metric": "logit_diff",
                "method": "eap-ig-inputs", "ablation": "patching", "split": "train", "seed": 1}  # fmt: skip
    fingerprint = weights_fingerprint(zoo.load("toy-gpt2")[0])
    for name in ("graph.graphml", "graph.json", "scores.safetensors"):
        graph = load_graph(run_dir / name)
        assert graph.metadata == expected, name
        assert graph.spec.weights_fingerprint == fingerprint, name


def test_evaluate_takes_the_graph_files_settings_and_refuses_a_mismatch(
    run_dir, tmp_path, capsys, monkeypatch
):
    graph = load_graph(run_dir / "graph.json")
    graph.metadata.update(task="greater-than", metric="prob_diff", seed=2)
    path = tmp_path / "gt.json"  # no metrics.json here: the file alone says what it is
    save_graph(graph, path)
    few = ["--n-examples", "4", "--bootstrap", "10", "--quiet", "--json"]
    assert main(["evaluate", str(path), *few]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["task"], result["metric"], result["seed"]) == ("greater-than", "prob_diff", 2)
    assert result["warnings"] == []

    import circuits.app.discovery

    real_load = circuits.app.discovery.load_for_task
    _no_model_work(monkeypatch)
    assert main(["evaluate", str(path), "--task", "ioi", *few]) == 2
    err = _error(capsys)
    assert "found with task greater-than, metric prob_diff, ablation patching" in err
    assert "--task ioi (the graph's is greater-than)" in err and "--allow-mismatch" in err
    assert main(["evaluate", str(path), "--ablation", "zero", *few]) == 2
    assert "--ablation zero (the graph's is patching)" in _error(capsys)
    monkeypatch.setattr(circuits.app.discovery, "load_for_task", real_load)
    assert main(["evaluate", str(path), "--task", "ioi", "--allow-mismatch", *few]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["task"], result["metric"]) == ("ioi", "logit_diff")  # ioi's own metric


def test_evaluate_warns_when_the_weights_differ(run_dir, tmp_path, capsys):
    """A random-weight model of toy-gpt2's shape fits the graph, but is not its model."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    from circuits import zoo

    folder = zoo.model_dir("toy-gpt2")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(
        tmp_path / "random"
    )
    for tok in folder.glob("*token*"):
        shutil.copy(tok, tmp_path / "random")
    args = ["evaluate", str(run_dir / "graph.json"), "--model", str(tmp_path / "random")]
    assert main([*args, "--n-examples", "4", "--bootstrap", "10", "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "differ from those the graph was built with" in warnings[0]
    assert json.loads(captured.out)["warnings"] == [warnings[0].removeprefix("warning: ")]


def test_weights_with_nan_exit_2_before_any_work(tmp_path, capsys):
    from circuits.models.random import random_hf_model

    model = random_hf_model("GPT2LMHeadModel", seed=1)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "broken")
    out = tmp_path / "run"
    assert (
        main(["discover", "--model", str(tmp_path / "broken"), "--out", str(out), "--quiet"]) == 2
    )
    assert "parameter 'transformer.wte.weight'" in _error(capsys) and not out.exists()


def test_evaluate_prints_the_random_baseline_at_its_spreads_precision():
    # a tiny mean with its spread printed as the report does, not as -0.0000 or 7.9e-8
    from types import SimpleNamespace

    from circuits.app.cli.evaluate import _random_text

    assert _random_text(SimpleNamespace(random_f=-7.893e-8, random_f_std=2.282e-7)) == (
        "0.000 ± 0.000"
    )
    assert _random_text(SimpleNamespace(random_f=0.4123, random_f_std=0.1234)) == "0.41 ± 0.12"
    assert _random_text(SimpleNamespace(random_f=-3e-8, random_f_std=None)) == "0.000"
