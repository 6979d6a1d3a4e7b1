"""How the report, the command line's summary and ``circuits evaluate --curve`` name and print
a faithfulness curve, in one place so they agree: its four areas, each under one name
(:mod:`circuits.search.areas`), the sizes whose circuit is a smaller size's again, and a random
baseline's mean ± spread at a precision its spread supports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from circuits.search.areas import AREA_NAMES, curve_areas

#: Short names, as printed; ``cpr``/``cmd`` are MIB's (linear edge-fraction axis).
AREA_SHORT = {"cpr": "CPR", "cmd": "CMD", "cpr_log": "CPR_log", "cmd_log": "CMD_log"}
#: What each name means, for tables.
AREA_LABELS = {
    "cpr": "CPR (MIB's): area under f over the edge fraction, linear axis (higher is better)",
    "cmd": "CMD (MIB's): area under |1 − f| over the edge fraction, linear axis (lower is better)",
    "cpr_log": "CPR_log: area under f over log10 of the edge fraction, rescaled to [0, 1]",
    "cmd_log": "CMD_log: area under |1 − f| over log10 of the edge fraction, rescaled to [0, 1]",
}
#: Decimals for f values (a fraction of the model's behaviour): finer digits are noise.
F_DECIMALS = 3


def finite(x: object) -> float | None:
    """``x`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def recorded_areas(curve: Mapping[str, Any]) -> dict[str, float | None]:
    """The four areas of a ``metrics.json`` curve section. Records from before the log-axis
    areas had names of their own (no ``cpr_log``) stored them as ``cpr``/``cmd`` with
    ``log_x: true``; those are read as ``cpr_log``/``cmd_log``, and an area a record lacks is
    recomputed from its ``fractions`` and ``f`` (None when those are missing)."""
    if "cpr_log" in curve:
        return {k: finite(curve.get(k)) for k in AREA_NAMES}
    stored = {k: finite(curve.get(k)) for k in ("cpr", "cmd")}
    if curve.get("log_x"):
        stored = {"cpr_log": stored["cpr"], "cmd_log": stored["cmd"]}
    fractions, f = curve.get("fractions"), curve.get("f")
    fresh: dict[str, float | None] = dict.fromkeys(AREA_NAMES)
    if isinstance(fractions, list) and isinstance(f, list) and len(fractions) == len(f) > 1:
        if all(finite(x) is not None for x in [*fractions, *f]):
            fresh = dict(curve_areas(fractions, f))
    return {k: stored[k] if stored.get(k) is not None else fresh[k] for k in AREA_NAMES}


def areas_text(areas: Mapping[str, float | None], digits: int = 4) -> str:
    """E.g. "CPR 0.9866, CMD 0.0134 (MIB's, linear edge-fraction axis); CPR_log 0.6445,
    CMD_log 0.3555 (log10 size axis)"; an unknown pair is left out."""
    parts = []
    for pair, axis in ((("cpr", "cmd"), "MIB's, linear edge-fraction axis"),
                       (("cpr_log", "cmd_log"), "log10 size axis")):  # fmt: skip
        if all(areas.get(k) is not None for k in pair):
            values = ", ".join(f"{AREA_SHORT[k]} {areas[k]:.{digits}f}" for k in pair)
            parts.append(f"{values} ({axis})")
    return "; ".join(parts) if parts else "CPR/CMD not recorded"


def repeated_sizes(n_edges: Sequence[object]) -> list[int | None]:
    """Per size, the index of the first smaller fraction whose circuit has the same number of
    edges (the same top-k circuit, e.g. 0.1 % and 0.2 % of a small graph both round to 1
    edge), else None."""
    first: dict[object, int] = {}
    out: list[int | None] = []
    for i, k in enumerate(n_edges):
        out.append(first.get(k))
        first.setdefault(k, i)
    return out


def spread_decimals(std: object) -> int:
    """Decimals for a mean ± standard deviation of f: two significant digits of the spread,
    but no more than :data:`F_DECIMALS` (a spread below 0.0005 shows as 0.000) and at least
    one."""
    s = finite(std)
    if s is None or s == 0:
        return F_DECIMALS
    return max(1, min(F_DECIMALS, 1 - math.floor(math.log10(abs(s)))))


def fixed(x: object, decimals: int = F_DECIMALS) -> str:
    """``x`` with ``decimals`` decimals, without a sign on a value that rounds to zero."""
    v = finite(x)
    if v is None:
        return "—" if x is None else str(x)
    text = f"{v:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def mean_pm(mean: object, std: object) -> str:
    """E.g. "0.000 ± 0.000" for 7.9e-8 ± 2.3e-7, "0.41 ± 0.12" for 0.4123 ± 0.1234."""
    d = spread_decimals(std)
    return f"{fixed(mean, d)} ± {fixed(std, d)}"


def sizes_text(fractions: Sequence[float], n_edges: Sequence[int], f: Sequence[float]) -> str:
    """f at each size, e.g. "0.1% (1 edge) 0.120, 0.2% (1 edge, same circuit as 0.1%),
    0.5% (2 edges) 0.310"."""
    repeats = repeated_sizes(n_edges)
    parts = []
    for i, (k, n, value) in enumerate(zip(fractions, n_edges, f, strict=True)):
        size = f"{100 * k:g}% ({n} edge{'s' if n != 1 else ''}"
        same = repeats[i]
        if same is not None:
            parts.append(f"{size}, same circuit as {100 * fractions[same]:g}%)")
        else:
            parts.append(f"{size}) {fixed(value)}")
    return ", ".join(parts)


def curve_line(curve: Mapping[str, Any]) -> str:
    """``circuits evaluate --curve``'s line: the areas by name, then f at each size."""
    sizes = sizes_text(curve["fractions"], curve["n_edges"], curve["f"])
    return f"MIB curve: {areas_text(curve)}; f at {sizes}"
