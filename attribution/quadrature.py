"""Integration rules for integrated gradients, from captum's approximation methods."""

from __future__ import annotations

from captum.attr._utils.approximation_methods import approximation_parameters

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """``(weights, alphas)`` of ``steps`` points on [0, 1] for ``rule``; weights sum to 1.

    ``riemann_left`` gives α = k/m, k = 0..m-1, the EAP-IG reference's choice."""
    rule = rule.replace("-", "_")
    if rule not in RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}; choose one of {', '.join(RULES)}")
    if steps < 1 or (rule == "riemann_trapezoid" and steps < 2):
        raise ValueError(
            f"{rule} needs at least {2 if rule == 'riemann_trapezoid' else 1} steps, got {steps}"
        )
    if steps == 1 and rule != "gausslegendre":  # captum asserts steps > 1 for Riemann rules
        return [1.0], [{"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]]
    step_sizes, alphas = approximation_parameters(rule)
    weights = [float(w) for w in step_sizes(steps)]
    if rule == "riemann_trapezoid":
        # captum gives every point 1/m (ends halved), which sums to (m-1)/m; points spaced
        # 1/(m-1) apart need weights 1/(m-1) (ends halved)
        weights = [w * steps / (steps - 1) for w in weights]
    return weights, [float(a) for a in alphas(steps)]
