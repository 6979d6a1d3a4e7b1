"""Alignment metrics: interchange-intervention accuracy and RAVEL's Cause / Iso / Disentangle.

- IIA: the share of pairs where the intervened base run predicts the counterfactual label.
- Chance level: the share the best constant answer gets (the most frequent label).
- Normalised IIA: ``(IIA − chance) / (task accuracy − chance)``: 0 at chance, 1 when the
  intervention is as right as the model is on the task itself (Boundless DAS reports IIA next
  to task accuracy for this reason).
- RAVEL (Huang et al. 2024): Cause = IIA on pairs whose output should follow the source's
  attribute, Iso = IIA on pairs whose (other) attribute must stay the base's, Disentangle =
  (Cause + Iso) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from circuits.alignment.sites import AlignmentError

__all__ = [
    "chance_level",
    "disentangle",
    "iia",
    "normalized_iia",
    "ravel_scores",
]


def iia(predictions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Share of ``predictions == labels`` (over ``mask`` rows when given); NaN for no rows."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    if predictions.shape != labels.shape:
        raise AlignmentError(
            f"{list(predictions.shape)} predictions for {list(labels.shape)} labels"
        )
    right = predictions.cpu() == labels.cpu()
    if mask is not None:
        right = right[torch.as_tensor(mask).cpu().bool()]
    return float(right.float().mean()) if right.numel() else float("nan")


def chance_level(labels: torch.Tensor) -> float:
    """Accuracy of always answering the most frequent label."""
    labels = torch.as_tensor(labels).flatten()
    if labels.numel() == 0:
        return float("nan")
    _, counts = torch.unique(labels, return_counts=True)
    return float(counts.max()) / labels.numel()


def normalized_iia(value: float, chance: float, upper: float) -> float:
    """``(value − chance) / (upper − chance)``; ``upper`` is the model's task accuracy.

    Not clipped: below 0 means worse than a constant answer, above 1 better than the model's
    own accuracy (possible on few pairs)."""
    if upper <= chance:
        raise AlignmentError(
            f"task accuracy {upper:.3f} is not above chance {chance:.3f}: the model does not do "
            "the task, so IIA cannot be normalised"
        )
    return (value - chance) / (upper - chance)


def disentangle(cause: float, iso: float) -> float:
    return (cause + iso) / 2


def ravel_scores(
    predictions: torch.Tensor, labels: torch.Tensor, kinds: Sequence[str]
) -> dict[str, float]:
    """``{"cause", "iso", "disentangle"}`` from pairs marked ``"cause"``/``"isolate"``."""
    kinds = list(kinds)
    cause_mask = torch.tensor([k == "cause" for k in kinds])
    iso_mask = torch.tensor([k == "isolate" for k in kinds])
    if not cause_mask.any() or not iso_mask.any():
        raise AlignmentError("RAVEL scores need both 'cause' and 'isolate' pairs")
    cause = iia(predictions, labels, cause_mask)
    iso = iia(predictions, labels, iso_mask)
    return {"cause": cause, "iso": iso, "disentangle": disentangle(cause, iso)}
