"""Ablations, one module each, registered here in one place: what replaces a clean write (the
corrupted prompt's, a mean over reference prompts, zero, or a fitted constant).

A new ablation is a module beside these, holding a subclass of
:class:`~attribution.ablations.base.Ablation`, and one :func:`register` line below (or a
``register(...)`` call from outside the package); ``attribute(ablation=...)``, evaluation, the
discovery job, ``circuits evaluate``, ``circuits serve`` and ``--ablation`` then know it (see
docs/architecture.md). The registry is read at call time, so ablations registered after import
count too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attribution.ablations.base import Ablation, AblationError, NoCounterfactualsError
from attribution.ablations.mean import MeanAblation
from attribution.ablations.optimal import OptimalAblation
from attribution.ablations.patching import Patching
from attribution.ablations.zero import ZeroAblation
from attribution.data import PromptPairs

REGISTRY: dict[str, type[Ablation]] = {}


def register(cls: type[Ablation]) -> type[Ablation]:
    """Make ``cls`` available as ``ablation=cls.name``; usable as a class decorator."""
    if not cls.name or cls.name in REGISTRY:
        raise AblationError(f"ablation name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    return cls


for _cls in (Patching, MeanAblation, ZeroAblation, OptimalAblation):
    register(_cls)


def names() -> tuple[str, ...]:
    """Names of the registered ablations, in registration order."""
    return tuple(REGISTRY)


def get(name: str) -> type[Ablation]:
    """The class of the ablation called ``name``; AblationError names the choices."""
    cls = REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise AblationError(f"unknown ablation {name!r}; choose one of {', '.join(REGISTRY)}")
    return cls


def restore_ablation(
    saved: Mapping[str, Any],
    load_reference: Callable[[int | None], PromptPairs | None],
    *,
    metric="logit_diff",
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation a run recorded (``saved``: :meth:`Ablation.saved`'s keys), rebuilt by its
    class (:meth:`Ablation.restore`) with the run's ``metric`` and ``seed``."""
    return get(saved["ablation"]).restore(
        saved, load_reference, metric=metric, seed=seed, quiet=quiet
    )


def build_ablation(
    name: str,
    reference: PromptPairs | Callable[[], PromptPairs] | None = None,
    *,
    metric="logit_diff",
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation called ``name``: the one place a name becomes an object. ``reference``
    (prompts, or a function loading them, called only when the ablation needs them) gives
    mean and optimal ablation their statistics; ``metric`` and ``seed`` are the run's (optimal
    ablation fits its constants with them). AblationError for an unknown name or missing
    reference prompts."""

    def load(_n: int | None) -> PromptPairs | None:
        return reference() if callable(reference) else reference

    return restore_ablation({"ablation": name}, load, metric=metric, seed=seed, quiet=quiet)


def as_ablation(
    ablation: str | Ablation,
    mean_data: PromptPairs | None = None,
    metric="logit_diff",
    *,
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation object for ``ablation`` (an object, or a name built by
    :func:`build_ablation` with ``mean_data`` as its reference prompts, ``metric``, ``seed``
    and ``quiet``). AblationError names the choices or what is missing."""
    if isinstance(ablation, Ablation):
        if mean_data is not None:
            raise AblationError(
                "mean_data goes with ablation='mean'; with an ablation object, pass "
                "MeanAblation(mean_data) instead"
            )
        return ablation
    return build_ablation(ablation, mean_data, metric=metric, seed=seed, quiet=quiet)


__all__ = [
    "REGISTRY",
    "Ablation",
    "AblationError",
    "MeanAblation",
    "NoCounterfactualsError",
    "OptimalAblation",
    "Patching",
    "ZeroAblation",
    "as_ablation",
    "build_ablation",
    "get",
    "names",
    "register",
    "restore_ablation",
]
