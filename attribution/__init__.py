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
from attribution.attribute import METHODS, AttributionResult, attribute
from attribution.data import DataError, PromptPairs
from attribution.methods import AttributionMethod, GradientMethod, get_method, register
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
