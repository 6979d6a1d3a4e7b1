"""Integration rules for integrated gradients: points α on [0, 1] and weights summing to 1.

Written here rather than taken from captum: its ``approximation_methods`` is private API,
importing it pulls matplotlib into ``import attribution`` (seconds), its trapezoid weights sum
to (m-1)/m and need rescaling, and it builds the Riemann points in float32, which spoils
float64 runs by about 3e-9. Here the points are built in the run's dtype; in float32 they are
bit-identical to captum's (the test suite compares the two).
"""

from __future__ import annotations

import numpy as np
import torch

from graphs.errors import CircuitDiscoveryError

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


class QuadratureError(CircuitDiscoveryError, ValueError):
    """An unknown integration rule, or a number of steps the rule cannot take."""


def quadrature(
    rule: str, steps: int, dtype: torch.dtype = torch.float64
) -> tuple[list[float], list[float]]:
    """``(weights, alphas)`` of ``steps`` points on [0, 1] for ``rule``; weights sum to 1.

    ``riemann_left`` gives α = k/m, k = 0..m-1, the EAP-IG reference's choice; ``dtype`` is
    the precision the Riemann points are computed in (Gauss–Legendre's come from numpy in
    float64)."""
    rule = rule.replace("-", "_")
    if rule not in RULES:
        raise QuadratureError(f"unknown quadrature rule {rule!r}; choose one of {', '.join(RULES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise QuadratureError(f"{rule} needs a whole number of steps >= 1, got {steps!r}")
    if rule == "riemann_trapezoid" and steps < 2:
        raise QuadratureError(f"riemann_trapezoid needs at least 2 steps, got {steps}")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * weights).tolist(), (0.5 * (1 + nodes)).tolist()
    m = steps
    if m == 1 and rule != "riemann_trapezoid":
        return [1.0], [{"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]]
    weights = [1 / m] * m
    if rule == "riemann_trapezoid":  # points 1/(m-1) apart, ends halved
        weights = [1 / (m - 1)] * m
        weights[0] /= 2
        weights[-1] /= 2
    # (numerator offset, numerator step, denominator) of point k: (a + b·k) / c
    a, b, c = {
        "riemann_left": (0, 1, m),
        "riemann_right": (1, 1, m),
        "riemann_middle": (1, 2, 2 * m),
        "riemann_trapezoid": (0, 1, m - 1),
    }[rule]
    if dtype == torch.float64:  # correctly rounded k/m (linspace is off by an ulp at places)
        return weights, [(a + b * k) / c for k in range(m)]
    # lower precisions: the very linspace captum uses, so float32 runs are unchanged
    start, end = {
        "riemann_left": (0.0, 1 - 1 / m),
        "riemann_right": (1 / m, 1.0),
        "riemann_middle": (1 / (2 * m), 1 - 1 / (2 * m)),
        "riemann_trapezoid": (0.0, 1.0),
    }[rule]
    return weights, torch.linspace(start, end, m, dtype=dtype).tolist()
