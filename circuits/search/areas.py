"""The areas of a faithfulness curve, each under one name (no torch, so the report can
recompute them from an old ``metrics.json``).

- ``cpr`` / ``cmd``: MIB's CPR (area under f) and CMD (area under |1 − f|) by the trapezoid
  rule over the fraction of edges kept, on a linear axis;
- ``cpr_log`` / ``cmd_log``: the same areas over log10 of the fraction rescaled to [0, 1], so
  each decade of circuit size (0.1–1 %, 1–10 %, 10–100 %) weighs the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The curve's areas: MIB's CPR and CMD (linear fraction axis), then the log-axis pair.
AREA_NAMES = ("cpr", "cmd", "cpr_log", "cmd_log")


def area_under(
    fractions: Sequence[float], values: Sequence[float], *, log_x: bool = False
) -> float:
    """Trapezoid area of ``values`` over ``fractions``; with ``log_x`` the x axis is
    log10(fraction) rescaled to [0, 1] so the area stays comparable to the linear one."""
    x = np.asarray(fractions, dtype=float)
    y = np.asarray(values, dtype=float)
    if log_x:
        x = np.log10(x)
        span = x[-1] - x[0]
        x = (x - x[0]) / span if span > 0 else x * 0
    return float(np.trapezoid(y, x))


def curve_areas(fractions: Sequence[float], f: Sequence[float]) -> dict[str, float]:
    """``{"cpr", "cmd", "cpr_log", "cmd_log"}`` of the curve ``f`` over ``fractions``."""
    gap = [abs(1 - v) for v in f]
    return {
        "cpr": area_under(fractions, f),
        "cmd": area_under(fractions, gap),
        "cpr_log": area_under(fractions, f, log_x=True),
        "cmd_log": area_under(fractions, gap, log_x=True),
    }
