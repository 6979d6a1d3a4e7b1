"""What users call: model loading, pruning, faithfulness and minimal-circuit search."""

from circuits.faithfulness import (
    DEFAULT_FRACTIONS,
    CircuitEvaluator,
    Faithfulness,
    FaithfulnessCurve,
    FaithfulnessError,
    evaluate,
    faithfulness_curve,
    random_circuit,
)
from circuits.minimal import MinimalCircuit, minimal_circuit
from circuits.models import (
    PROCESSING,
    SUPPORTED_ARCHITECTURES,
    ModelLoadError,
    UnsupportedArchitectureError,
    load_model,
)
from circuits.prune import (
    circuit_size,
    greedy,
    node_scores,
    prune_dead_edges,
    threshold,
    top_fraction,
    top_n,
)
from circuits.random_models import random_hf_model

__all__ = [
    "DEFAULT_FRACTIONS",
    "PROCESSING",
    "SUPPORTED_ARCHITECTURES",
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
