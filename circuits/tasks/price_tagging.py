"""Price tagging, the Boundless DAS task (Wu et al. 2023).

"Please say yes only if it costs between 2.50 and 7.50 dollars, otherwise no. 3.10 dollars"
→ " Yes". Its causal model has two boolean intermediate variables, ``above_lower``
(price ≥ lower bound) and ``below_upper`` (price ≤ upper bound); the answer is " Yes" when
both hold. Corrupted prompts keep the bounds and move the price to the other side of the
decision, so the answer flips.
"""

from __future__ import annotations

import random

from circuits.tasks.base import Example, Task, words_of
from circuits.tasks.causal import CausalModel

__all__ = ["PRICE_CAUSAL_MODEL", "PriceTagging", "format_price"]

YES, NO = " Yes", " No"
TEMPLATE = (
    "Please say yes only if it costs between [LO] and [HI] dollars, otherwise no. [P] dollars"
)
MAX_CENTS = 999  # prices are 0.00 … 9.99

PRICE_CAUSAL_MODEL = CausalModel(
    inputs=("lower", "upper", "price"),
    mechanisms={
        "above_lower": lambda v: v["price"] >= v["lower"],
        "below_upper": lambda v: v["price"] <= v["upper"],
        "answer": lambda v: YES if v["above_lower"] and v["below_upper"] else NO,
    },
    output="answer",
    parents={
        "above_lower": ("price", "lower"),
        "below_upper": ("price", "upper"),
        "answer": ("above_lower", "below_upper"),
    },
)


def format_price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _prompt(lower: int, upper: int, price: int) -> str:
    return (
        TEMPLATE.replace("[LO]", format_price(lower))
        .replace("[HI]", format_price(upper))
        .replace("[P]", format_price(price))
    )


def _price(rng: random.Random, lower: int, upper: int, inside: bool) -> int:
    if inside:
        return rng.randint(lower, upper)
    outside = [(0, lower - 1), (upper + 1, MAX_CENTS)]
    outside = [(a, b) for a, b in outside if a <= b]
    a, b = rng.choices(outside, weights=[b - a + 1 for a, b in outside])[0]
    return rng.randint(a, b)


class PriceTagging(Task):
    """Price tagging; answers " Yes"/" No", corrupted price on the other side of the decision."""

    name = "price-tagging"
    metric = "logit_diff"
    description = "price tagging: 'say yes only if it costs between 2.50 and 7.50 dollars ... 3.10 dollars' -> Yes"
    causal_model = PRICE_CAUSAL_MODEL

    def sample(self, rng: random.Random) -> Example:
        # Bounds leave room on at least one side, so a price outside them exists.
        while True:
            lower, upper = sorted(rng.sample(range(MAX_CENTS + 1), 2))
            if lower > 0 or upper < MAX_CENTS:
                break
        inside = rng.random() < 0.5
        price = _price(rng, lower, upper, inside)
        corrupted_price = _price(rng, lower, upper, not inside)
        answer = self.causal_model.run({"lower": lower, "upper": upper, "price": price})["answer"]
        other = NO if answer == YES else YES
        return Example(
            clean=_prompt(lower, upper, price),
            corrupted=_prompt(lower, upper, corrupted_price),
            answers=(answer,),
            distractors=(other,),
            corrupted_answers=(other,),
            variables={
                "lower": lower,
                "upper": upper,
                "price": price,
                "corrupted_price": corrupted_price,
            },
        )

    def vocabulary(self) -> set[str]:
        words = {"Yes", "No", "."} | {str(d) for d in range(10)} | {f"{c:02d}" for c in range(100)}
        return words | set(words_of(_prompt(0, 0, 0)))
