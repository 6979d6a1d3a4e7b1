"""`circuits serve`: bad requests are refused with a message and the server keeps serving,
concurrent requests get the faithfulness the Python API computes, the page's live ablation
shows it, and the command stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from browser import MISSING_REASON, needs_browser, start_chromium, wait_for

from circuits.app.explorer import load_run_graph
from circuits.app.serve import MAX_BODY, make_server

WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(small_run_dir):
    srv = make_server(small_run_dir, 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.effective_port}"
    yield srv
    srv.close()
    thread.join(10)


def _request(url, body=None, method="POST"):
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _post(server, edges):
    status, _, body = _request(server.url + "/faithfulness", json.dumps({"edges": edges}).encode())
    return status, json.loads(body)


def _expected(server, masks):
    """f and m(C) of each mask by a CircuitEvaluator built here (not the server's)."""
    from circuits.search.faithfulness import CircuitEvaluator, faithfulness_from_metrics

    live = server.live
    ev = CircuitEvaluator(
        live.model, live.graph, live.data, live.metric, ablation=live.settings.ablation,
        batch_size=live.settings.batch_size,
    )  # fmt: skip
    m = ev.metrics(masks).mean(dim=1).tolist()
    full, empty = float(ev.m_full.mean()), float(ev.m_empty.mean())
    return [(faithfulness_from_metrics(full, mc, empty), mc) for mc in m]


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(server, small_run_dir):
    graph = load_run_graph(small_run_dir)
    good = [e.name for e in graph.top_edges(3)]
    url = server.url + "/faithfulness"

    status, _, body = _request(url, json.dumps({"edges": [*good, "a9.h9->m0"]}).encode())
    assert status == 400 and "a9.h9->m0" in json.loads(body)["error"]
    status, _, body = _request(url, json.dumps({"edges": ["a2.h0->a1.h0<q>"]}).encode())
    assert status == 400 and "is not an edge of this model" in json.loads(body)["error"]
    status, _, body = _request(url, b'{"edges": [')
    assert status == 400 and "not JSON" in json.loads(body)["error"]
    status, _, body = _request(url, json.dumps({"edges": "input->m0"}).encode())
    assert status == 400 and "edge names as strings" in json.loads(body)["error"]
    status, _, body = _request(url, b"x" * (10 * 1024 * 1024))
    assert status == 413 and f"over the {MAX_BODY} limit" in json.loads(body)["error"]
    status, headers, body = _request(url, method="GET")
    assert status == 405 and headers["Allow"] == "POST" and "POST JSON" in json.loads(body)["error"]
    status, headers, _ = _request(server.url + "/", b"{}", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, _ = _request(server.url + "/nothing", method="GET")
    assert status == 404
    status, result = _post(server, good)
    assert status == 200 and result["n_edges"] == 3 and isinstance(result["f"], float)
    status, headers, page = _request(server.url + "/", method="GET")
    assert status == 200 and b'"endpoint":"/faithfulness"' in page


def test_fifty_concurrent_requests_get_the_python_apis_answers(server, small_run_dir):
    graph = load_run_graph(small_run_dir)
    ranked = [e.name for e in graph.top_edges(60)]
    sets = [ranked[: k + 1] for k in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda edges: _post(server, edges), sets))
    masks = []
    for edges in sets:
        mask = torch.zeros_like(graph.in_graph)
        for name in edges:
            mask[graph.layout.edge_index(name)] = True
        masks.append(mask)
    for (status, got), edges, (f, m_circuit) in zip(
        answers, sets, _expected(server, masks), strict=True
    ):
        assert status == 200 and got["n_edges"] == len(edges)
        assert got["f"] == pytest.approx(f, rel=1e-9, abs=1e-12)
        assert got["m_circuit"] == pytest.approx(m_circuit, rel=1e-9, abs=1e-12)


def test_the_runs_circuit_gets_the_runs_held_out_f(server, small_run_dir):
    """The server reloads the run's model and held-out prompts as `circuits evaluate` does."""
    graph = load_run_graph(small_run_dir)
    record = json.loads((small_run_dir / "metrics.json").read_text())
    status, got = _post(server, [e.name for e in graph.edges_in_graph.values()])
    assert status == 200 and got["n_examples"] == record["faithfulness"]["n_examples"]
    assert got["f"] == pytest.approx(record["faithfulness"]["f"], rel=1e-4, abs=1e-5)


@needs_browser
def test_toggling_an_edge_off_shows_the_f_the_python_api_computes(server, small_run_dir):
    from selenium.webdriver.common.action_chains import ActionChains

    from circuits.search.faithfulness import evaluate

    if MISSING_REASON:
        pytest.skip(MISSING_REASON)
    graph = load_run_graph(small_run_dir)
    circuit = [e for e in graph.top_edges(graph.n_edges) if e.in_graph]
    live = server.live

    def python_f(edges):
        mask = torch.zeros_like(graph.in_graph)
        for e in edges:
            mask[graph.layout.edge_index(e.name)] = True
        return evaluate(
            live.model, live.graph, live.data, live.metric, circuit=mask,
            ablation=live.settings.ablation, batch_size=live.settings.batch_size,
            bootstrap=0, random_baseline=False,
        ).f  # fmt: skip

    driver = start_chromium()
    try:
        driver.get(server.url + "/")
        wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), what="page")
        shown = lambda: driver.find_element("id", "live-f").get_attribute("data-value")  # noqa: E731
        assert float(wait_for(shown, what="first f")) == pytest.approx(python_f(circuit), rel=1e-9)
        # click the node the best edge leaves, untick that edge in its list
        off = circuit[0]
        idx = graph.layout.node_by_name[off.upstream.name].index
        pos = driver.execute_script(
            f"return explorer.cy.getElementById('n{idx}').renderedPosition()"
        )
        box = driver.find_element("id", "cy")
        ActionChains(driver).move_to_element_with_offset(
            box, int(pos["x"] - box.size["width"] / 2), int(pos["y"] - box.size["height"] / 2)
        ).click().perform()
        driver.find_element("css selector", f'#node-panel li[data-edge="{off.name}"] input').click()
        n = str(len(circuit) - 1)
        wait_for(
            lambda: driver.find_element("id", "live-f").get_attribute("data-edges") == n,
            what="new f",
        )
        expected = python_f(circuit[1:])
        assert float(shown()) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert float(driver.find_element("id", "live-f").text) == pytest.approx(expected, rel=1e-5)
        assert "removed" in driver.execute_script(
            "return explorer.cy.getElementById('e0').classes().join(' ')"
        )
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


def test_serve_command_logs_requests_and_stops_cleanly_on_ctrl_c(small_run_dir, tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import time

    def default_sigint():  # a shell starts background jobs (and so CI steps) with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(WORKTREE),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "circuits", "serve", str(small_run_dir), "--port", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        line, deadline = "", time.monotonic() + 120
        while "serving" not in line:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))
        status, _, _ = _request(f"http://127.0.0.1:{port}/", method="GET")
        assert status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().endswith("stopped")
    assert re.search(r"127\.0\.0\.1 GET / 200 \d+ ms", err), err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["serve", "compare"])
def test_help_of_the_explorer_commands_exits_0(command, capsys):
    from circuits.app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "RUN" in capsys.readouterr().out.upper()


def test_serve_refuses_a_missing_run_folder_and_a_bad_port(small_run_dir, tmp_path, capsys):
    from circuits.app.cli import main

    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", str(small_run_dir), "--port", "70000"]) == 2
    assert "--port must be 0-65535" in capsys.readouterr().err
