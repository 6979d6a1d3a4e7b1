"""The report's "Faithfulness" section: what f means, its numbers against the random baseline,
f over circuit size and the attribution's completeness check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from circuits.app.checks import IG_GAP_THRESHOLD
from circuits.app.curve_text import (
    AREA_LABELS,
    fixed,
    recorded_areas,
    repeated_sizes,
    spread_decimals,
)
from circuits.app.report.doc import (
    NA,
    Block,
    Code,
    Heading,
    Inline,
    Paragraph,
    Strong,
    Table,
    flatten,
    fmt_ci,
    fmt_num,
    fmt_pct,
    fmt_value,
    is_number,
    section_of,
)

__all__ = ["faithfulness_blocks"]


def faithfulness_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """The section: the definition of f, the quantities table, f over circuit size and the
    attribution check."""
    attribution = section_of(metrics, "attribution")
    blocks: list[Block] = [
        Heading(2, "Faithfulness", "faithfulness"),
        Paragraph(_explanation(metrics)),
        Table(["Quantity", "Value"], _quantity_rows(metrics), "lr"),
    ]
    blocks += _curve_table(section_of(metrics, "curve"))
    if attribution:
        blocks += _attribution_check(attribution)
    return blocks


def _explanation(metrics: Mapping[str, Any]) -> list[str]:
    """f's definition with this run's metric, ablation and bootstrap; the curve areas' names."""
    metric = section_of(metrics, "task").get("metric")
    settings = section_of(metrics, "settings")
    ablation, n_boot = settings.get("ablation"), settings.get("bootstrap")
    explain: list[str] = [
        "Faithfulness measures how much of the model's behaviour the circuit recovers: ",
        Strong("f = (m(C) − m(∅)) / (m(M) − m(∅))"),
        ", where m is the task metric",
    ]
    if metric is not None:
        explain += [" (", Code(fmt_value(metric)), ")"]
    explain += [
        " averaged over the evaluation examples, M is the full model, C is the model with every "
        "edge outside the circuit ablated at once",
    ]
    if ablation is not None:
        explain += [" (ablation: ", Code(fmt_value(ablation)), ")"]
    explain.append(
        ", and ∅ is the model with every edge ablated. f = 1 means the circuit alone reproduces "
        "the full model's metric; f = 0 means it does no better than ablating everything. "
        "The confidence interval is a bootstrap over examples"
    )
    explain.append(f" ({fmt_num(n_boot)} resamples). " if n_boot is not None else ". ")
    explain.append(
        "CPR and CMD are MIB's: the areas under f and under |1 − f| over the fraction of edges "
        "kept, by the trapezoid rule on a linear axis (higher CPR and lower CMD are better). "
        "CPR_log and CMD_log are the same areas over log10 of that fraction rescaled to [0, 1], "
        "which weighs small circuits as much as large ones: different numbers, not MIB's."
    )
    return explain


def _quantity_rows(metrics: Mapping[str, Any]) -> list[list[Inline]]:
    faith = section_of(metrics, "faithfulness")
    level = faith.get("ci_level")
    ci_label = f"{fmt_pct(level)} confidence interval of f" if level is not None else "CI of f"
    std = faith.get("random_f_std")
    areas = recorded_areas(section_of(metrics, "curve"))
    rows: list[list[Inline]] = [
        ["m(M), full model", fmt_num(faith.get("m_full"))],
        ["m(C), circuit", fmt_num(faith.get("m_circuit"))],
        ["m(∅), everything ablated", fmt_num(faith.get("m_empty"))],
        [[Strong("faithfulness f")], [Strong(fmt_num(faith.get("f")))]],
        [ci_label, fmt_ci(faith.get("ci")) or NA],
        ["f of random circuits of the same size (mean)", _rounded(faith.get("random_f"), std)],
        ["  standard deviation over the draws", _rounded(std, std)],
        *([AREA_LABELS[k], fmt_num(v)] for k, v in areas.items()),
    ]
    ig_gap = section_of(metrics, "attribution").get("ig_gap")
    if ig_gap is not None:
        rows.append(["integrated-gradients convergence gap (relative)", fmt_num(ig_gap)])
    rows.append(["evaluation examples", fmt_num(faith.get("n_examples"))])
    return rows


#: Row labels of the attribution check's known fields; others show their key as code.
_CHECK_LABELS = {
    "metric_clean": "m(clean run)",
    "metric_ablated": "m(every edge ablated)",
    "input_edge_sum": "Σ scores of the edges leaving the inputs",
    "site_ablation_sum": "Σ over writer sites of |m(site alone ablated) − m(clean)|",
    "ig_gap": "integrated-gradients convergence gap (relative)",
    "ig_gap_definition": "definition of the gap",
}


def _attribution_check(attribution: Mapping[str, Any]) -> list[Block]:
    rows: list[list[Inline]] = [
        [_CHECK_LABELS.get(k, Code(k)), fmt_value(v)] for k, v in flatten(attribution)
    ]
    return [
        Heading(3, "Attribution check"),
        Paragraph(_gap_text(attribution)),
        Table(["Quantity", "Value"], rows, "lr"),
    ]


def _rounded(x: object, std: object) -> str:
    """An f value of a random baseline at the precision its spread ``std`` supports (4
    significant digits when the spread is unknown)."""
    if not is_number(x) or not is_number(std):
        return fmt_num(x)
    return fixed(x, spread_decimals(std))


def _f_text(x: object) -> str:
    """An f value: 4 significant digits, but 0.0000 rather than e.g. -3.01e-8 (f is a share
    of the model's behaviour; such digits are rounding noise)."""
    if is_number(x) and math.isfinite(x) and abs(x) < 5e-5:
        return fixed(x, 4)
    return fmt_num(x)


def _curve_table(curve: Mapping[str, Any]) -> list[Block]:
    """f per size against the random baseline; a size whose circuit is a smaller size's again
    says so instead of repeating its numbers."""
    fractions = curve.get("fractions")
    if not isinstance(fractions, list) or not fractions:
        return []
    columns = {k: curve.get(k) for k in ("n_edges", "f", "random_f", "random_f_std")}
    columns = {k: v if isinstance(v, list) else [] for k, v in columns.items()}

    def at(name: str, i: int) -> object:
        return columns[name][i] if i < len(columns[name]) else None

    repeats = repeated_sizes([at("n_edges", i) for i in range(len(fractions))])
    rows: list[list[Inline]] = []
    for i, fraction in enumerate(fractions):
        same = repeats[i] if at("n_edges", i) is not None else None
        if same is not None:
            note = f"same circuit as {fmt_pct(fractions[same])}"
            rows.append([fmt_pct(fraction), fmt_num(at("n_edges", i)), note, "", ""])
            continue
        std = at("random_f_std", i)
        rows.append([
            fmt_pct(fraction), fmt_num(at("n_edges", i)), _f_text(at("f", i)),
            _rounded(at("random_f", i), std), _rounded(std, std),
        ])  # fmt: skip
    return [
        Heading(3, "Faithfulness over circuit size"),
        Paragraph(
            "Circuits made of the top-scoring edges, by share of the graph's edges, "
            "against random circuits of the same size, on the held-out split. A share that "
            "rounds to the same number of edges as a smaller one is the same circuit."
        ),
        Table(["Edges kept", "Edges", "f", "f (random, mean)", "± std"], rows, "rrrrr"),
    ]


def _gap_text(attribution: Mapping[str, Any]) -> str:
    """What the integrated-gradients gap of this run is (its definition comes with the run)."""
    definition = attribution.get("ig_gap_definition")
    if attribution.get("ig_gap") is None:
        return (
            "This method does not integrate, so there is no integrated-gradients completeness "
            "check; the scores of the edges leaving the inputs need not sum to "
            "m(ablated) − m(clean)."
        )
    text = (
        "Integrated gradients are complete when the integral is exact: for input "
        "interpolation the edges leaving the inputs sum to m(ablated) − m(clean); for "
        "activation interpolation, per writer site, the edges leaving the site sum to the "
        "metric change of ablating that site alone. The gap shown is the relative error of "
        "that sum"
    )
    text += f" ({definition}). " if isinstance(definition, str) else ". "
    return text + (
        f"Above {fmt_num(IG_GAP_THRESHOLD)} the scores are not converged: use more steps or "
        "Gauss–Legendre quadrature."
    )
