"""Edge scoring: EAP, EAP-IG (inputs and activations), clean-corrupted and exact patching."""

from attribution.attribute import ABLATIONS, METHODS, AttributionResult, attribute
from attribution.data import DataError, PromptPairs
from attribution.metrics import METRICS, get_metric, kl, log_prob, logit_diff, prob_diff
from attribution.quadrature import RULES, quadrature

__all__ = [
    "ABLATIONS",
    "METHODS",
    "METRICS",
    "RULES",
    "AttributionResult",
    "DataError",
    "PromptPairs",
    "attribute",
    "get_metric",
    "kl",
    "log_prob",
    "logit_diff",
    "prob_diff",
    "quadrature",
]
