"""Attribution methods, one module each, registered here in one place.

A new method is a new module beside these, holding a subclass of
:class:`~attribution.methods.base.AttributionMethod` (or of
:class:`~attribution.methods.gradient.GradientMethod` for a Δ·gradient method), and one
:func:`register` line below; ``attribute(method=...)``, the memory predictor, the discovery job
and ``circuits discover --method`` then know it (see docs/architecture.md).
"""

from __future__ import annotations

from attribution.methods.base import (
    AttributionMethod,
    BatchRuns,
    Job,
    MethodArchitectureError,
    MethodError,
    Option,
    batch_runs,
    build_method,
    takes_steps,
)
from attribution.methods.clean_corrupted import CleanCorrupted
from attribution.methods.eap import EAP
from attribution.methods.ensemble import Ensemble, UnknownMethodError, parse_ensemble
from attribution.methods.exact import Exact
from attribution.methods.gradient import GradientMethod
from attribution.methods.ifr import IFR
from attribution.methods.ig_activations import EAPIGActivations
from attribution.methods.ig_inputs import EAPIGInputs
from attribution.methods.learned_mask import LearnedMask
from attribution.methods.relp import RelP

REGISTRY: dict[str, type[AttributionMethod]] = {}


def register(cls: type[AttributionMethod]) -> type[AttributionMethod]:
    """Make ``cls`` available as ``method=cls.name``; usable as a class decorator."""
    if not cls.name or cls.name in REGISTRY:
        raise MethodError(f"method name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    return cls


for _cls in (EAP, CleanCorrupted, EAPIGInputs, EAPIGActivations, Exact, IFR, RelP, LearnedMask):
    register(_cls)


def method_names() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    return tuple(REGISTRY)


def get_method(
    method: str | list[str] | AttributionMethod,
    *,
    steps: int = 5,
    quadrature_rule: str = "riemann_left",
    options: dict | None = None,
) -> AttributionMethod:
    """The method object for a name (built with ``steps``, ``quadrature_rule`` and the
    method's own keyword ``options``, e.g. ``{"train_steps": 100}`` for ``mask``), an
    :class:`Ensemble` for ``"ensemble:a,b"``, ``"ensemble-z:a,b"`` or a list of names, or
    ``method`` itself when it already is one; UnknownMethodError (a ValueError) names the
    choices."""
    if isinstance(method, AttributionMethod):
        if options:
            raise MethodError("method options go with a method name; set them on the object")
        return method
    ensemble = parse_ensemble(method, REGISTRY, steps, quadrature_rule)
    if ensemble is not None:
        return ensemble
    cls = REGISTRY.get(method) if isinstance(method, str) else None
    if cls is None:
        raise UnknownMethodError(
            f"unknown method {method!r}; choose one of {', '.join(REGISTRY)}, or "
            "'ensemble:NAME,NAME,...'"
        )
    try:
        return build_method(cls, steps, quadrature_rule, options)
    except TypeError as err:
        raise MethodError(f"bad options for method {method!r}: {err}") from None


__all__ = [
    "EAP",
    "REGISTRY",
    "Ensemble",
    "MethodArchitectureError",
    "MethodError",
    "Option",
    "takes_steps",
    "UnknownMethodError",
    "RelP",
    "AttributionMethod",
    "BatchRuns",
    "CleanCorrupted",
    "EAPIGActivations",
    "EAPIGInputs",
    "Exact",
    "GradientMethod",
    "IFR",
    "Job",
    "LearnedMask",
    "batch_runs",
    "get_method",
    "method_names",
    "register",
]
