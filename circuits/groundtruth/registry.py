"""Names of the compiled ground-truth models, and how to build and load them.

``build(name)`` compiles a model with its task and circuit (:class:`.task.GroundTruth`);
``load(name)`` returns ``(bridge, tokenizer)`` like :func:`circuits.models.zoo.load`, which falls
back to this registry for the names listed here. ``register(name, builder)`` adds your own
(e.g. ``lambda **_: custom.from_folder(folder, "edges.json")``), so ``zoo.load``, ``--model``
and the benchmark see it in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from circuits.groundtruth import gqa, induction, ioi_like, mlp_lookup, prev_token, trap
from circuits.groundtruth.custom import GroundTruthError
from circuits.groundtruth.task import GroundTruth
from circuits.models.zoo.shipped import shipped_names
from graphs.errors import CircuitDiscoveryError

__all__ = ["BUILDERS", "UnknownGroundTruthError", "build", "load", "names", "register"]

#: Registry name -> builder, in order of growing difficulty.
BUILDERS: dict[str, Callable[..., GroundTruth]] = {
    module.NAME: module.build for module in (prev_token, induction, ioi_like, mlp_lookup, gqa, trap)
}


class UnknownGroundTruthError(CircuitDiscoveryError, LookupError):
    """A compiled ground-truth model name that is not registered; the message lists them."""


def register(name: str, builder: Callable[..., GroundTruth], *, replace: bool = False) -> None:
    """Add ground truth ``name``: ``builder(seed=, noise=, n_prompts=)`` returns its
    :class:`GroundTruth` (it may ignore them). :class:`GroundTruthError` if ``name`` is taken, unless
    ``replace``."""
    if not replace and (name in BUILDERS or name in shipped_names()):
        raise GroundTruthError(
            f"ground-truth name {name!r} is taken; pass replace=True or another name"
        )
    BUILDERS[name] = builder


def names() -> list[str]:
    """Names of the compiled models, simplest first."""
    return list(BUILDERS)


def build(name: str, *, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile model ``name`` (deterministic for a given ``seed``); :class:`UnknownGroundTruthError` (a LookupError) if unknown."""
    if name not in BUILDERS:
        raise UnknownGroundTruthError(
            f"no compiled ground-truth model {name!r}; available: {', '.join(BUILDERS)}"
        )
    return BUILDERS[name](seed=seed, noise=noise, n_prompts=n_prompts)


def load(
    name: str,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict | None = None,
) -> tuple[Any, Any]:
    """``(bridge, tokenizer)`` of compiled model ``name``, built in memory and bridged by
    :func:`circuits.load_model`; arguments as there."""
    from circuits.models import load_model

    truth = build(name)
    bridge = load_model(
        truth.model, tokenizer=truth.tokenizer, device=device, dtype=dtype, device_map=device_map
    )
    return bridge, truth.tokenizer
