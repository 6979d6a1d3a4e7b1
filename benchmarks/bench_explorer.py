"""Load time of the explorer page at GPT-2 small's size, in headless Chromium.

Run (from the repository root; needs chromium, chromium-driver and selenium)::

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_explorer [--repeats 3]

The page holds a graph of GPT-2 small's shape (12 layers, 12 heads: 32,491 edges; random
scores, no weights: the explorer needs only the graph) with its top 200 edges as the circuit.
Times, best of ``--repeats`` (each in a new browser, so nothing is cached): from navigation
to the page's ready flag (parse, Cytoscape set-up, first drawing), and redrawing at 2,000 and
at all 32,491 edges after the size field changes. Target: load under 5 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from circuits.app.explorer import explorer_data, render_explorer
from graphs import Graph, ModelSpec


def gpt2_small_page(path: Path, seed: int = 0, n_circuit: int = 200) -> Graph:
    """Write an explorer page of a GPT-2-small-shaped graph with random scores (seeded) and its
    top ``n_circuit`` edges as the circuit; returns the graph."""
    graph = Graph(ModelSpec(n_layers=12, n_heads=12, model_name="gpt2-shape"))
    gen = torch.Generator().manual_seed(seed)
    graph.set_scores(torch.randn(graph.scores.shape, generator=gen))
    top = torch.zeros_like(graph.in_graph).flatten()
    top[graph.ranked_edge_indices()[:n_circuit]] = True
    graph.set_in_graph(top.view_as(graph.in_graph))
    path.write_text(render_explorer(explorer_data(graph, {"task": {"name": "random"}})))
    return graph


def _redraw(driver, n: int) -> float:
    t0 = time.perf_counter()
    driver.execute_script(
        "const f = document.getElementById('size-value'); f.value = arguments[0];"
        "f.dispatchEvent(new Event('change'));",
        n,
    )
    assert driver.find_element("id", "drawn-count").text == str(n)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser import start_chromium  # the tests' flags for a closed network

    page = Path(tempfile.mkdtemp()) / "gpt2.html"
    graph = gpt2_small_page(page)
    print(f"page: {graph.n_edges} edges, {page.stat().st_size / 1e6:.2f} MB")
    load, at_2000, at_all = [], [], []
    for _ in range(args.repeats):
        driver = start_chromium()
        try:
            t0 = time.perf_counter()
            driver.get(page.as_uri())
            while not driver.execute_script("return document.body.dataset.ready"):
                time.sleep(0.01)
            load.append(time.perf_counter() - t0)
            at_2000.append(_redraw(driver, 2000))
            at_all.append(_redraw(driver, graph.n_edges))
        finally:
            driver.quit()
    print(f"load {min(load):.2f} s, redraw at 2,000 edges {min(at_2000):.2f} s, "
          f"at all {graph.n_edges} {min(at_all):.2f} s (best of {args.repeats})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
