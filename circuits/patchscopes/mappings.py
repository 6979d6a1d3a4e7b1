"""Mappings applied to a source hidden state before it is patched into the target.

A :class:`Mapping` turns ``[n, d_in]`` states into ``[n, d_out]`` ones and declares its sizes
(``None`` = any), so that a mapping that does not fit the source or target model is refused
before any forward pass. Three kinds:

- :class:`Identity`: the state as it is (source and target hidden sizes must be equal);
- :class:`Affine`: ``h ↦ A h + b``, fitted by least squares with
  :func:`circuits.patchscopes.fitting.fit_affine` from layer
  ``ℓ`` of one model to layer ``ℓ'`` of the same or another model (Patchscopes' and the tuned
  lens' learned map: ``h_last ≈ A h_ℓ + b``);
- :class:`FunctionMapping`: any callable, with optionally declared sizes.

Layers follow :mod:`circuits.patchscopes.core`: ``ℓ`` in ``[0, n_layers]`` is the residual
stream before block ``ℓ``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from circuits.patchscopes.errors import PatchscopeError

__all__ = [
    "Affine",
    "FunctionMapping",
    "Identity",
    "Mapping",
    "as_mapping",
]


class Mapping:
    """Base class: ``__call__([n, d_in]) -> [n, d_out]``; ``d_in`` / ``d_out`` (``None`` =
    any size) are checked against the models before any forward pass."""

    name: str = "mapping"
    d_in: int | None = None
    d_out: int | None = None

    def __call__(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, d_in: int, d_out: int) -> None:
        """Raise :class:`PatchscopeError` if the declared sizes do not fit ``d_in -> d_out``."""
        if self.d_in is not None and self.d_in != d_in:
            raise PatchscopeError(
                f"mapping {self.name!r} takes {self.d_in}-dimensional states but the source "
                f"hidden size is {d_in}"
            )
        if self.d_out is not None and self.d_out != d_out:
            raise PatchscopeError(
                f"mapping {self.name!r} produces {self.d_out}-dimensional states but the "
                f"target hidden size is {d_out}"
            )


class Identity(Mapping):
    """The state unchanged; only valid when source and target hidden sizes are equal."""

    name = "identity"

    def __init__(self, d: int | None = None):
        self.d_in = self.d_out = d

    def check(self, d_in: int, d_out: int) -> None:
        if d_in != d_out:
            raise PatchscopeError(
                f"the source hidden size ({d_in}) differs from the target's ({d_out}) and no "
                "mapping was given; pass mapping=fit_affine(source_model, layer, target_model, "
                f"layer, prompts) or a Mapping / FunctionMapping from {d_in} to {d_out}"
            )
        super().check(d_in, d_out)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h


class FunctionMapping(Mapping):
    """A user callable ``[n, d_in] -> [n, d_out]``; declare ``d_in`` / ``d_out`` to have
    mismatches caught before any forward pass (otherwise the output shape is checked after
    the call)."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        d_in: int | None = None,
        d_out: int | None = None,
        name: str | None = None,
    ):
        self.fn = fn
        self.d_in, self.d_out = d_in, d_out
        self.name = name or getattr(fn, "__name__", "function")

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.fn(h)


@dataclass(eq=False)
class Affine(Mapping):
    """``h ↦ h @ weight.T + bias`` (``weight`` ``[d_out, d_in]``, ``bias`` ``[d_out]``), stored
    in float64 and applied in float64, the result cast back to the input's dtype.

    ``fit`` records how it was fitted (layers, number of samples, R² on the fitting data).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    fit: dict[str, Any] = field(default_factory=dict)
    name: str = "affine"

    def __post_init__(self) -> None:
        if self.weight.dim() != 2 or self.bias.shape != (self.weight.shape[0],):
            raise PatchscopeError(
                f"an affine map needs weight [d_out, d_in] and bias [d_out], got "
                f"{tuple(self.weight.shape)} and {tuple(self.bias.shape)}"
            )
        self.d_out, self.d_in = (int(s) for s in self.weight.shape)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=h.device, dtype=torch.float64)
        b = self.bias.to(device=h.device, dtype=torch.float64)
        return (h.to(torch.float64) @ w.T + b).to(h.dtype)


def as_mapping(obj: Any, *, d_in: int, d_out: int) -> Mapping:
    """``obj`` as a :class:`Mapping` checked against ``d_in -> d_out``: ``None`` or
    ``"identity"`` is :class:`Identity`; a plain callable becomes a :class:`FunctionMapping`."""
    if obj is None or (isinstance(obj, str) and obj == "identity"):
        mapping: Mapping = Identity()
    elif isinstance(obj, Mapping):
        mapping = obj
    elif callable(obj):
        mapping = FunctionMapping(obj)
    else:
        raise PatchscopeError(
            f"mapping must be None, 'identity', a Mapping or a callable, got {obj!r}"
        )
    mapping.check(d_in, d_out)
    return mapping
