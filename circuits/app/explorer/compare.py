"""Two runs side by side: ``circuits compare RUN_A RUN_B`` writes ``compare.html``.

What it states: each circuit's size and held-out f (with its CI), the edges both circuits hold
and those only one does, the Jaccard index of the two edge sets ``|A ∩ B| / |A ∪ B|``, and the
Spearman rank correlation of the two runs' scores over every edge of the graph (on ``|score|``
when both runs ranked by it, as they do by default; ties get their mean rank).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from circuits.app.explorer.data import explorer_data
from circuits.app.explorer.page import _json_for_script, load_run_graph, static_text
from circuits.app.run import RunRecord
from graphs.atomic_files import atomic_write
from graphs.errors import CircuitDiscoveryError

__all__ = ["COMPARE_HTML", "CompareError", "compare_runs", "spearman", "write_compare"]

COMPARE_HTML = "compare.html"


class CompareError(CircuitDiscoveryError, ValueError):
    """Two runs that cannot be compared edge by edge (graphs of different shapes)."""


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of ``a`` and ``b`` (``[n]``): the Pearson correlation of
    their mean-tie ranks; None when either is constant or n < 2."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise CompareError(f"spearman: lengths differ ({len(a)} and {len(b)})")
    if len(a) < 2:
        return None
    ra, rb = _ranks(a) - (len(a) + 1) / 2, _ranks(b) - (len(b) + 1) / 2
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def compare_runs(run_a: str | os.PathLike[str], run_b: str | os.PathLike[str]) -> dict[str, Any]:
    """The numbers of the comparison (see the module docstring) and each run's explorer data."""
    runs = []
    for run in (run_a, run_b):
        record = RunRecord.load(run).to_dict()
        runs.append((Path(run), record, load_run_graph(run)))
    (pa, ra, ga), (pb, rb, gb) = runs
    shape = ("n_layers", "n_heads", "n_kv_heads", "parallel_attn_mlp")
    if any(getattr(ga.spec, k) != getattr(gb.spec, k) for k in shape):
        describe = ", ".join(f"{k} {getattr(ga.spec, k)} vs {getattr(gb.spec, k)}" for k in shape)
        raise CompareError(
            f"{pa} and {pb} are runs on models of different shapes ({describe}), so their edges "
            "do not correspond; compare runs on the same model"
        )
    real = ga.real_edges
    a, b = ga.in_graph & real, gb.in_graph & real
    absolute = bool(ra["settings"].get("absolute", True)) and bool(
        rb["settings"].get("absolute", True)
    )
    sa, sb = ga.scores[real].double().numpy(), gb.scores[real].double().numpy()
    if absolute:
        sa, sb = np.abs(sa), np.abs(sb)
    union = int((a | b).sum())

    def names(mask) -> list[dict[str, Any]]:
        idx = mask.nonzero().tolist()
        rows = [
            {"edge": ga.layout.edge_name(u, p), "score_a": float(ga.scores[u, p]),
             "score_b": float(gb.scores[u, p])}
            for u, p in idx
        ]  # fmt: skip
        return sorted(rows, key=lambda r: -max(abs(r["score_a"]), abs(r["score_b"])))

    def f_of(record):
        faith = record.get("faithfulness") or {}
        return {"f": faith.get("f"), "ci": faith.get("ci"),
                "n_edges": (record.get("circuit") or {}).get("n_edges")}  # fmt: skip

    return {
        "a": {"path": str(pa), **f_of(ra)},
        "b": {"path": str(pb), **f_of(rb)},
        "shared": names(a & b),
        "only_a": names(a & ~b),
        "only_b": names(b & ~a),
        "jaccard": int((a & b).sum()) / union if union else None,
        "spearman": spearman(sa, sb),
        "spearman_on": "|score|" if absolute else "score",
        "n_edges_graph": int(real.sum()),
        "data_a": explorer_data(ga, ra),
        "data_b": explorer_data(gb, rb),
    }


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.4g}"


def render_compare(result: dict[str, Any]) -> str:
    """``compare.html``: the statistics, both circuits drawn side by side (edges both hold in
    dark grey, an edge only this run holds in orange) and the edge lists."""
    import html

    def run_line(key):
        r = result[key]
        ci = f" [{_fmt(r['ci'][0])}, {_fmt(r['ci'][1])}]" if r.get("ci") else ""
        return (f"<td>{html.escape(r['path'])}</td><td>{_fmt(r['n_edges'])}</td>"
                f"<td id='f-{key}'>{_fmt(r['f'])}{ci}</td>")  # fmt: skip

    def rows(edges):
        return "".join(
            f"<tr><td>{html.escape(e['edge'])}</td><td>{e['score_a']:.4g}</td>"
            f"<td>{e['score_b']:.4g}</td></tr>"
            for e in edges
        )

    lists = "".join(
        f"<h2>{title} ({len(result[key])})</h2><table id='{key}'><tr><th>edge</th>"
        f"<th>score A</th><th>score B</th></tr>{rows(result[key])}</table>"
        for key, title in (("shared", "In both"), ("only_a", "Only in A"), ("only_b", "Only in B"))
    )
    stats = (
        "<table id='stats'><tr><th></th><th>run</th><th>edges</th><th>held-out f [CI]</th></tr>"
        f"<tr><th>A</th>{run_line('a')}</tr><tr><th>B</th>{run_line('b')}</tr></table>"
        f"<p>Edge-set Jaccard <b id='jaccard'>{_fmt(result['jaccard'])}</b> "
        f"({len(result['shared'])} shared, {len(result['only_a'])} only in A, "
        f"{len(result['only_b'])} only in B); Spearman rank correlation of "
        f"{result['spearman_on']} over all {result['n_edges_graph']} edges "
        f"<b id='spearman'>{_fmt(result['spearman'])}</b>.</p>"
    )
    payload = {"a": result["data_a"], "b": result["data_b"]}
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Compare runs</title>'
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:12px}"
        ".views{display:flex;gap:10px}.view{flex:1;height:560px;border:1px solid #ddd}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;font-size:13px}"
        "</style></head><body><h1>Two runs compared</h1>"
        + stats
        + "<p>Edges both circuits hold are dark grey; an edge only this run's circuit holds is "
        "orange.</p><div class='views'><div><h2>A</h2></div><div><h2>B</h2></div></div>"
        "<div class='views'><div class='view' id='cy-a'></div><div class='view' id='cy-b'></div></div>"
        + lists
        + f'<script type="application/json" id="compare-data">{_json_for_script(payload)}</script>\n'
        + f"<script>{static_text('cytoscape.min.js')}</script>\n"
        + f"<script>{static_text('edge_route.js')}</script>\n"
        + f"<script>{static_text('compare.js')}</script>\n</body></html>\n"
    )


def write_compare(
    run_a: str | os.PathLike[str],
    run_b: str | os.PathLike[str],
    out: str | os.PathLike[str] = COMPARE_HTML,
) -> tuple[Path, dict[str, Any]]:
    """Write the comparison page to ``out``; returns its path and the numbers."""
    result = compare_runs(run_a, run_b)
    out = Path(out)
    text = render_compare(result).encode("utf-8")
    with atomic_write(out) as f:
        f.write(text)
    return out, result
