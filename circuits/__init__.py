"""What users call: model loading, bundled models and tasks, pruning, faithfulness,
minimal-circuit search and the discovery job. Subpackages: ``circuits.models.zoo`` (bundled
models), ``circuits.tasks``, ``circuits.alignment`` (DAS), ``circuits.patchscopes``."""

from circuits.app.discovery import DiscoverySettings, discover
from circuits.models import (
    PROCESSING,
    SUPPORTED_ARCHITECTURES,
    ModelLoadError,
    UnsupportedArchitectureError,
    load_model,
    zoo,
)
from circuits.models.random import random_hf_model
from circuits.search.faithfulness import (
    DEFAULT_FRACTIONS,
    CircuitEvaluator,
    Faithfulness,
    FaithfulnessCurve,
    FaithfulnessError,
    evaluate,
    faithfulness_curve,
    random_circuit,
)
from circuits.search.minimal import MinimalCircuit, minimal_circuit
from circuits.search.select import (
    circuit_size,
    greedy,
    node_scores,
    prune_dead_edges,
    threshold,
    top_fraction,
    top_n,
)
from circuits.tasks import TASK_NAMES, get_task
from graphs.errors import CircuitDiscoveryError

__all__ = [
    "DEFAULT_FRACTIONS",
    "TASK_NAMES",
    "DiscoverySettings",
    "discover",
    "get_task",
    "zoo",
    "PROCESSING",
    "SUPPORTED_ARCHITECTURES",
    "CircuitDiscoveryError",
    "CircuitEvaluator",
    "Faithfulness",
    "FaithfulnessCurve",
    "FaithfulnessError",
    "MinimalCircuit",
    "ModelLoadError",
    "UnsupportedArchitectureError",
    "circuit_size",
    "evaluate",
    "faithfulness_curve",
    "greedy",
    "load_model",
    "minimal_circuit",
    "node_scores",
    "prune_dead_edges",
    "random_circuit",
    "random_hf_model",
    "threshold",
    "top_fraction",
    "top_n",
]
