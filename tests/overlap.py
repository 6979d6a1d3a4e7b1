"""Geometry of drawn edges for the figure and explorer tests: sample each edge's curve as
points (display pixels) and measure how much of one edge runs along another."""

from __future__ import annotations

import itertools

import numpy as np


def quadratic(p0, c, p1, n: int = 120) -> np.ndarray:
    """``n`` points of the quadratic Bézier ``p0, c, p1``."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, c, p1 = (np.asarray(p, float) for p in (p0, c, p1))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t**2 * p1


def patch_points(patch, n: int = 120) -> np.ndarray:
    """Points (display pixels) along a matplotlib patch's path, its Bézier pieces evaluated."""
    path = patch.get_path().transformed(patch.get_transform())
    pieces = [curve(np.linspace(0, 1, n)) for curve, _ in path.iter_bezier()]
    return np.concatenate(pieces)


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    a, b = line[:-1], line[1:]  # segments
    ab = b - a
    ap = points[:, None, :] - a[None]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0, 1)
    foot = a[None] + t[..., None] * ab[None]
    return np.hypot(*(points[:, None, :] - foot).transpose(2, 0, 1)).min(axis=1)


def along_fraction(a: np.ndarray, b: np.ndarray, tol: float, ends: float = 0.0) -> float:
    """The fraction of curve ``a``'s length that lies within ``tol`` of curve ``b``, leaving
    out what lies within ``ends`` of an end of either curve (at a node all its edges meet)."""
    corners = np.stack([a[0], a[-1], b[0], b[-1]])
    away = np.hypot(*(a[:, None, :] - corners[None]).transpose(2, 0, 1)).min(axis=1) >= ends
    close = (_distance_to_polyline(a, b) < tol) & away
    step = np.hypot(*np.diff(a, axis=0).T)
    counted = away[:-1] & away[1:]
    both = close[:-1] & close[1:]
    return float(step[both].sum() / max(step[counted].sum(), 1e-12))


def worst_overlap(
    curves: dict[str, np.ndarray], tol: float = 3.0, ends: float = 20.0
) -> tuple[float, str, str]:
    """The largest :func:`along_fraction` over ordered pairs of ``curves``, and the pair."""
    worst = (0.0, "", "")
    for (na, a), (nb, b) in itertools.permutations(curves.items(), 2):
        worst = max(worst, (along_fraction(a, b, tol, ends), na, nb))
    return worst
