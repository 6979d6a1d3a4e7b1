"""Models: loading any supported model as an edge-hooked ``TransformerBridge``
(:mod:`.loading`), small random Hugging Face models built from configs (:mod:`.random`) and
the models this project trains and ships (:mod:`.zoo`)."""

from circuits.models.loading import (
    HUB_PROBE_TIMEOUT_S,
    PROCESSING,
    SUPPORTED_ARCHITECTURES,
    ModelLoadError,
    NonFiniteWeightsError,
    UnsupportedArchitectureError,
    load_model,
)
from circuits.models.random import random_hf_model

__all__ = [
    "HUB_PROBE_TIMEOUT_S",
    "PROCESSING",
    "SUPPORTED_ARCHITECTURES",
    "ModelLoadError",
    "NonFiniteWeightsError",
    "UnsupportedArchitectureError",
    "load_model",
    "random_hf_model",
]
