"""What users call: model loading, bundled models and tasks, pruning, faithfulness,
minimal-circuit search and the discovery job. Subpackages: ``circuits.models.zoo`` (bundled
models), ``circuits.tasks``, ``circuits.alignment`` (DAS), ``circuits.patchscopes``."""

from importlib.metadata import PackageNotFoundError, version

from graphs.lazy import lazy_exports

try:
    __version__ = version("circuit-discovery")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Imported on first use (graphs/lazy.py says why); name -> the module that defines it.
_WHERE = {
    "DiscoverySettings": "circuits.app.discovery",
    "discover": "circuits.app.discovery",
    "PROCESSING": "circuits.models",
    "SUPPORTED_ARCHITECTURES": "circuits.models",
    "ModelLoadError": "circuits.models",
    "UnsupportedArchitectureError": "circuits.models",
    "load_model": "circuits.models",
    "zoo": "circuits.models",
    "random_hf_model": "circuits.models.random",
    "DEFAULT_FRACTIONS": "circuits.search.faithfulness",
    "CircuitEvaluator": "circuits.search.faithfulness",
    "Faithfulness": "circuits.search.faithfulness",
    "FaithfulnessCurve": "circuits.search.faithfulness",
    "FaithfulnessError": "circuits.search.faithfulness",
    "evaluate": "circuits.search.faithfulness",
    "faithfulness_curve": "circuits.search.faithfulness",
    "random_circuit": "circuits.search.faithfulness",
    "MinimalCircuit": "circuits.search.minimal",
    "minimal_circuit": "circuits.search.minimal",
    "circuit_size": "circuits.search.select",
    "greedy": "circuits.search.select",
    "node_scores": "circuits.search.select",
    "prune_dead_edges": "circuits.search.select",
    "threshold": "circuits.search.select",
    "top_fraction": "circuits.search.select",
    "top_n": "circuits.search.select",
    "TASK_NAMES": "circuits.tasks",
    "get_task": "circuits.tasks",
    "CircuitDiscoveryError": "graphs.errors",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = [
    "__version__",
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
