"""``circuits serve RUN``: the run's explorer with live ablation, on a local web server.

``GET /?token=TOKEN`` (or ``/explorer.html?token=TOKEN``) serves the explorer page with live
ablation switched on; ``POST /faithfulness`` with ``{"edges": ["input->a0.h1<q>", ...]}`` and
the header ``X-Circuits-Token: TOKEN`` answers the faithfulness of that edge set on the run's
held-out prompts, evaluated by :func:`circuits.search.faithfulness.evaluate` (``circuit=``) on
the run's model, task, metric and ablation, reloaded from the run record as ``circuits
evaluate`` does (the ablation restored by :func:`attribution.ablations.restore_ablation`)::

    {"f": ..., "ci": [lo, hi], "ci_level": 0.95, "m_full": ..., "m_circuit": ...,
     "m_empty": ..., "n_edges": ..., "n_examples": ..., "warnings": [...]}

Bad requests get a JSON ``{"error": message}``: 400 for malformed JSON, a wrong shape or unknown
edges, 403 for a Host other than ``127.0.0.1:PORT``/``localhost:PORT``, a foreign ``Origin`` or
a missing or wrong token, 413 for a body over :data:`MAX_BODY` bytes, 405 for a wrong method,
404 for other paths, 503 while :data:`MAX_WAITING` evaluations already wait.

Security: the server runs a model on request, so it binds to 127.0.0.1 only (not reachable
from other machines) and refuses what a web page open in the user's browser could send it: a
request whose Host is not this server's (DNS rebinding) and one without the run's random token
(cross-site requests: another page cannot read the token, which the served page carries and
sends in a header). The token is printed with the address, as Jupyter does.

Evaluations run one at a time (one lock): the evaluator installs hooks on the shared model, so
two at once would see each other's patches. Waiting evaluations each hold a server thread, so
at most :data:`MAX_WAITING` may wait and :data:`THREADS` is larger: the page and refusals are
always answered at once, however many evaluations queue.

Server library: `waitress <https://docs.pylonsproject.org/projects/waitress/>`_, the Pylons
project's production WSGI server. It is pure Python with no dependencies (installs anywhere
torch does), parses HTTP itself (so this module handles no raw requests), enforces the body
limit before the application sees the request, and serves from a thread pool, so the page
stays responsive while an evaluation runs. A web framework would add nothing for three routes,
so the application is plain WSGI.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import torch

from circuits.app.explorer.page import explorer_page, load_run
from circuits.app.run import RunRecord
from graphs import Graph
from graphs.errors import CircuitDiscoveryError, UnknownEdgeError

__all__ = [
    "HOST", "MAX_BODY", "MAX_WAITING", "THREADS", "LiveEvaluator", "PortError", "ServeApp",
    "make_server", "serve",
]  # fmt: skip

HOST = "127.0.0.1"
THREADS = 32  # server threads; cheap while they wait on the evaluation lock
MAX_WAITING = THREADS - 4  # evaluations running or waiting; the other threads answer the rest
TOKEN_HEADER = "X-Circuits-Token"
MAX_BODY = 1024 * 1024  # bytes; GPT-2 small's 32,491 edge names take about 700 kB
# waitress reads a body up to this size (spilling to a temporary file) so that the application
# can answer 413 with its message; a larger one is cut off by waitress itself
_WAITRESS_BODY_LIMIT = 64 * 1024 * 1024
ENDPOINT = "/faithfulness"
log = logging.getLogger("circuits.serve")


class RequestError(CircuitDiscoveryError, ValueError):
    """A request the server refuses; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class PortError(CircuitDiscoveryError, OSError):
    """The server cannot listen on the port asked for (in use, or not allowed)."""


class LiveEvaluator:
    """The run's model, graph and held-out prompts, with one :class:`CircuitEvaluator` built
    once (its clean and ablated runs shared by every request).

    ``n_examples`` defaults to the run's number of evaluation prompts and ``batch_size`` to
    the run's, so the full run circuit gets the run's held-out f."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        device: str | None = None,
        n_examples: int | None = None,
        batch_size: int | None = None,
        bootstrap: int = 1000,
        quiet: bool = True,
        data: str | os.PathLike[str] | None = None,
        allow_changed_data: bool = False,
        run: tuple[RunRecord, Graph] | None = None,
    ):
        from attribution.ablations import restore_ablation
        from circuits.app.discovery import DiscoverySettings, load_for_task
        from circuits.app.integrity import check_prompt_file
        from circuits.app.prompts import split_pairs
        from circuits.search.faithfulness import CircuitEvaluator

        record, self.graph = run or load_run(run_dir)
        task, settings = record.task, record.settings
        # the prompt file: where the user says it is now, else where the run recorded it
        data = str(data) if data is not None else task.get("data_file")
        if data is not None:
            check_prompt_file(data, task.get("data_sha256"), allow_changed=allow_changed_data)
        self.settings = DiscoverySettings(
            model=record.model.get("name") or "toy-gpt2",
            task=task.get("name") if data is None else "ioi",
            metric=settings.get("metric"),
            ablation=settings.get("ablation") or "patching",
            seed=int(task.get("seed", settings.get("seed", 0))),
            data=data,
            counterfactual=task.get("counterfactual"),
            n_eval=int(n_examples or task.get("n_evaluation") or 100),
            batch_size=int(batch_size or settings.get("batch_size") or 16),
            device=device,
        )
        self.settings.check()
        self.bootstrap = bootstrap
        self.model, tokenizer, _ = load_for_task(self.settings.model, device)
        self.graph.check_compatible(
            self.model, fix=f"the run folder's graph was not made for {self.settings.model}"
        )
        self.data, _ = split_pairs(self.settings, tokenizer, "test", self.settings.n_eval)
        self.metric = self.settings.task_metric
        # the run's ablation as discovery built it: its reference prompts are the run's
        # attribution prompts, loaded only if it takes any
        saved = {"ablation": self.settings.ablation, "n_reference": task.get("n_attribution")}
        self.ablation = restore_ablation(
            saved,
            lambda n: split_pairs(self.settings, tokenizer, "train", int(n or self.settings.n_eval))[0],
            metric=self.metric, seed=self.settings.seed, quiet=quiet,
        )  # fmt: skip
        self.evaluator = CircuitEvaluator(
            self.model, self.graph, self.data, self.metric, ablation=self.ablation,
            batch_size=self.settings.batch_size,
        )  # fmt: skip
        self.lock = threading.Lock()

    def edge_mask(self, names: list[str]) -> torch.Tensor:
        """Bool ``[n_forward, n_backward]`` mask of the named edges; RequestError (400) names
        the unknown ones."""
        mask = torch.zeros_like(self.graph.real_edges)
        unknown = []
        for name in names:
            try:
                up, port = self.graph.layout.edge_index(name)
            except UnknownEdgeError as err:
                unknown.append((name, str(err)))
                continue
            mask[up, port] = True
        if unknown:
            shown = "; ".join(msg for _, msg in unknown[:3])
            more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
            raise RequestError(400, f"{len(unknown)} unknown edge(s): {shown}{more}")
        return mask

    def faithfulness(self, names: list[str]) -> dict[str, Any]:
        """The faithfulness of the edge set ``names`` (every other edge ablated)."""
        from circuits.search.faithfulness import FaithfulnessError, evaluate

        mask = self.edge_mask(names)
        with self.lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                faith = evaluate(
                    self.model, self.graph, self.data, circuit=mask, bootstrap=self.bootstrap,
                    random_baseline=False, seed=self.settings.seed, evaluator=self.evaluator,
                )  # fmt: skip
            except FaithfulnessError as err:
                raise RequestError(400, str(err)) from None
        return {
            "f": faith.f, "ci": list(faith.ci) if faith.ci else None, "ci_level": faith.ci_level,
            "m_full": faith.m_full, "m_circuit": faith.m_circuit, "m_empty": faith.m_empty,
            "n_edges": faith.n_edges, "n_examples": faith.n_examples,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)],
        }  # fmt: skip


def _request_edges(environ: dict[str, Any]) -> list[str]:
    """The edge names of a POST body; RequestError for anything else."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise RequestError(400, "bad Content-Length header") from None
    if length > MAX_BODY:
        raise RequestError(413, f"request body of {length} bytes is over the {MAX_BODY} limit")
    body = environ["wsgi.input"].read(length) if length else b""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(
            400, f'body is not JSON ({err}); send {{"edges": ["input->a0.h0<q>", ...]}}'
        ) from None
    edges = data.get("edges") if isinstance(data, dict) else None
    if not isinstance(edges, list) or not all(isinstance(e, str) for e in edges):
        raise RequestError(400, 'body must be a JSON object {"edges": [edge names as strings]}')
    return edges


_REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}  # fmt: skip


class ServeApp:
    """The WSGI application: the page at ``/``, faithfulness at :data:`ENDPOINT`, for requests
    with this server's Host and the run's ``token`` only.

    ``live`` is anything with ``faithfulness(names) -> dict`` (a :class:`LiveEvaluator`);
    :meth:`listen_on` sets the port the Host header must name."""

    def __init__(self, page: str, live: Any, token: str, *, max_waiting: int = MAX_WAITING):
        self.page_bytes, self.live, self.token = page.encode("utf-8"), live, token
        self.hosts: frozenset[str] = frozenset()
        self.origins: frozenset[str] = frozenset()
        self.slots = threading.BoundedSemaphore(max_waiting)  # evaluations running or waiting

    def listen_on(self, port: int) -> None:
        """Accept the Hosts ``127.0.0.1:port`` and ``localhost:port`` (and without the port
        when it is 80, as browsers send them)."""
        names = (HOST, "localhost")
        hosts = {f"{name}:{port}" for name in names} | (set(names) if port == 80 else set())
        self.hosts = frozenset(hosts)
        self.origins = frozenset(f"http://{host}" for host in hosts)

    def check_request(self, environ: dict[str, Any]) -> None:
        """RequestError (403) unless the request names this server and carries the token."""
        host = environ.get("HTTP_HOST", "").lower()
        if host not in self.hosts:
            raise RequestError(
                403, f"Host {host or '(none)'!r} is not this server; open the address "
                f"`circuits serve` printed (http://{min(self.hosts, default=HOST)}/?token=...)",
            )  # fmt: skip
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin.lower() not in self.origins:
            raise RequestError(403, f"requests from the page {origin} are refused")
        given = environ.get("HTTP_" + TOKEN_HEADER.upper().replace("-", "_"))
        if given is None:
            given = parse_qs(environ.get("QUERY_STRING", "")).get("token", [None])[0]
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            what = "no token" if given is None else "a wrong token"
            raise RequestError(
                403, f"the request has {what}; open the address with ?token=... that `circuits "
                f"serve` printed, or send the token in the {TOKEN_HEADER} header",
            )  # fmt: skip

    def route(self, environ: dict[str, Any], headers: list) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` of a checked request; RequestError for a refusal."""
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if path in ("/", "/explorer.html"):
            if method not in ("GET", "HEAD"):
                headers.append(("Allow", "GET, HEAD"))
                raise RequestError(405, f"{method} {path}: the page answers GET only")
            return 200, self.page_bytes, "text/html; charset=utf-8"  # no lock: never waits
        if path != ENDPOINT:
            raise RequestError(404, f"no page {path}; the explorer is at /")
        if method != "POST":
            headers.append(("Allow", "POST"))
            raise RequestError(
                405, f'{method} {path}: POST JSON {{"edges": [...]}} to this address'
            )
        edges = _request_edges(environ)
        if not self.slots.acquire(blocking=False):
            headers.append(("Retry-After", "1"))
            raise RequestError(503, "too many evaluations are waiting; retry when one finishes")
        try:
            result = self.live.faithfulness(edges)
        finally:
            self.slots.release()
        return 200, json.dumps(result, allow_nan=False).encode(), "application/json"

    def __call__(self, environ, start_response):
        t0 = time.perf_counter()
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        headers = [("Cache-Control", "no-store")]
        try:
            self.check_request(environ)
            status, body, kind = self.route(environ, headers)
        except RequestError as err:
            status, kind = err.status, "application/json"
            body = json.dumps({"error": str(err)}).encode()
        except Exception as err:  # noqa: BLE001 - one bad evaluation must not stop the server
            log.exception("evaluation failed")
            status, kind = 500, "application/json"
            body = json.dumps({"error": f"{type(err).__name__}: {err}"}).encode()
        headers += [("Content-Type", kind), ("Content-Length", str(len(body)))]
        start_response(f"{status} {_REASONS[status]}", headers)
        log.info(
            "%s %s %s %d %.0f ms", environ.get("REMOTE_ADDR", "-"), method, path, status,
            1000 * (time.perf_counter() - t0),
        )  # fmt: skip
        return [b"" if method == "HEAD" else body]


def _listen(app: ServeApp, port: int):
    """A waitress server for ``app`` bound to 127.0.0.1:``port``; PortError when it cannot."""
    from waitress import create_server

    try:
        server = create_server(
            app, host=HOST, port=port, threads=THREADS,
            max_request_body_size=_WAITRESS_BODY_LIMIT, ident="circuits-serve",
        )  # fmt: skip
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            problem = f"port {port} is in use (another `circuits serve` or another program)"
        else:
            problem = f"cannot listen on {HOST}:{port} ({err.strerror or err})"
        raise PortError(f"{problem}; pass --port 0 for any free port, or another --port") from None
    app.listen_on(server.effective_port)
    return server


def make_server(
    run_dir: str | os.PathLike[str], port: int = 8000, *, live: Any = None, **live_options: Any
):
    """A waitress server for ``run_dir`` on 127.0.0.1:``port`` (0: a free port), not yet
    running: ``server.run()`` serves until Ctrl-C, ``server.close()`` stops it;
    ``server.effective_port`` is the port, ``server.token`` the token requests must carry,
    ``server.page_url`` the page's address with it, ``server.live`` the evaluator: ``live``,
    or a :class:`LiveEvaluator` (``live_options``) loaded after the port is bound, so a busy
    port fails (PortError) before the model loads."""
    token = secrets.token_urlsafe(32)
    run = load_run(run_dir)  # read once, for the page and the evaluator
    page = explorer_page(run_dir, live={"endpoint": ENDPOINT, "token": token}, run=run)
    app = ServeApp(page, live, token)
    server = _listen(app, port)
    if live is None:
        try:
            app.live = LiveEvaluator(run_dir, run=run, **live_options)
        except BaseException:
            server.close()
            raise
    server.live, server.token = app.live, token  # for callers that check its answers
    server.page_url = f"http://{HOST}:{server.effective_port}/?token={token}"
    return server


def serve(run_dir: str | os.PathLike[str], port: int = 8000, **live_options: Any) -> None:
    """Serve ``run_dir``'s explorer with live ablation until Ctrl-C (or SIGTERM)."""
    if not Path(run_dir).is_dir():
        raise RequestError(400, f"run folder {run_dir} does not exist")
    live_options.setdefault("quiet", False)  # an optimal ablation's fit shows its progress
    server = make_server(run_dir, port, **live_options)
    print(f"serving the explorer of {run_dir} at {server.page_url} (Ctrl-C stops)", flush=True)
    try:
        server.run()  # waitress ends its loop on KeyboardInterrupt and stops its threads
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("stopped", flush=True)
