"""``circuits serve RUN``: the run's explorer with live ablation, on a local web server.

``GET /`` (or ``/explorer.html``) serves the explorer page with live ablation switched on;
``POST /faithfulness`` with ``{"edges": ["input->a0.h1<q>", ...]}`` answers the faithfulness of
that edge set on the run's held-out prompts, evaluated by
:func:`circuits.search.faithfulness.evaluate` (``circuit=``) on the run's model, task, metric
and ablation, reloaded from the run record as ``circuits evaluate`` does::

    {"f": ..., "ci": [lo, hi], "ci_level": 0.95, "m_full": ..., "m_circuit": ...,
     "m_empty": ..., "n_edges": ..., "n_examples": ..., "warnings": [...]}

Bad requests get a JSON ``{"error": message}``: 400 for malformed JSON, a wrong shape or unknown
edges, 413 for a body over :data:`MAX_BODY` bytes, 405 for a wrong method, 404 for other paths.
Evaluations run one at a time (one lock): the evaluator installs hooks on the shared model, so
two at once would see each other's patches.

Server library: `waitress <https://docs.pylonsproject.org/projects/waitress/>`_, the Pylons
project's production WSGI server. It is pure Python with no dependencies (installs anywhere
torch does), parses HTTP itself (so this module handles no raw requests), enforces the body
limit before the application sees the request, and serves from a thread pool, so the page
stays responsive while an evaluation runs. A web framework would add nothing for three routes,
so the application is plain WSGI. The server binds to 127.0.0.1 only: it runs a model on
request and must not be reachable from other machines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from circuits.app.explorer.page import explorer_page, load_run_graph
from circuits.app.run import RunRecord
from graphs.errors import CircuitDiscoveryError, UnknownEdgeError

__all__ = ["MAX_BODY", "HOST", "LiveEvaluator", "make_app", "make_server", "serve"]

HOST = "127.0.0.1"
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
        data: str | os.PathLike[str] | None = None,
        allow_changed_data: bool = False,
    ):
        from circuits.app.discovery import DiscoverySettings, load_for_task
        from circuits.app.integrity import check_prompt_file
        from circuits.app.prompts import split_pairs
        from circuits.search.faithfulness import CircuitEvaluator

        record = RunRecord.load(run_dir)
        self.graph = load_run_graph(run_dir)
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
        mean_data = None
        if self.settings.ablation == "mean":
            n_train = int(task.get("n_attribution") or self.settings.n_eval)
            mean_data, _ = split_pairs(self.settings, tokenizer, "train", n_train)
        self.metric = self.settings.task_metric
        self.evaluator = CircuitEvaluator(
            self.model, self.graph, self.data, self.metric, ablation=self.settings.ablation,
            mean_data=mean_data, batch_size=self.settings.batch_size,
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


def make_app(page: str, live: LiveEvaluator):
    """The WSGI application: the page at ``/``, faithfulness at :data:`ENDPOINT`."""
    page_bytes = page.encode("utf-8")

    def app(environ, start_response):
        t0 = time.perf_counter()
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        headers = [("Cache-Control", "no-store")]
        try:
            if path in ("/", "/explorer.html"):
                if method not in ("GET", "HEAD"):
                    headers.append(("Allow", "GET, HEAD"))
                    raise RequestError(405, f"{method} {path}: the page answers GET only")
                status, body, kind = 200, page_bytes, "text/html; charset=utf-8"
            elif path == ENDPOINT:
                if method != "POST":
                    headers.append(("Allow", "POST"))
                    raise RequestError(
                        405, f'{method} {path}: POST JSON {{"edges": [...]}} to this address'
                    )
                result = live.faithfulness(_request_edges(environ))
                status, kind = 200, "application/json"
                body = json.dumps(result, allow_nan=False).encode()
            else:
                raise RequestError(404, f"no page {path}; the explorer is at /")
        except RequestError as err:
            status, kind = err.status, "application/json"
            body = json.dumps({"error": str(err)}).encode()
        except Exception as err:  # noqa: BLE001 - one bad evaluation must not stop the server
            log.exception("evaluation failed")
            status, kind = 500, "application/json"
            body = json.dumps({"error": f"{type(err).__name__}: {err}"}).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Content Too Large", 500: "Internal Server Error"}[status]  # fmt: skip
        headers += [("Content-Type", kind), ("Content-Length", str(len(body)))]
        start_response(f"{status} {reason}", headers)
        log.info(
            "%s %s %s %d %.0f ms", environ.get("REMOTE_ADDR", "-"), method, path, status,
            1000 * (time.perf_counter() - t0),
        )  # fmt: skip
        return [b"" if method == "HEAD" else body]

    return app


def make_server(run_dir: str | os.PathLike[str], port: int = 8000, **live_options: Any):
    """A waitress server for ``run_dir`` on 127.0.0.1:``port`` (0: a free port), not yet
    running: ``server.run()`` serves until Ctrl-C, ``server.close()`` stops it;
    ``server.effective_port`` is the port, ``server.live`` the :class:`LiveEvaluator`."""
    from waitress import create_server

    live = LiveEvaluator(run_dir, **live_options)
    page = explorer_page(run_dir, live={"endpoint": ENDPOINT})
    server = create_server(
        make_app(page, live), host=HOST, port=port, threads=4,
        max_request_body_size=_WAITRESS_BODY_LIMIT, ident="circuits-serve",
    )  # fmt: skip
    server.live = live  # the evaluator, for callers that check its answers
    return server


def serve(run_dir: str | os.PathLike[str], port: int = 8000, **live_options: Any) -> None:
    """Serve ``run_dir``'s explorer with live ablation until Ctrl-C (or SIGTERM)."""
    if not Path(run_dir).is_dir():
        raise RequestError(400, f"run folder {run_dir} does not exist")
    server = make_server(run_dir, port, **live_options)
    print(f"serving the explorer of {run_dir} at http://{HOST}:{server.effective_port}/ "
          "(Ctrl-C stops)", flush=True)  # fmt: skip
    try:
        server.run()  # waitress ends its loop on KeyboardInterrupt and stops its threads
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("stopped", flush=True)
