"""The job's evaluation step, on the held-out (test) split: a circuit's faithfulness with its
bootstrap interval and random circuits of its size, the faithfulness curve, and the model's
behaviour on the prompts. A position-aware circuit goes through the same evaluator (its mask
``[n_spans, n_forward, n_backward]``, its curve over position-aware edges)."""

from __future__ import annotations

from typing import Any

import torch

from circuits.app.discovery.settings import DiscoverySettings
from circuits.search.faithfulness import (
    CircuitEvaluator,
    Faithfulness,
    FaithfulnessCurve,
    evaluate,
    faithfulness_curve,
    position_faithfulness_curve,
)
from circuits.tasks.accuracy import prompt_behaviour
from graphs import Graph

__all__ = ["behaviour", "held_out_curve", "held_out_faithfulness"]


def held_out_faithfulness(
    bridge: Any,
    graph: Graph,
    held_out: CircuitEvaluator,
    settings: DiscoverySettings,
    circuit: torch.Tensor | None = None,
) -> Faithfulness:
    """f of ``circuit`` (default: the graph's circuit) on the held-out evaluator's prompts."""
    return evaluate(
        bridge, graph, held_out.data, circuit=circuit, bootstrap=settings.bootstrap,
        random_baseline=True, seed=settings.seed, evaluator=held_out,
    )  # fmt: skip


def held_out_curve(
    bridge: Any,
    graph: Graph,
    held_out: CircuitEvaluator,
    settings: DiscoverySettings,
    *,
    by_position: bool = False,
) -> FaithfulnessCurve:
    """The faithfulness curve on the held-out prompts, over edges or position-aware edges."""
    if by_position:
        return position_faithfulness_curve(
            held_out, graph, fractions=tuple(settings.fractions), absolute=settings.absolute,
            random_baseline=True, seed=settings.seed,
        )  # fmt: skip
    return faithfulness_curve(
        bridge, graph, held_out.data, fractions=tuple(settings.fractions),
        absolute=settings.absolute, random_baseline=True, seed=settings.seed, evaluator=held_out,
    )  # fmt: skip


def behaviour(bridge: Any, held_out: CircuitEvaluator, settings: DiscoverySettings) -> dict:
    """The model's own behaviour on the held-out prompts (accuracy and the like)."""
    return prompt_behaviour(
        bridge, held_out.data, settings.task_metric, batch_size=settings.batch_size
    )
