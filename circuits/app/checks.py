"""Judging a run's numbers: the verdict on the target (search on train, faithfulness on test)
and the warnings on results that should not be trusted, each with its fix.

Everything here is a pure function of the ``metrics.json`` object, so the report, the
command line's summary and ``metrics.json`` itself state the same verdict and warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from circuits.app.curve_text import areas_text, finite, recorded_areas
from circuits.app.run import section_of

__all__ = [
    "IG_GAP_THRESHOLD",
    "MIN_CI_EXAMPLES",
    "SIGNAL_ALPHA",
    "held_out_meets_target",
    "run_warnings",
    "summary_text",
    "t_upper_tail",
    "target_text",
    "verdict",
    "verdict_text",
]

#: Relative IG completeness gap above which scores count as not converged (greater-than
#: with 5 left-Riemann steps: 0.36; with zero ablation: 3.79; IOI on toy-gpt2: below 0.01).
IG_GAP_THRESHOLD = 0.1
#: Fewer evaluation examples than this give no usable bootstrap interval (with one example
#: every resample is the same and the interval has width 0).
MIN_CI_EXAMPLES = 20
#: One-sided level of the t-test that the clean run beats the fully ablated one.
SIGNAL_ALPHA = 0.05
#: Metrics whose value falls as the clean behaviour goes (KL from the clean run).
LOWER_IS_CLEAN = ("kl",)
#: Metrics that are a preference for the answers over the distractors (negative: wrong).
PREFERENCE_METRICS = ("logit_diff", "prob_diff")


def _target(metrics: Mapping[str, Any]) -> tuple[float, float] | None:
    target = section_of(metrics, "search").get(
        "target", section_of(metrics, "settings").get("target")
    )
    if not isinstance(target, (list, tuple)) or len(target) != 2:
        return None
    lo = finite(target[0])
    hi = finite(target[1]) if target[1] is not None else math.inf
    return (lo, math.inf if hi is None else hi) if lo is not None else None


def target_text(target: tuple[float, float]) -> str:
    lo, hi = target
    return f"f ≥ {lo:g}" if math.isinf(hi) else f"{lo:g} ≤ f ≤ {hi:g}"


def held_out_meets_target(f: float | None, target: tuple[float, float] | None) -> bool | None:
    """Whether the held-out f lies in the target (None when either is unknown)."""
    if f is None or target is None:
        return None
    return target[0] <= f <= target[1]


def verdict(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Both results on the target, labelled by split: the search's (train) and the held-out
    faithfulness (test)."""
    task = section_of(metrics, "task")
    circuit = section_of(metrics, "circuit")
    faith = section_of(metrics, "faithfulness")
    target = _target(metrics)
    held_out_f = finite(faith.get("f"))
    return {
        "target": list(target) if target else None,
        "search_split": task.get("attribution_split", "train"),
        "search_reached": circuit.get("reached_target"),
        "search_f": finite(circuit.get("f_search")),
        "held_out_split": task.get("evaluation_split", "test"),
        "held_out_f": held_out_f,
        "held_out_ci": faith.get("ci"),
        "held_out_meets_target": held_out_meets_target(held_out_f, target),
    }


def verdict_text(metrics: Mapping[str, Any]) -> str:
    """E.g. "target f ≥ 0.9 — search (train): reached, f = 0.93; held-out (test): f = 0.8875
    [0.856, 0.912], below target"."""
    v = verdict(metrics)
    target = target_text(tuple(v["target"])) if v["target"] else "the target"
    if v["search_reached"] is None:
        search = f"search ({v['search_split']}): not recorded"
    else:
        search = f"search ({v['search_split']}): {'reached' if v['search_reached'] else 'target not reached'}"
        if v["search_f"] is not None:
            search += f", f = {v['search_f']:.4g}"
    if v["held_out_f"] is None:
        return f"target {target} — {search}"
    held = f"held-out ({v['held_out_split']}): f = {v['held_out_f']:.4g}"
    ci = v["held_out_ci"]
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(c) is not None for c in ci):
        held += f" [{ci[0]:.3g}, {ci[1]:.3g}]"
    meets = v["held_out_meets_target"]
    if meets is not None:
        lo, hi = v["target"]
        side = "below target" if v["held_out_f"] < lo else "above target"
        held += ", meets the target" if meets else f", {side}"
    return f"target {target} — {search}; {held}"


def _warning(code: str, message: str, fix: str) -> dict[str, str]:
    return {"code": code, "message": message, "fix": fix}


def target_warnings(target: tuple[float, float]) -> list[dict[str, str]]:
    """Warnings known before the search: a target the full model itself (f = 1) misses."""
    lo, hi = target
    if lo > 1 or hi < 1:
        return [
            _warning(
                "target-excludes-full-model",
                f"the target {target_text(target)} excludes f = 1, the full model's "
                "faithfulness by definition: only a circuit that does better (or worse) than "
                "the whole model meets it, and if none does the search returns every edge",
                "use a target that contains 1, e.g. --target 0.9",
            )
        ]
    return []


def run_warnings(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every warning the run's numbers call for, each ``{"code", "message", "fix"}``."""
    out: list[dict[str, str]] = []
    faith = section_of(metrics, "faithfulness")
    attribution = section_of(metrics, "attribution")
    task = section_of(metrics, "task")
    target = _target(metrics)
    v = verdict(metrics)
    if target is not None:
        out += target_warnings(target)
    if v["search_reached"] is False:
        out.append(
            _warning(
                "target-not-reached",
                f"target not reached: no circuit met {target_text(target) if target else 'the target'} "
                f"on the {v['search_split']} split, so the circuit is the whole graph",
                "lower the target, or score with a more accurate method",
            )
        )
    elif v["search_reached"] and v["held_out_meets_target"] is False:
        out.append(
            _warning(
                "held-out-misses-target",
                f"the search reached the target on the {v['search_split']} split, but on the "
                f"held-out {v['held_out_split']} split f = {v['held_out_f']:.4g} misses "
                f"{target_text(target)}",
                "report the held-out f; more attribution examples (--n-examples) or a "
                "stricter target make the search generalise better",
            )
        )

    gap = finite(attribution.get("ig_gap"))
    if gap is not None and gap > IG_GAP_THRESHOLD:
        out.append(
            _warning(
                "ig-not-converged",
                f"the integrated-gradients convergence gap is {gap:.3g} (relative), above "
                f"{IG_GAP_THRESHOLD:g}: the scores, and so the circuit, are not converged",
                "use more steps (--steps 20) or Gauss–Legendre quadrature (--quadrature gausslegendre)",
            )
        )

    n = faith.get("n_examples")
    if isinstance(n, int) and n < MIN_CI_EXAMPLES:
        out.append(
            _warning(
                "too-few-examples",
                f"only {n} evaluation example(s): the bootstrap confidence interval of f means "
                "little (with one example it has width 0)",
                more_rows_fix(task, n, MIN_CI_EXAMPLES),
            )
        )
    ci = faith.get("ci")
    f = finite(faith.get("f"))
    if target is not None and f is not None and isinstance(ci, (list, tuple)) and len(ci) == 2:
        low, high = finite(ci[0]), finite(ci[1])
        bounds = [b for b in target if math.isfinite(b)]
        distance = min(abs(f - b) for b in bounds)
        if low is not None and high is not None and high - low > distance:
            out.append(
                _warning(
                    "ci-wider-than-margin",
                    f"the confidence interval [{low:.3g}, {high:.3g}] is wider than the distance "
                    f"{distance:.3g} from f to the target: whether the circuit meets it is not "
                    "settled",
                    _narrower_ci_fix(task, n, high - low, distance),
                )
            )

    out += _signal_warnings(faith, task)
    return out


def more_rows_fix(task: Mapping[str, Any], n: object, wanted: int) -> str:
    """How to evaluate on ``wanted`` examples instead of ``n``: ``--n-eval`` no larger than
    what the prompt file's test split holds (a bundled task draws as many as asked)."""
    available = task.get("n_test_rows")
    if not isinstance(available, int) or isinstance(available, bool):
        return f"evaluate on more examples (--n-eval {wanted})"
    name = task.get("data_file") or "the prompt file"
    rows = task.get("n_rows")
    split = f"{available} of its {rows} rows" if isinstance(rows, int) else f"{available} rows"
    if isinstance(n, int) and available <= n:
        return (
            f"every test row is used already (the test split of {name} has {split}): add rows "
            "to the file, or give it a split column that puts more of them in test"
        )
    fix = f"evaluate on more examples (--n-eval {min(available, wanted)}; the test split of {name} has {split})"
    return fix if available >= wanted else fix + f"; add rows to the file to reach {wanted}"


def _narrower_ci_fix(task: Mapping[str, Any], n: object, width: float, distance: float) -> str:
    """More examples: the interval narrows as 1/√n, so about n·(width/distance)² make it
    narrower than the distance to the target."""
    if not isinstance(n, int) or n < 1 or distance <= 0:
        return "evaluate on more examples (--n-eval)"
    return more_rows_fix(task, n, _examples_needed(n, width, distance))


def _examples_needed(n: int, spread: float, distance: float) -> int:
    """Examples that make a spread that shrinks as 1/√n (``spread`` at ``n`` examples)
    narrower than ``distance``: about n·(spread/distance)²."""
    return math.ceil(n * (spread / distance) ** 2) + 1


def t_upper_tail(t: float, df: int) -> float:
    """P(T ≥ t) for Student's t with ``df`` degrees of freedom, by the finite series for
    integer ``df`` (Abramowitz & Stegun 26.7.3–4)."""
    if df < 1:  # its caller passes n - 1 with n >= 2: a bug, not bad input (test_errors.py)
        raise ValueError(f"df must be at least 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, term, total = math.cos(theta) ** 2, 1.0, 1.0
    if df % 2:  # odd: A = 2/π (θ + sinθ cosθ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ...))
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        series = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
        inside = 2 / math.pi * (theta + series)
    else:  # even: A = sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ...)
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        inside = math.sin(theta) * total
    return (1 - inside) / 2 if t >= 0 else (1 + inside) / 2


def _signal_warnings(faith: Mapping[str, Any], task: Mapping[str, Any]) -> list[dict[str, str]]:
    """The model does not do the task (m(M) − m(∅) of the wrong sign, or a preference metric
    at or below 0), or the examples cannot show that it does: a one-sided t-test over the
    per-example m(M) − m(∅) (n − 1 degrees of freedom) does not reject 0 at
    :data:`SIGNAL_ALPHA`, which with few examples says little about the model."""
    m_full, m_empty = finite(faith.get("m_full")), finite(faith.get("m_empty"))
    se, n = finite(faith.get("m_diff_se")), faith.get("n_examples")
    metric = task.get("metric")
    if m_full is None or m_empty is None:
        return []
    signal = (m_empty - m_full) if metric in LOWER_IS_CLEAN else (m_full - m_empty)
    detail = f"m(M) = {m_full:.3g}, m(∅) = {m_empty:.3g}"
    if metric in PREFERENCE_METRICS and m_full <= 0 or signal <= 0:
        reason = (
            "the full model prefers the distractors (m(M) ≤ 0)"
            if metric in PREFERENCE_METRICS and m_full <= 0
            else "the ablated run scores at least as well as the clean one"
        )
        return [
            _warning(
                "model-does-not-do-task",
                f"the model does not do this task: {reason} ({detail}), so f is a ratio of noise",
                "use a model that does the task (check the task accuracy), or another task",
            )
        ]
    if se is None or not isinstance(n, int) or n < 2 or se == 0:
        return []  # one example: too-few-examples says so; se 0: every difference is equal
    p = t_upper_tail(signal / se, n - 1)
    if p < SIGNAL_ALPHA:
        return []
    # where t would pass at this effect: t = signal/se·√(n'/n) reaches the one-sided normal
    # quantile of SIGNAL_ALPHA (read at call time, like the test above)
    wanted = _examples_needed(n, NormalDist().inv_cdf(1 - SIGNAL_ALPHA) * se, signal)
    return [
        _warning(
            "task-signal-not-shown",
            f"these {n} evaluation examples do not show that the model does the task: "
            f"m(M) − m(∅) = {m_full - m_empty:.3g} ± {se:.2g} (standard error), and a one-sided "
            f"t-test of m(M) − m(∅) > 0 over the examples gives p = {p:.2g} "
            f"(t = {signal / se:.3g}, {n - 1} degree{'s' if n > 2 else ''} of freedom), not below "
            f"{SIGNAL_ALPHA:g}; "
            "f may then be a ratio of noise",
            more_rows_fix(task, n, max(wanted, n + 1))
            + "; if more examples do not help, check the task accuracy",
        )
    ]


def summary_text(metrics: Mapping[str, Any]) -> str:
    """The command line's summary: size, both verdicts, the curve's areas, then one line per
    warning."""
    c, graph, curve = (section_of(metrics, k) for k in ("circuit", "graph", "curve"))
    lines = [
        f"circuit: {c.get('n_edges')} of {graph.get('n_edges')} edges "
        f"({float(c.get('edge_fraction') or 0):.1%}), {c.get('n_nodes')} nodes; held-out curve: "
        + areas_text(recorded_areas(curve), digits=3),
        verdict_text(metrics),
    ]
    positions = section_of(metrics, "positions")
    if positions:
        comp, pf = section_of(positions, "comparison"), section_of(positions, "faithfulness")
        f = pf.get("f")
        lines.append(
            f"position-aware circuit ({positions.get('n_spans')} spans): "
            f"{comp.get('aware_n_edges')} (span, edge) pairs over "
            f"{comp.get('aware_n_edges_projected')} edges, held-out f = "
            + (f"{float(f):.4g}" if f is not None else "undefined")
            + f"; the position-agnostic circuit is {comp.get('agnostic_n_position_edges')} pairs"
        )
    listed = metrics.get("warnings")
    for w in listed if isinstance(listed, list) else []:
        lines.append(f"warning: {w.get('message')}; fix: {w.get('fix')}")
    return "\n".join(lines)
