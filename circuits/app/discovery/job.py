"""The job: its steps in order (load, attribute, select, evaluate), timed, and the run record
of what they found. A ``--positions`` run is the same job with a second shape: the same scores,
ranked per ``(span, edge)``, go through the same search and evaluation
(:func:`find_position_circuit`), and the record gains its ``positions`` section."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from attribution import RunSetup
from attribution.ablations import Ablation
from attribution.data import PromptPairs
from circuits.app.discovery.attribute import prepare, score_edges
from circuits.app.discovery.evaluate import behaviour, held_out_curve, held_out_faithfulness
from circuits.app.discovery.load import load_for_task
from circuits.app.discovery.record import Found, position_record, run_record
from circuits.app.discovery.select import minimal_search, warn_about_target
from circuits.app.discovery.settings import DiscoverySettings
from circuits.app.discovery.statistics import rounded
from circuits.app.run import RunRecord, strict_json
from circuits.search.faithfulness import CircuitEvaluator, FaithfulnessCurve
from circuits.search.minimal import MinimalCircuit
from circuits.search.select import position_circuit
from graphs import Circuit, Graph

__all__ = ["Discovery", "PositionRun", "find_circuit", "find_position_circuit"]


@dataclass
class PositionRun:
    """What :func:`find_position_circuit` found: the minimal position-aware circuit (its mask
    ``[S, F, K]`` in ``minimal.mask``) and the ``positions`` section of the run record."""

    minimal: MinimalCircuit
    circuit: Circuit
    record: dict[str, Any]


@dataclass
class Discovery:
    """What :func:`find_circuit` computed: the graph (scores, and the minimal circuit as
    ``in_graph``), the search, the faithfulness curve and the run record (every number of
    ``metrics.json``)."""

    graph: Graph
    minimal: MinimalCircuit
    curve: FaithfulnessCurve
    record: RunRecord
    #: with ``settings.positions``: the position-aware circuit and its comparison
    positions: PositionRun | None = None
    #: the ablation the run was made with (its graph files save how to rebuild it)
    ablation: Ablation | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The record as the ``metrics.json`` object (strict JSON values, rounded)."""
        return rounded(strict_json(self.record.to_dict()))


class _Laps:
    """The seconds each step took, as the record's ``timings`` names them."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._since = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._since, 3)
        self._since = now


def find_circuit(
    settings: DiscoverySettings, *, quiet: bool = False, command: str | None = None
) -> Discovery:
    """Load the model, score its edges, find the minimal circuit and measure it (no files).

    Raises:
        RunError: bad settings (before any model work).
        circuits.models.zoo.ZooError, circuits.models.ModelLoadError: the model cannot be loaded.
    """
    settings.check()
    return find_checked(settings, quiet=quiet, command=command)


def find_checked(settings: DiscoverySettings, *, quiet: bool, command: str | None) -> Discovery:
    """:func:`find_circuit` on settings already checked (the check reads and tokenises a
    whole prompt file, so :func:`circuits.app.discovery.discover`, which checks before it
    locks the folder, does not run it twice)."""
    laps = _Laps()
    bridge, tokenizer, source = load_for_task(
        settings.model, settings.device, dtype=settings.dtype, device_map=settings.device_map
    )
    laps.lap("load_model_s")
    run = prepare(settings, bridge, tokenizer, quiet)
    graph, train = run.graph, run.train
    laps.lap("data_s")
    result = score_edges(settings, bridge, run)
    laps.lap("attribution_s")
    warn_about_target(settings)
    minimal = minimal_search(bridge, graph, train, settings, run.setup, quiet=quiet)
    graph.set_in_graph(minimal.mask)
    laps.lap("search_s")
    # one evaluator for the held-out split: its clean and ablated runs serve every evaluation
    held_out = CircuitEvaluator(bridge, graph, run.test, setup=run.setup)
    faith = held_out_faithfulness(bridge, graph, held_out, settings)
    laps.lap("evaluate_s")
    curve = held_out_curve(bridge, graph, held_out, settings)
    laps.lap("curve_s")
    position_run = None
    if settings.positions is not None:  # the same scores, ranked per (span, edge)
        position_run = find_position_circuit(
            bridge, graph, train, held_out, minimal, faith.f, settings, run.setup, quiet=quiet
        )
        laps.lap("positions_s")
    shown = behaviour(bridge, held_out, settings)
    laps.lap("behaviour_s")
    found = Found(
        settings, source, bridge, tokenizer, run, result, minimal, faith, curve, shown,
        laps.timings, position_run.record if position_run is not None else None,
    )  # fmt: skip
    record = run_record(found, command)
    return Discovery(graph, minimal, curve, record, position_run, run.ablation)


def find_position_circuit(
    bridge: Any,
    graph: Graph,
    train: PromptPairs,
    held_out: CircuitEvaluator,
    agnostic: MinimalCircuit,
    agnostic_f: float,
    settings: DiscoverySettings,
    setup: RunSetup,
    *,
    quiet: bool = False,
) -> PositionRun:
    """The minimal position-aware circuit on ``train`` (same target as ``agnostic``), its f on
    the held-out evaluator's prompts (with a bootstrap interval and random position-aware
    circuits of its size), the position-aware faithfulness curve, and the comparison with the
    position-agnostic circuit ``agnostic`` (held-out f ``agnostic_f``): the job's search and
    evaluation steps over position-aware edges."""
    minimal = minimal_search(
        bridge, graph, train, settings, setup, target=agnostic.target, by_position=True,
        quiet=quiet,
    )  # fmt: skip
    circuit = position_circuit(graph, minimal.mask)
    faith = held_out_faithfulness(bridge, graph, held_out, settings, circuit.edges)
    curve = held_out_curve(bridge, graph, held_out, settings, by_position=True)
    aware = (minimal, circuit, faith, curve)
    return PositionRun(
        minimal, circuit, position_record(graph, settings, aware, agnostic, agnostic_f)
    )
