"""Edge scoring: EAP, EAP-IG (inputs and activations), clean-corrupted, exact patching, IFR,
RelP and ensembles of them.

Methods are objects registered in :mod:`attribution.methods`; ablations are objects registered
in :mod:`attribution.ablations`; :class:`RunSetup` holds what every call shares."""

from attribution.ablations import (
    Ablation,
    MeanAblation,
    OptimalAblation,
    Patching,
    ZeroAblation,
)
from attribution.attribute import AttributionResult, attribute
from attribution.data import DataError, PromptPairs
from attribution.methods import (
    AttributionMethod,
    GradientMethod,
    get_method,
    method_names,
    register,
)
from attribution.metrics import METRICS, get_metric, kl, log_prob, logit_diff, prob_diff
from attribution.quadrature import RULES, quadrature
from attribution.run_setup import RunSetup
from graphs.errors import CircuitDiscoveryError

__all__ = [
    "METHODS",
    "METRICS",
    "RULES",
    "Ablation",
    "AttributionMethod",
    "AttributionResult",
    "CircuitDiscoveryError",
    "DataError",
    "GradientMethod",
    "MeanAblation",
    "OptimalAblation",
    "Patching",
    "PromptPairs",
    "RunSetup",
    "ZeroAblation",
    "attribute",
    "get_method",
    "get_metric",
    "kl",
    "log_prob",
    "logit_diff",
    "prob_diff",
    "quadrature",
    "register",
]


def __getattr__(name: str) -> tuple[str, ...]:
    """``METHODS``: the names of the registered methods, read from the registry at each use,
    so that a method registered after import counts (see :mod:`attribution.methods`); the
    one place it is defined."""
    if name == "METHODS":
        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
