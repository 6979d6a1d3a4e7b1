"""The main job: score a model's edges on a task, find the minimal faithful circuit, evaluate
it on held-out prompts and write a run folder with graphs, metrics, figures and a report.

What a run is asked to do, validated before any model work, is :class:`DiscoverySettings`
(:mod:`.settings`); its steps are :mod:`.load` (the model), :mod:`.attribute` (prompts, graph,
method, ablation and edge scores), :mod:`.select` (the minimal circuit), :mod:`.evaluate`
(held-out faithfulness, curve and behaviour), :mod:`.record` (the run record, with
:mod:`.statistics`) and :mod:`.write` (the run folder), run in order by :mod:`.job`. A
``--positions`` run (``settings.positions``) is the same job with a second shape: the same
scores ranked per ``(span, edge)`` go through the same search and evaluation steps.

Data use: edges are scored and the circuit size is chosen on the task's *train* split; the
faithfulness, its confidence interval and the faithfulness curve are measured on the *test*
split, so the reported f is not the number the search optimised.

Under ``torchrun`` every rank scores and evaluates its shard of the prompts (see
:mod:`attribution.distributed`) and rank 0 writes the run folder.

Run folder (written to a temporary sibling folder and renamed into place at the end, so an
interrupted run leaves nothing half-written): ``graph.graphml``, ``graph.json``,
``scores.safetensors`` (the same graph: scores and circuit), ``metrics.json``, the figures
``circuit``, ``faithfulness_curve`` and ``score_histogram`` as PNG and SVG,
``report.md`` / ``report.html`` and the interactive ``explorer.html``
(:mod:`circuits.app.explorer`). The output folder is checked and locked for the whole run
(:mod:`circuits.app.output`), and ``metrics.json`` records the checksums of the graph files
(:mod:`circuits.app.integrity`).
"""

from circuits.app.discovery.job import Discovery, PositionRun, find_circuit, find_position_circuit
from circuits.app.discovery.load import load_for_task
from circuits.app.discovery.record import (
    POSITION_GRAPHML,
    POSITION_JSON,
    TOP_EDGES,
    TOP_POSITION_EDGES,
    version,
)
from circuits.app.discovery.settings import (
    DEVICE_MAP_STRATEGIES,
    DTYPES,
    POSITION_MODES,
    DiscoverySettings,
    check_positions,
)
from circuits.app.discovery.statistics import N_EXAMPLE_PAIRS, QUANTILES, top_overlap
from circuits.app.discovery.write import discover
from circuits.app.errors import RunError
from circuits.app.output import check_output_folder
from circuits.app.run import RUN_FORMAT

__all__ = [
    "DEVICE_MAP_STRATEGIES",
    "DTYPES",
    "N_EXAMPLE_PAIRS",
    "POSITION_GRAPHML",
    "POSITION_JSON",
    "POSITION_MODES",
    "QUANTILES",
    "RUN_FORMAT",
    "TOP_EDGES",
    "TOP_POSITION_EDGES",
    "Discovery",
    "DiscoverySettings",
    "PositionRun",
    "RunError",
    "check_output_folder",
    "check_positions",
    "discover",
    "find_circuit",
    "find_position_circuit",
    "load_for_task",
    "top_overlap",
    "version",
]
