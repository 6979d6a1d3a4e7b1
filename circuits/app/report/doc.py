"""The report's document model and value formatting, shared by every section builder.

A report is a list of blocks (:class:`Heading`, :class:`Paragraph`, :class:`Table`,
:class:`Figure`, :class:`Contents`) whose inline text is plain ``str`` or :class:`Code`,
:class:`Strong` and :class:`Link` pieces; :mod:`circuits.app.report.markdown` and
:mod:`circuits.app.report.html` render the list. The ``fmt_*`` functions turn ``metrics.json``
values into the text both show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from circuits.app.run import section_of

__all__ = [
    "Block",
    "Code",
    "Contents",
    "Figure",
    "Heading",
    "Inline",
    "Link",
    "NA",
    "Paragraph",
    "Strong",
    "Table",
    "flatten",
    "fmt_num",
    "fmt_pct",
    "fmt_seconds",
    "fmt_target",
    "fmt_ci",
    "fmt_value",
    "is_number",
    "kv_table",
    "section_of",
]

NA = "—"  # how a null (not applicable) value is shown


# --------------------------------------------------------------------------------------------
# Number formatting


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt_num(x: object, *, signed: bool = False) -> str:
    """4 significant digits; integers exactly, with thousands separators; null as a dash."""
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:+,}" if signed else f"{x:,}"
    if not isinstance(x, float):
        return fmt_value(x)  # a list or object where a number was expected
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return ("+∞" if signed else "∞") if x > 0 else "-∞"
    if x == 0:
        return "0"
    sign = "+" if signed and x > 0 else ""
    magnitude = math.floor(math.log10(abs(x)))
    if 4 <= magnitude < 15:  # 12345.6 -> 12,350 rather than 1.235e+04
        return f"{sign}{round(x, 3 - magnitude):,.0f}"
    text = f"{x:.4g}".replace("e-0", "e-").replace("e+0", "e+")
    return sign + text


def fmt_pct(x: object) -> str:
    """A fraction as a percentage: 0.046 -> 4.6%."""
    if not is_number(x):
        return fmt_num(x)
    if not math.isfinite(x):
        return fmt_num(x)
    return f"{fmt_num(float(x) * 100)}%"


def fmt_seconds(x: object) -> str:
    return f"{fmt_num(float(x))} s" if is_number(x) else fmt_num(x)


def fmt_value(x: object) -> str:
    """Any JSON value as short text (lists inline, nested objects as key: value pairs)."""
    if isinstance(x, str):
        return x
    if isinstance(x, Mapping):
        return ", ".join(f"{k}: {fmt_value(v)}" for k, v in x.items()) or "{}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in x) + "]"
    return fmt_num(x)


def fmt_target(target: object) -> str | None:
    """The search target (lo, hi) as an inequality, e.g. "f ≥ 0.9" or "0.9 ≤ f ≤ 1.1"."""
    if is_number(target):
        return f"f ≥ {fmt_num(float(target))}"
    if not isinstance(target, (list, tuple)) or len(target) != 2:
        return None
    lo, hi = target
    lo = lo if is_number(lo) and math.isfinite(lo) else None
    hi = hi if is_number(hi) and math.isfinite(hi) else None
    if lo is not None and hi is not None:
        return f"{fmt_num(lo)} ≤ f ≤ {fmt_num(hi)}"
    if lo is not None:
        return f"f ≥ {fmt_num(lo)}"
    if hi is not None:
        return f"f ≤ {fmt_num(hi)}"
    return None


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    """Nested objects become dotted keys, so every field gets a row of its own."""
    rows: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def fmt_ci(ci: object) -> str | None:
    """A confidence interval ``[lo, hi]`` as text; None when ``ci`` is not a pair."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
    return None


# --------------------------------------------------------------------------------------------
# The document, independent of output format


class Code(str):
    """Inline text shown literally in a code span (identifiers, edge names, commands)."""


class Strong(str):
    """Inline text shown in bold."""


class Link(str):
    """Inline text linking to a file of the run folder, named by its relative path."""

    def __new__(cls, text: str, href: str) -> Link:
        link = super().__new__(cls, text)
        link.href = href
        return link


Inline = str | Sequence[str]  # plain text, or a run of str / Code / Strong pieces


@dataclass
class Heading:
    level: int
    text: str
    anchor: str | None = None


@dataclass
class Paragraph:
    content: Inline
    css: str | None = None  # HTML class; markdown renders "note" paragraphs in italics


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Inline]]
    align: str  # one letter per column: "l" left, "r" right (numbers)


@dataclass
class Figure:
    key: str
    number: int
    caption: Inline
    expected: str  # the file name the figure should have, for the "not available" note


@dataclass
class Contents:
    """A table of contents: ``(anchor, heading text)`` of every section."""

    entries: Sequence[tuple[str, str]]


Block = Heading | Paragraph | Table | Figure | Contents


def kv_table(rows: Iterable[tuple[str, object]], header: str = "Field") -> Table:
    """One row per field: its dotted name as code and its value (a target with its bounds)."""
    body: list[list[Inline]] = []
    for key, value in rows:
        text = fmt_value(value)
        if key.split(".")[-1] == "target" and isinstance(value, (list, tuple)):
            bounds = fmt_target(value)
            text = f"{text} ({bounds})" if bounds else text
        body.append([Code(key), text])
    return Table([header, "Value"], body, "ll")
