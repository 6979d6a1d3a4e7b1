"""The explorer page: one self-contained HTML file (Cytoscape.js, the page's script and the
run's data inlined), so it opens from ``file://`` with no network.

:func:`write_explorer` writes ``RUN/explorer.html``; ``circuits discover`` and ``circuits
report`` call it, and ``circuits serve`` serves the same page with live ablation switched on.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from circuits.app.explorer.data import explorer_data
from circuits.app.explorer.supernodes import load_supernodes
from circuits.app.run import RunRecord
from graphs import Graph
from graphs.atomic_files import atomic_write

__all__ = [
    "CYTOSCAPE_SHA256",
    "EXPLORER_HTML",
    "explorer_page",
    "load_run",
    "load_run_graph",
    "render_explorer",
    "static_text",
    "write_explorer",
]

EXPLORER_HTML = "explorer.html"
CYTOSCAPE_SHA256 = "081591ab735b2b6a3b31a3c60f8f3a3e2fee8c92939e0c7820ad1208571b6cd8"


@cache
def static_text(name: str) -> str:
    """A vendored or own file of ``circuits/app/explorer/static`` (Cytoscape.js is checked
    against the hash recorded in its README)."""
    text = files("circuits.app.explorer").joinpath("static", name).read_text(encoding="utf-8")
    if name == "cytoscape.min.js":
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest != CYTOSCAPE_SHA256:  # a damaged installation, not bad input (test_errors.py)
            raise RuntimeError(
                f"the vendored cytoscape.min.js has sha256 {digest}, not {CYTOSCAPE_SHA256}: "
                "the package is damaged; reinstall circuit-discovery"
            )
    return text


def _json_for_script(data: Any) -> str:
    # inside <script>, "</" would end the element; "<\/" is the same JSON string
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
#side { width: 340px; overflow-y: auto; padding: 10px 14px; border-right: 1px solid #ddd; box-sizing: border-box; }
#main { flex: 1; position: relative; }
#cy { position: absolute; inset: 0; }
h1 { font-size: 17px; margin: 4px 0 8px; } h2 { font-size: 14px; margin: 14px 0 4px; }
h3 { font-size: 14px; margin: 8px 0 2px; } h4 { font-size: 13px; margin: 6px 0 2px; }
#size { width: 100%; } #size-value { width: 80px; }
#tooltip { position: absolute; display: none; background: #fffffe; border: 1px solid #888;
  padding: 4px 7px; font-size: 12px; pointer-events: none; z-index: 10; max-width: 320px; }
#node-panel ol { padding-left: 18px; margin: 2px 0; font-size: 12px; }
#node-panel { max-height: 260px; overflow-y: auto; border: 1px solid #eee; padding: 0 4px; }
.legend span { display: inline-block; margin-right: 8px; }
.pos { color: #2166ac; font-weight: bold; } .neg { color: #b2182b; font-weight: bold; }
#live { display: none; background: #f4f8ff; border: 1px solid #c6d8f5; padding: 6px 8px; }
#live-f { font-size: 18px; font-weight: bold; }
#edit-state:empty { display: none; } #edit-state { color: #8a4b00; }
#spinner { display: none; width: 12px; height: 12px; border: 2px solid #9bb; border-top-color: #235;
  border-radius: 50%; animation: spin 0.8s linear infinite; vertical-align: middle; }
@keyframes spin { to { transform: rotate(360deg); } }
#export-json { display: none; width: 100%; height: 120px; font-size: 11px; }
#download { display: none; }
input[type=text], textarea { width: 100%; box-sizing: border-box; }
"""

_BODY = """
<div id="side">
<h1>{title}</h1>
<p class="legend"><span class="pos">— positive score</span><span class="neg">— negative score</span>
<br>q solid, k dashed, v dotted, MLP dash-dot; width ∝ |score|</p>
<h2>Circuit size</h2>
<input id="size" type="range" min="0" step="1" aria-label="circuit size (edges, by rank)">
<p>top <input id="size-value" type="number" min="0" step="1"> of <span id="n-total"></span> edges
by the run's ranking; <span id="drawn-count"></span> drawn</p>
<p id="edit-state"></p>
<p id="curve-f"></p>
<button id="reset">back to the run's circuit</button>
<div id="live"><h2>Live ablation <span id="spinner"></span></h2>
<p>click an edge (or tick it in a node's list) to take it out or put it in</p>
<div>f of the circuit drawn = <span id="live-f">—</span> CI <span id="live-ci">—</span></div>
<div>m(C) = <span id="live-m">—</span></div><div id="live-status"></div></div>
<h2>Show edges into</h2>
<label><input class="kind" type="checkbox" value="q" checked> q</label>
<label><input class="kind" type="checkbox" value="k" checked> k</label>
<label><input class="kind" type="checkbox" value="v" checked> v</label>
<label><input class="kind" type="checkbox" value="mlp" checked> MLP</label>
<label><input class="kind" type="checkbox" value="logits" checked> logits</label>
<h2>Search</h2>
<input id="search" type="text" placeholder="node name, e.g. a3.h0 or m2 (Enter: zoom)">
<span id="search-count"></span>
<div id="node-panel"><p>click a node for its edges</p></div>
<h2>Supernodes</h2>
<p>select nodes (click; shift-drag for a box), then:</p>
<input id="group-name" type="text" placeholder="name, e.g. name movers">
<textarea id="group-note" rows="2" placeholder="annotation"></textarea>
<button id="group">group selected</button> <button id="pin">pin / unpin selected</button>
<button id="clear-selection">clear selection</button>
<div id="group-message"></div>
<ul id="supernode-list"></ul>
<button id="export">export supernodes.json</button>
<a id="download" download="supernodes.json">download</a>
<textarea id="export-json" readonly></textarea>
<p>Put the file in the run folder and run <code>circuits report RUN</code> to draw the groups in
the circuit figure.</p>
</div>
<div id="main"><div id="cy"></div><div id="tooltip"></div></div>
"""


def render_explorer(data: dict[str, Any]) -> str:
    """The page for :func:`circuits.app.explorer.data.explorer_data`'s ``data``."""
    title = html.escape(f"Circuit explorer: {data['title']}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'  # no favicon request, from file:// or the server
        f"<title>{title}</title>\n<style>{_CSS}</style></head>\n<body>"
        + _BODY.replace("{title}", title)
        + f'<script type="application/json" id="explorer-data">{_json_for_script(data)}</script>\n'
        + f"<script>{static_text('cytoscape.min.js')}</script>\n"
        + f"<script>{static_text('edge_route.js')}</script>\n"
        + f"<script>{static_text('explorer.js')}</script>\n</body></html>\n"
    )


def load_run_graph(run_dir: str | os.PathLike[str], record: RunRecord | None = None) -> Graph:
    """The run's graph (scores and circuit) from ``scores.safetensors``, else ``graph.json``,
    checked against the run record's checksums (:mod:`circuits.app.integrity`); ``record``:
    the folder's record when the caller has already read it."""
    from circuits.app.integrity import load_checked_graph

    run_dir = Path(run_dir)
    for name in ("scores.safetensors", "graph.json", "graph.graphml"):
        if (run_dir / name).is_file():
            return load_checked_graph(run_dir / name, record)
    from circuits.app.run import RunFileError

    raise RunFileError(
        f"{run_dir} has no graph file (scores.safetensors, graph.json or graph.graphml); "
        "run `circuits discover` to make a run folder"
    )


def load_run(run_dir: str | os.PathLike[str]) -> tuple[RunRecord, Graph]:
    """A run folder's record and checked graph, each read once."""
    record = RunRecord.load(run_dir)
    return record, load_run_graph(run_dir, record)


def explorer_page(
    run_dir: str | os.PathLike[str],
    live: dict[str, Any] | None = None,
    *,
    run: tuple[RunRecord, Graph] | None = None,
) -> str:
    """The explorer page of a run folder (its supernodes.json shown when there is one);
    ``live``: ``{"endpoint": URL, "token": TOKEN}`` of the faithfulness service (``circuits
    serve``), which the page sends its requests to; ``run``: :func:`load_run`'s answer when
    the caller has read the folder already."""
    record, graph = run or load_run(run_dir)
    supernodes = load_supernodes(run_dir, set(graph.layout.node_by_name))
    data = explorer_data(graph, record.to_dict(), supernodes=supernodes)
    data["live"] = live
    return render_explorer(data)


def write_explorer(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``RUN/explorer.html`` (atomically); returns its path."""
    path = Path(run_dir) / EXPLORER_HTML
    text = explorer_page(run_dir).encode("utf-8")
    with atomic_write(path) as f:
        f.write(text)
    return path
