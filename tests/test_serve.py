"""`circuits serve`: bad requests are refused with a message and the server keeps serving,
concurrent requests get the faithfulness the Python API computes, the page's live ablation
shows it, requests from other pages (wrong Host, no token) are refused, the page answers
while evaluations queue, a busy port is refused before the model loads, a run with the
optimal ablation is served with `circuits evaluate`'s f, and the command stops cleanly on
Ctrl-C."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
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


def _request(url, body=None, method="POST", *, token=None, headers=None):
    """``(status, headers, body)``; the token goes in the header the page sends it in."""
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("X-Circuits-Token", token)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _post(server, edges):
    status, _, body = _request(
        server.url + "/faithfulness", json.dumps({"edges": edges}).encode(), token=server.token
    )
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
    url, token = server.url + "/faithfulness", server.token

    status, _, body = _request(
        url, json.dumps({"edges": [*good, "a9.h9->m0"]}).encode(), token=token
    )
    assert status == 400 and "a9.h9->m0" in json.loads(body)["error"]
    status, _, body = _request(
        url, json.dumps({"edges": ["a2.h0->a1.h0<q>"]}).encode(), token=token
    )
    assert status == 400 and "is not an edge of this model" in json.loads(body)["error"]
    status, _, body = _request(url, b'{"edges": [', token=token)
    assert status == 400 and "not JSON" in json.loads(body)["error"]
    status, _, body = _request(url, json.dumps({"edges": "input->m0"}).encode(), token=token)
    assert status == 400 and "edge names as strings" in json.loads(body)["error"]
    status, _, body = _request(url, b"x" * (10 * 1024 * 1024), token=token)
    assert status == 413 and f"over the {MAX_BODY} limit" in json.loads(body)["error"]
    status, headers, body = _request(url, method="GET", token=token)
    assert status == 405 and headers["Allow"] == "POST" and "POST JSON" in json.loads(body)["error"]
    status, headers, _ = _request(server.url + "/", b"{}", method="POST", token=token)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, _ = _request(server.url + "/nothing", method="GET", token=token)
    assert status == 404
    status, result = _post(server, good)
    assert status == 200 and result["n_edges"] == 3 and isinstance(result["f"], float)
    status, headers, page = _request(server.page_url, method="GET")
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
        driver.get(server.page_url)
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
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line).group(0)
        status, _, _ = _request(url, method="GET")
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


class BlockedLive:
    """A stand-in evaluator whose evaluations wait (one at a time, like the real one) until
    ``go`` is set, so requests queue as they do behind slow evaluations."""

    def __init__(self):
        self.go, self.lock, self.count = threading.Event(), threading.Lock(), threading.Lock()
        self.calls = 0

    def faithfulness(self, names):
        with self.count:
            self.calls += 1
        with self.lock:
            self.go.wait(60)
        return {"f": 1.0, "n_edges": len(names)}


@pytest.fixture
def fake_server(small_run_dir):
    """A real server on a free port with :class:`BlockedLive` (no model): fast."""
    live = BlockedLive()
    srv = make_server(small_run_dir, 0, live=live)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.effective_port}"
    live.go.set()  # evaluations answer at once unless a test clears it
    yield srv
    live.go.set()
    srv.close()
    thread.join(10)


def _raw(server, method, path, *, host=None, headers=None, body=None):
    """``(status, error message)`` of a request sent with http.client, which lets the test
    set the Host header a browser would send after DNS rebinding."""
    conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
    sent = dict(headers or {})
    sent["Host"] = host or f"127.0.0.1:{server.effective_port}"
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    kind = resp.getheader("Content-Type", "")
    return resp.status, json.loads(data).get("error") if "json" in kind else data


def test_only_requests_with_this_servers_host_and_the_token_are_answered(fake_server):
    port, token = fake_server.effective_port, fake_server.token
    edges = json.dumps({"edges": ["input->m0"]})
    good = {"Content-Type": "application/json", "X-Circuits-Token": token}
    # the page: its address carries the token; a DNS-rebound name or no token is refused
    assert _raw(fake_server, "GET", f"/?token={token}")[0] == 200
    assert _raw(fake_server, "GET", f"/?token={token}", host=f"localhost:{port}")[0] == 200
    status, error = _raw(fake_server, "GET", f"/?token={token}", host=f"evil.example:{port}")
    assert status == 403 and "evil.example" in error and "is not this server" in error
    status, error = _raw(fake_server, "GET", f"/?token={token}", host="127.0.0.1:1")
    assert status == 403 and "is not this server" in error
    status, error = _raw(fake_server, "GET", "/")
    assert status == 403 and "no token" in error and "?token=" in error
    status, error = _raw(fake_server, "GET", "/?token=guess")
    assert status == 403 and "wrong token" in error
    # evaluations: the token in the header (as the page sends it) or the query
    assert _raw(fake_server, "POST", "/faithfulness", headers=good, body=edges)[0] == 200
    plain = {"Content-Type": "text/plain"}
    assert (
        _raw(fake_server, "POST", f"/faithfulness?token={token}", headers=plain, body=edges)[0]
        == 200
    )
    # what another web page can send: a cross-origin text/plain POST without the token
    foreign = {**plain, "Origin": "http://evil.example"}
    status, error = _raw(fake_server, "POST", "/faithfulness", headers=foreign, body=edges)
    assert status == 403
    status, error = _raw(fake_server, "POST", "/faithfulness", headers=plain, body=edges)
    assert status == 403 and "no token" in error
    status, error = _raw(
        fake_server, "POST", "/faithfulness", headers={**good, "X-Circuits-Token": token[:-1]},
        body=edges,
    )  # fmt: skip
    assert status == 403 and "wrong token" in error
    status, error = _raw(
        fake_server, "POST", "/faithfulness", headers={**good, "Origin": "http://evil.example"},
        body=edges,
    )  # fmt: skip
    assert status == 403 and "evil.example" in error
    same_origin = {**good, "Origin": f"http://127.0.0.1:{port}"}
    assert _raw(fake_server, "POST", "/faithfulness", headers=same_origin, body=edges)[0] == 200
    assert fake_server.live.calls == 3  # only the three accepted requests were evaluated
    # the served page sends the token with its requests
    page = _raw(fake_server, "GET", f"/?token={token}")[1].decode()
    assert f'"token":"{token}"' in page


def _wait_until(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_the_page_is_answered_at_once_while_evaluations_queue(fake_server):
    from circuits.app.serve import MAX_WAITING

    live, token = fake_server.live, fake_server.token
    live.go.clear()
    body = json.dumps({"edges": ["input->m0"]}).encode()

    def post():
        return _request(fake_server.url + "/faithfulness", body, token=token)[0]

    with ThreadPoolExecutor(max_workers=MAX_WAITING + 1) as pool:
        queued = [pool.submit(post) for _ in range(8)]
        _wait_until(lambda: live.calls == 8, seconds=5)
        t0 = time.perf_counter()
        status, _, page = _request(fake_server.page_url, method="GET")
        waited = time.perf_counter() - t0
        assert status == 200 and b"explorer-data" in page
        assert waited < 2.0, f"the page waited {waited:.1f} s behind 8 queued evaluations"
        # past MAX_WAITING waiting evaluations, one more is refused at once, not queued
        queued += [pool.submit(post) for _ in range(MAX_WAITING - 8)]
        assert _wait_until(lambda: live.calls == MAX_WAITING)
        status, headers, answer = _request(fake_server.url + "/faithfulness", body, token=token)
        assert status == 503 and headers["Retry-After"] == "1"
        assert "too many evaluations" in json.loads(answer)["error"]
        live.go.set()
        assert [q.result(timeout=60) for q in queued] == [200] * MAX_WAITING


def test_a_busy_port_is_refused_before_the_model_loads(small_run_dir, monkeypatch, capsys):
    import circuits.app.serve as serve_module
    from circuits.app.cli import main

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(serve_module, "LiveEvaluator", no_model)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["serve", str(small_run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is in use" in err and "--port 0" in err and "Traceback" not in err


@pytest.mark.slow  # three model loads and three (shortened) fits: about 40 s on 2 cores
def test_a_run_with_the_optimal_ablation_is_served_with_evaluates_f(tmp_path, monkeypatch, capsys):
    """serve rebuilds the run's optimal ablation (fit on the run's attribution prompts with its
    metric and seed) as `circuits evaluate` and discovery do, so all three give one f."""
    import attribution.ablations.optimal as optimal
    from circuits.app.cli import main
    from circuits.app.discovery import DiscoverySettings, discover

    fit = optimal.fit_constants

    def short_fit(*args, **kwargs):  # the default 50 Adam steps per node take a minute here
        return fit(*args, **{**kwargs, "steps": 2})

    monkeypatch.setattr(optimal, "fit_constants", short_fit)
    run = tmp_path / "run"
    settings = DiscoverySettings(
        n_examples=4, n_eval=6, steps=1, bootstrap=0, seed=1, batch_size=4, ablation="optimal"
    )
    discover(settings, run, quiet=True)
    recorded = json.loads((run / "metrics.json").read_text())["faithfulness"]["f"]

    srv = make_server(run, 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.effective_port}"
    try:
        assert srv.live.ablation.name == "optimal" and len(srv.live.ablation.reference) == 4
        circuit = [e.name for e in load_run_graph(run).edges_in_graph.values()]
        status, served = _post(srv, circuit)
    finally:
        srv.close()
        thread.join(10)
    assert status == 200, served
    # 6 held-out prompts; the ablation is refit on the run's 4 attribution prompts, as serve does
    args = [str(run / "graph.json"), "--n-examples", "6", "--bootstrap", "0", "--json", "--quiet"]
    assert main(["evaluate", *args]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ablation"] == "optimal" and evaluated["n_examples"] == served["n_examples"]
    assert served["f"] == pytest.approx(evaluated["f"], rel=1e-6, abs=1e-9)
    assert served["f"] == pytest.approx(recorded, rel=1e-4, abs=1e-5)


def test_serve_reads_the_run_record_and_graph_file_once(small_run_dir, monkeypatch):
    """The page and the live evaluator share one reading of the run folder: metrics.json is
    parsed once and the graph file hashed (checked) and loaded once."""
    import circuits.app.integrity as integrity
    from circuits.app.run import RunRecord

    records, hashed = [], []
    real_load, real_sha = RunRecord.load.__func__, integrity.sha256_file
    monkeypatch.setattr(
        RunRecord, "load", classmethod(lambda cls, d: records.append(d) or real_load(cls, d))
    )
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(p) or real_sha(p))
    srv = make_server(small_run_dir, 0)
    try:
        assert len(records) == 1, records
        assert [Path(p).name for p in hashed] == ["scores.safetensors"]
        assert srv.live.graph.n_edges > 0
    finally:
        srv.close()
