"""The job's last step: run it into an output folder. The folder is checked and locked for
the whole run (:mod:`circuits.app.output`), written to a temporary sibling folder and renamed
into place at the end (an interrupted run leaves nothing half-written), and ``metrics.json``
records the checksums of the graph files (:mod:`circuits.app.integrity`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from attribution.distributed import is_main_process
from circuits.app.discovery.job import Discovery, find_checked
from circuits.app.discovery.record import POSITION_GRAPHML, POSITION_JSON
from circuits.app.discovery.settings import DiscoverySettings
from circuits.app.output import check_output_folder, output_lock
from circuits.app.run import RunRecord
from graphs import Graph

__all__ = ["discover"]


def discover(
    settings: DiscoverySettings,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    quiet: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the whole job (:func:`circuits.app.discovery.find_circuit`) and write the run folder
    ``out``; returns the metrics dict.

    Raises:
        RunError: bad settings (before any model work).
        circuits.app.output.OutputError: an output folder it must not or cannot write, or
            one another run is writing (:func:`circuits.app.output.output_lock`; before any
            model work).
        circuits.models.zoo.ZooError, circuits.models.ModelLoadError: the model cannot be loaded.
    """
    out = Path(out)
    settings.check()
    check_output_folder(out, overwrite)
    if not is_main_process():  # under torchrun rank 0 alone writes, so it alone locks
        return _discover_and_write(settings, out, overwrite, quiet, command)
    with output_lock(out, command):  # held until the folder is in place
        check_output_folder(out, overwrite)  # again: a run may have finished before the lock
        return _discover_and_write(settings, out, overwrite, quiet, command)


def _discover_and_write(
    settings: DiscoverySettings, out: Path, overwrite: bool, quiet: bool, command: str | None
) -> dict[str, Any]:
    """:func:`discover` once its output folder is checked (and locked)."""
    from circuits.app.explorer import write_explorer
    from circuits.app.integrity import file_digests
    from circuits.app.report import write_report
    from graphs.atomic_files import atomic_directory

    t_start = time.perf_counter()
    run = find_checked(settings, quiet=quiet, command=command)  # discover checked them
    record = run.record
    if not is_main_process():  # under torchrun: every rank computed the same numbers
        record.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        return run.metrics
    check_output_folder(out, overwrite)  # again: the folder may have changed during the run
    _record_provenance(run, settings)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        t = time.perf_counter()
        # the whole graph again, with the position-aware circuit
        aware = _position_aware_graph(run) if run.positions is not None else None
        _write_graphs(run.graph, aware, tmp)
        _draw_figures(run, aware, settings, tmp)
        record.timings["figures_s"] = round(time.perf_counter() - t, 3)
        record.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        record.integrity = file_digests(tmp)  # checked by every reader of the graph files
        metrics = run.metrics
        RunRecord.from_dict(metrics).write(tmp)
        write_report(tmp)
        write_explorer(tmp)
    return metrics


def _record_provenance(run: Discovery, settings: DiscoverySettings) -> None:
    """Put into the graph's metadata how its scores were made, so `circuits evaluate` can
    check them and rebuild the run's prompts, spans and ablation."""
    graph, record = run.graph, run.record
    graph.metadata.update(
        model=settings.model, task=record.task["name"], metric=record.settings["metric"],
        method=settings.method, ablation=settings.ablation,
        split=record.task["attribution_split"], seed=settings.seed,
    )  # fmt: skip
    if settings.positions is not None:  # `circuits evaluate` rebuilds the same spans
        graph.metadata["positions"] = settings.positions
    # what rebuilds the ablation (evaluate and serve refit on as many reference prompts)
    graph.metadata.update(run.ablation.saved())
    if settings.data is not None:  # the prompts came from a file: evaluate finds it again,
        # from any folder, and knows whether it changed since
        task = record.task  # the path and hash the record holds, computed once
        graph.metadata.update(
            data=task["data_file"], data_sha256=task["data_sha256"],
            counterfactual=settings.counterfactual,
        )  # fmt: skip


def _write_graphs(graph: Graph, aware: Graph | None, tmp: Path) -> None:
    """The graph files: the run's main (position-agnostic) circuit, and for a ``--positions``
    run ``aware``, the graph with the position-aware circuit."""
    from graphs.graphml_io import save_graphml
    from graphs.io import save_graph

    # the position-agnostic layout: the run's main circuit, as a plain run writes it
    save_graphml(graph, tmp / "graph.graphml", positions=False)
    save_graph(graph, tmp / "graph.json")  # with --positions these keep span scores too
    save_graph(graph, tmp / "scores.safetensors")
    if aware is not None:
        save_graph(aware, tmp / POSITION_GRAPHML)  # one node per (node, span)
        save_graph(aware, tmp / POSITION_JSON)


def _position_aware_graph(run: Discovery) -> Graph:
    aware = run.graph.copy()
    aware.set_circuit(run.positions.circuit)
    return aware


def _draw_figures(
    run: Discovery, aware: Graph | None, settings: DiscoverySettings, tmp: Path
) -> None:
    """The circuit (and position-aware circuit), faithfulness curve and score histogram."""
    from circuits.app.figures import (
        draw_circuit,
        draw_position_circuit,
        plot_faithfulness_curve,
        plot_score_histogram,
    )

    graph = run.graph
    title = f"{run.record.task['name']} on {settings.model}"
    draw_circuit(graph, tmp / "circuit", title=f"{title}: {graph.count_included_edges()} edges")
    if aware is not None:
        n_aware = int(run.positions.circuit.edges.sum())
        draw_position_circuit(
            aware, tmp / "position_circuit.png",
            title=f"{title}: {n_aware} position-aware edges",
        )  # fmt: skip
    plot_faithfulness_curve(run.curve, tmp / "faithfulness_curve", minimal=run.minimal, title=title)
    plot_score_histogram(graph, tmp / "score_histogram", title=title)
