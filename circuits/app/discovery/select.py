"""The job's search step: the minimal faithful circuit on the train split, over edges or, for
a ``--positions`` run, over position-aware edges ``(span, upstream, port)``; both shapes take
the same target and the same search (:mod:`circuits.search.minimal`)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from attribution import RunSetup
from attribution.data import PromptPairs
from circuits.app.checks import target_warnings
from circuits.app.discovery.settings import DiscoverySettings
from circuits.search.faithfulness import CircuitEvaluator
from circuits.search.minimal import MinimalCircuit, minimal_circuit, minimal_position_circuit
from graphs import Graph

__all__ = ["minimal_search", "warn_about_target"]


def warn_about_target(settings: DiscoverySettings) -> None:
    """A ``UserWarning`` per problem of the target (before the search, which may take long and
    cannot meet such a target with every edge)."""
    for warning in target_warnings(settings.parsed_target):
        warnings.warn(f"{warning['message']}; {warning['fix']}", UserWarning, stacklevel=3)


def minimal_search(
    bridge: Any,
    graph: Graph,
    train: PromptPairs,
    settings: DiscoverySettings,
    setup: RunSetup,
    *,
    target: tuple[float, float] | None = None,
    by_position: bool = False,
    quiet: bool = False,
) -> MinimalCircuit:
    """The smallest prefix of the score ranking that meets ``target`` (default: ``settings``'
    target) on ``train``: its mask ``[n_forward, n_backward]``, or ``[n_spans, n_forward,
    n_backward]`` when ``by_position``; the graph is not changed."""
    target = settings.parsed_target if target is None else target
    quiet_setup = dataclasses.replace(setup, quiet=True)  # the search has its own progress bar
    if by_position:
        searcher = CircuitEvaluator(bridge, graph, train, setup=quiet_setup)
        return minimal_position_circuit(
            searcher, graph, target=target, absolute=settings.absolute, quiet=quiet
        )
    return minimal_circuit(
        bridge, graph, train, target=target, absolute=settings.absolute, quiet=quiet,
        setup=quiet_setup,
    )  # fmt: skip
