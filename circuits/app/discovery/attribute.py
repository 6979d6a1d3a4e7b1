"""The job's attribution step: the run's prompts (train and test split), its graph, method,
ablation and run setup, and the edge scores on the train split. With ``--positions`` the data
carries a position axis, so the same pass also fills the graph's per-span scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from attribution import RunSetup, attribute, get_method
from attribution.ablations import Ablation, build_ablation
from attribution.data import PromptPairs
from circuits.app.discovery.settings import DiscoverySettings
from circuits.app.prompts import prompt_pairs
from graphs import Graph, ModelSpec

__all__ = ["Prepared", "prepare", "score_edges"]


@dataclass
class Prepared:
    """Everything the run needs before scoring: the splits, the empty graph, the method, the
    ablation and the setup (metric, ablation, batch size) every later step runs with."""

    train: PromptPairs
    test: PromptPairs
    task_info: dict[str, Any]
    graph: Graph
    method: Any
    ablation: Ablation
    setup: RunSetup


def prepare(settings: DiscoverySettings, bridge: Any, tokenizer: Any, quiet: bool) -> Prepared:
    """The run's data, graph, method and ablation (fitted on the train split if it fits)."""
    metric = settings.task_metric
    train, test, task_info = prompt_pairs(settings, tokenizer)
    # the graph files record the model as the user named it, not the folder it loaded from
    graph = Graph(dataclasses.replace(ModelSpec.from_model(bridge), model_name=settings.model))
    method = get_method(
        settings.method, steps=settings.steps, quadrature_rule=settings.quadrature_rule,
        options=settings.method_options,
    )  # fmt: skip
    ablation = build_ablation(
        settings.ablation, train, metric=metric, seed=settings.seed, quiet=quiet
    )
    setup = RunSetup(metric, ablation, settings.batch_size, quiet=quiet)
    return Prepared(train, test, task_info, graph, method, ablation, setup)


def score_edges(settings: DiscoverySettings, bridge: Any, run: Prepared) -> Any:
    """Score every edge of ``run.graph`` on the train split (attribution's result)."""
    return attribute(
        bridge, run.graph, run.train, method=run.method,
        memory_budget_gb=settings.memory_budget_gb, setup=run.setup,
    )  # fmt: skip
