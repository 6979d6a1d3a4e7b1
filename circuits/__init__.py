"""What users call: model loading (and, as they land, pruning, faithfulness and the CLI)."""

from circuits.models import (
    PROCESSING,
    SUPPORTED_ARCHITECTURES,
    ModelLoadError,
    UnsupportedArchitectureError,
    load_model,
)
from circuits.random_models import random_hf_model

__all__ = [
    "PROCESSING",
    "SUPPORTED_ARCHITECTURES",
    "ModelLoadError",
    "UnsupportedArchitectureError",
    "load_model",
    "random_hf_model",
]
