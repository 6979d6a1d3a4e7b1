"""Models: loading any supported model as an edge-hooked ``TransformerBridge``
(:mod:`.loading`), small random Hugging Face models built from configs (:mod:`.random`) and
the models this project trains and ships (:mod:`.zoo`)."""

from graphs.lazy import lazy_exports

# Imported on first use (graphs/lazy.py says why): reading circuits.models.zoo's names (the
# command line's default model) then imports no torch. Name -> the module that defines it.
_WHERE = {
    "HUB_PROBE_TIMEOUT_S": "circuits.models.loading",
    "PROCESSING": "circuits.models.loading",
    "SUPPORTED_ARCHITECTURES": "circuits.models.loading",
    "ModelLoadError": "circuits.models.loading",
    "NonFiniteWeightsError": "circuits.models.loading",
    "UnsupportedArchitectureError": "circuits.models.loading",
    "load_model": "circuits.models.loading",
    "random_hf_model": "circuits.models.random",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

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
