"""Interchange interventions on a learned subspace (DAS, Boundless DAS, low-rank DAS).

Every intervention maps a base vector ``x_b`` and a source vector ``x_s`` (``[..., d]``) to the
vector the base run continues with:

- :class:`DAS` (Geiger et al. 2023): a learned orthogonal ``d × d`` rotation ``R``
  (``torch.nn.utils.parametrizations.orthogonal``); the first ``k`` rotated coordinates are
  taken from the source: ``R⁻¹((1 − m) ⊙ R x_b + m ⊙ R x_s)`` with ``m = 1`` on ``0..k-1``.
- :class:`BoundlessDAS` (Wu et al. 2023): the same rotation, with a soft mask
  ``m_i = σ((i − lo)/T) · σ((hi − i)/T)`` whose boundaries ``lo``/``hi`` are learned; the
  temperature ``T`` is annealed by the trainer (50 → 0.1) and the loss adds
  ``λ · width`` so the subspace stays small. In eval mode the mask is hard
  (``lo ≤ i ≤ hi``), which is what the learned subspace *is*.
- :class:`LowRankDAS`: ``R`` a ``k × d`` matrix with orthonormal rows (no ``d × d`` rotation, for
  wide models): ``x_b + (R x_s − R x_b)ᵀ R``.
- :class:`Subspace`: a fixed ``k × d`` orthonormal basis (what :mod:`circuits.alignment.io`
  loads, and the random-rotation control), same formula as low-rank DAS.

With a hard mask all of them equal ``x_b + Bᵀ B (x_s − x_b)`` for ``B = basis()`` (``k × d``,
orthonormal rows): that basis, plus the boundaries, is all that is saved.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from circuits.alignment.sites import AlignmentError

__all__ = [
    "DAS",
    "BoundlessDAS",
    "Intervention",
    "LowRankDAS",
    "RotatedSubspace",
    "Subspace",
    "cosine",
    "random_orthogonal",
]


def random_orthogonal(rows: int, d: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """A ``rows × d`` matrix with orthonormal rows, uniformly random (QR of a Gaussian)."""
    gen = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(d, rows, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]  # make the distribution uniform
    return q.T.contiguous().to(dtype)


def _check_sizes(d: int, k: int | None, what: str) -> None:
    if int(d) < 1:
        raise AlignmentError(f"{what}: hidden size must be ≥ 1, got {d}")
    if k is not None and not 1 <= int(k) <= int(d):
        raise AlignmentError(
            f"{what}: subspace dimension {k} does not fit the hidden size {d}; choose 1..{d}"
        )


class Intervention(nn.Module):
    """Common interface: ``forward(base, source) -> h``, :meth:`basis`, :meth:`boundaries`."""

    kind: str = "intervention"
    d: int

    def basis(self) -> torch.Tensor:
        """``k × d`` orthonormal rows spanning the subspace that is interchanged."""
        raise NotImplementedError

    def boundaries(self) -> tuple[float, float] | None:
        """``(lo, hi)`` in rotated coordinates for boundary-learning interventions."""
        return None

    @property
    def k(self) -> int:
        return int(self.basis().shape[0])

    def regularizer(self) -> torch.Tensor:
        """Extra loss term (Boundless DAS: the mask's width); 0 otherwise."""
        return torch.zeros(())

    def _check(self, base: torch.Tensor, source: torch.Tensor) -> None:
        if base.shape != source.shape:
            raise AlignmentError(
                f"base and source vectors differ in shape: {list(base.shape)} vs {list(source.shape)}"
            )
        if base.shape[-1] != self.d:
            raise AlignmentError(
                f"{type(self).__name__} was built for hidden size {self.d}, got vectors of size "
                f"{base.shape[-1]}"
            )


class Subspace(Intervention):
    """A fixed (non-trained) subspace: ``x_b + Bᵀ B (x_s − x_b)``."""

    kind = "subspace"

    def __init__(self, basis: torch.Tensor, boundaries: tuple[float, float] | None = None):
        super().__init__()
        basis = torch.as_tensor(basis).detach()
        if basis.dim() != 2:
            raise AlignmentError(f"a basis is k × d, got shape {list(basis.shape)}")
        _check_sizes(basis.shape[1], basis.shape[0], "Subspace")
        self.d = int(basis.shape[1])
        self.register_buffer("_basis", basis.clone())
        self._boundaries = boundaries

    def basis(self) -> torch.Tensor:
        return self._basis

    def boundaries(self) -> tuple[float, float] | None:
        return self._boundaries

    def forward(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        self._check(base, source)
        b = self._basis.to(base.dtype)
        return base + ((source - base) @ b.T) @ b

    @classmethod
    def random(cls, d: int, k: int, seed: int = 0) -> Subspace:
        """The control: a random ``k``-dimensional subspace (a random rotation's first ``k`` rows)."""
        _check_sizes(d, k, "Subspace.random")
        return cls(random_orthogonal(k, d, seed))


class RotatedSubspace(Intervention):
    """A learned orthogonal ``d × d`` rotation and a mask over rotated coordinates (the base
    of :class:`DAS` and :class:`BoundlessDAS`)."""

    kind = "rotated"

    def __init__(self, d: int, *, seed: int = 0, orthogonal_map: str | None = None):
        super().__init__()
        _check_sizes(d, None, type(self).__name__)
        self.d = int(d)
        rotate = nn.Linear(self.d, self.d, bias=False)
        parametrizations.orthogonal(rotate, orthogonal_map=orthogonal_map)
        with torch.no_grad():
            rotate.weight = random_orthogonal(self.d, self.d, seed)
        self.rotate = rotate

    @property
    def rotation(self) -> torch.Tensor:
        """``R`` (``d × d``, orthogonal): rotated coordinates are ``R x``."""
        return self.rotate.weight

    def mask(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        self._check(base, source)
        r = self.rotation.to(base.dtype)
        m = self.mask().to(base.dtype)
        rb, rs = base @ r.T, source @ r.T
        mixed = (1 - m) * rb + m * rs
        return mixed @ r  # R⁻¹ = Rᵀ


class DAS(RotatedSubspace):
    """Distributed alignment search with a fixed number ``k`` of rotated dimensions."""

    kind = "das"

    def __init__(self, d: int, k: int, *, seed: int = 0, orthogonal_map: str | None = None):
        _check_sizes(d, k, "DAS")
        super().__init__(d, seed=seed, orthogonal_map=orthogonal_map)
        m = torch.zeros(self.d)
        m[: int(k)] = 1
        self.register_buffer("_mask", m)

    def mask(self) -> torch.Tensor:
        return self._mask

    def basis(self) -> torch.Tensor:
        return self.rotation[: int(self._mask.sum())]

    def forward(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        self._check(base, source)
        b = self.basis().to(base.dtype)  # hard mask: only k rows are needed
        return base + ((source - base) @ b.T) @ b


class BoundlessDAS(RotatedSubspace):
    """Boundless DAS: a learned rotation and learned mask boundaries ``lo ≤ i ≤ hi``.

    Args:
        d: hidden size.
        init_width: initial number of rotated dimensions inside the boundaries.
        temperature: initial mask temperature (the trainer anneals it, see
            :func:`circuits.alignment.train.train_intervention`).
    """

    kind = "boundless"

    def __init__(
        self,
        d: int,
        init_width: int | None = None,
        *,
        temperature: float = 50.0,
        seed: int = 0,
        orthogonal_map: str | None = None,
    ):
        init_width = int(init_width) if init_width is not None else max(1, int(d) // 2)
        _check_sizes(d, init_width, "BoundlessDAS")
        super().__init__(d, seed=seed, orthogonal_map=orthogonal_map)
        self.lo = nn.Parameter(torch.tensor(-0.5))
        self.hi = nn.Parameter(torch.tensor(init_width - 0.5))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("_index", torch.arange(self.d, dtype=torch.float32))

    def set_temperature(self, t: float) -> None:
        self.temperature.fill_(float(t))

    def soft_mask(self) -> torch.Tensor:
        t = self.temperature
        i = self._index
        return torch.sigmoid((i - self.lo) / t) * torch.sigmoid((self.hi - i) / t)

    def hard_mask(self) -> torch.Tensor:
        i = self._index
        return ((i >= self.lo) & (i <= self.hi)).to(i.dtype)

    def mask(self) -> torch.Tensor:
        return self.soft_mask() if self.training else self.hard_mask()

    def width(self) -> torch.Tensor:
        """``hi − lo`` (≈ the number of rotated dimensions inside the boundaries), clamped at 0."""
        return torch.relu(self.hi - self.lo)

    def regularizer(self) -> torch.Tensor:
        return self.width() / self.d

    def boundaries(self) -> tuple[float, float]:
        return float(self.lo.detach()), float(self.hi.detach())

    def basis(self) -> torch.Tensor:
        keep = self.hard_mask().bool()
        return self.rotation[keep]


class LowRankDAS(Intervention):
    """Low-rank DAS: ``R`` is ``k × d`` with orthonormal rows; ``x_b + (R x_s − R x_b)ᵀ R``."""

    kind = "lowrank"

    def __init__(self, d: int, k: int, *, seed: int = 0, orthogonal_map: str | None = None):
        super().__init__()
        _check_sizes(d, k, "LowRankDAS")
        self.d = int(d)
        proj = nn.Linear(self.d, int(k), bias=False)
        parametrizations.orthogonal(proj, orthogonal_map=orthogonal_map)
        with torch.no_grad():
            proj.weight = random_orthogonal(int(k), self.d, seed)
        self.proj = proj

    def basis(self) -> torch.Tensor:
        return self.proj.weight

    def forward(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        self._check(base, source)
        r = self.basis().to(base.dtype)
        return base + (source @ r.T - base @ r.T) @ r


def cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    """``|cos|`` between two vectors (a learned direction's sign is arbitrary)."""
    u, v = u.detach().double().flatten(), v.detach().double().flatten()
    return float((u @ v).abs() / (u.norm() * v.norm()).clamp_min(1e-300))
