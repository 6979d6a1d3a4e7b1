"""The numbers the run record derives from what the job computed: rounding for
``metrics.json``, distinct prompts, the standard error and quantiles of per-example metrics,
decoded example pairs, and the comparison of a position-aware circuit with the
position-agnostic one (Jaccard index, ``top_overlap``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from attribution.data import PromptPairs
from circuits.search.select import ranked_position_edges
from graphs import Graph

__all__ = [
    "QUANTILES",
    "distinct_prompts",
    "example_pairs",
    "jaccard",
    "quantiles",
    "rounded",
    "standard_error",
    "top_overlap",
]

N_EXAMPLE_PAIRS = 3  # prompt pairs shown in the report
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # of the per-example metrics


def rounded(x: Any, digits: int = 6) -> Any:
    """``x`` with every float (in lists, tuples and dicts too) to ``digits`` significant digits."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    return x


def distinct_prompts(pairs: PromptPairs, role: str) -> dict[str, int]:
    """How many different clean and corrupted prompts ``pairs`` hold (repeats inflate n);
    two prompts are the same when their real tokens are (padding is masked out)."""

    def distinct(tokens: torch.Tensor) -> int:
        rows = torch.cat([tokens * pairs.attention_mask, pairs.attention_mask], dim=1)
        return int(torch.unique(rows, dim=0).shape[0])

    return {
        f"n_{role}_distinct_clean": distinct(pairs.clean),
        f"n_{role}_distinct_corrupted": distinct(pairs.corrupted),
    }


def standard_error(full: list[float], empty: list[float]) -> float | None:
    """Standard error of the mean of m(M) − m(∅) over examples (None below two)."""
    if len(full) < 2:
        return None
    diff = torch.tensor(full, dtype=torch.float64) - torch.tensor(empty, dtype=torch.float64)
    return float(diff.std() / len(diff) ** 0.5)


def quantiles(values: list[float]) -> list[float]:
    """The :data:`QUANTILES` of ``values``."""
    return torch.quantile(
        torch.tensor(values, dtype=torch.float64), torch.tensor(QUANTILES, dtype=torch.float64)
    ).tolist()


def example_pairs(data: Any, tokenizer: Any) -> list[dict[str, str]]:
    """The first prompt pairs, decoded from the token ids the model was given."""

    def text(ids: torch.Tensor) -> str:
        return tokenizer.decode([int(i) for i in ids if int(i) >= 0])

    out = []
    for i in range(min(N_EXAMPLE_PAIRS, len(data))):
        real = data.attention_mask[i].bool()
        out.append(
            {
                "clean": text(data.clean[i][real]),
                "corrupted": text(data.corrupted[i][real]),
                "answer": text(data.answers[i][:1]),
                "distractor": text(data.distractors[i][:1]) if data.distractors.shape[1] else "",
            }
        )
    return out


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """|a ∩ b| / |a ∪ b| of two bool masks (None when both are empty)."""
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else None


def top_overlap(graph: Graph, *, fraction: float = 0.01, absolute: bool = True) -> dict:
    """Of the top ``fraction`` of position-agnostic edges (``k`` of them, at least 1), the
    share also among the first ``k`` distinct edges of the position-aware ranking."""
    k = max(1, math.ceil(fraction * graph.n_edges))
    agnostic = set(graph.ranked_edge_indices(absolute=absolute)[:k].tolist())
    per_edge = graph.n_forward * graph.n_backward
    distinct: list[int] = []
    seen: set[int] = set()
    for i in ranked_position_edges(graph, absolute=absolute).tolist():
        edge = i % per_edge
        if edge not in seen:
            seen.add(edge)
            distinct.append(edge)
            if len(distinct) == k:
                break
    return {"fraction": fraction, "k": k, "shared": len(agnostic & set(distinct)) / k}
