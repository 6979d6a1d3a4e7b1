"""The explorer's files in a run folder, kept up to date by ``circuits report``."""

from __future__ import annotations

import os
from pathlib import Path

from circuits.app.explorer.page import load_run_graph, write_explorer
from circuits.app.explorer.supernodes import load_supernodes
from circuits.app.run import RunRecord

__all__ = ["draw_supernodes", "update_run_folder"]


def draw_supernodes(run_dir: str | os.PathLike[str]) -> bool:
    """Redraw ``RUN/circuit.png``/``.svg`` with the groups of ``RUN/supernodes.json`` as
    labelled boxes (title as ``circuits discover`` writes it); False when there is no file."""
    from circuits.app.figures import draw_circuit

    graph = load_run_graph(run_dir)
    groups = load_supernodes(run_dir, set(graph.layout.node_by_name))
    if groups is None:
        return False
    record = RunRecord.load(run_dir)
    title = f"{record.task.get('name', 'task')} on {record.model.get('name', 'model')}"
    draw_circuit(
        graph,
        Path(run_dir) / "circuit",
        title=f"{title}: {graph.count_included_edges()} edges",
        supernodes=[(s.name, s.nodes) for s in groups.supernodes],
    )
    return True


def update_run_folder(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw the supernodes (when ``supernodes.json`` exists) and rewrite ``explorer.html``;
    returns the files written (none for a folder without a graph file, whose report is still
    rebuilt from ``metrics.json`` and the figures)."""
    graph_files = ("scores.safetensors", "graph.json", "graph.graphml")
    if not any((Path(run_dir) / name).is_file() for name in graph_files):
        return []
    written = []
    if draw_supernodes(run_dir):
        written += [Path(run_dir) / "circuit.png", Path(run_dir) / "circuit.svg"]
    written.append(write_explorer(run_dir))
    return written
