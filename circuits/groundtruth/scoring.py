"""Scores of a ranking against a known circuit: AUROC (ties averaged), ROC points, precision
and recall. Inputs are flat 1-D tensors over the graph's real edges."""

from __future__ import annotations

import torch

from circuits.groundtruth.custom import GroundTruthError

__all__ = ["auroc", "precision_recall", "roc_points"]


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``values`` (ascending), tied values sharing their mean rank."""
    values = values.double()
    order = torch.argsort(values, stable=True)
    sorted_values = values[order]
    ranks = torch.empty_like(values)
    start = 0
    n = len(values)
    while start < n:
        end = start
        while end + 1 < n and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more likely positive) for bool
    ``labels``: the probability that a random positive outscores a random negative, ties
    counting one half (Mann-Whitney U over average ranks). GroundTruthError without both classes."""
    labels = labels.bool().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise GroundTruthError(f"AUROC needs positives and negatives, got {n_pos} and {n_neg}")
    ranks = _average_ranks(scores.flatten())
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(scores: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[float]]:
    """``(fpr, tpr)`` at every distinct threshold, from (0, 0) to (1, 1); tied scores form one
    step, so the trapezoid area under these points equals :func:`auroc`."""
    labels = labels.bool().flatten()
    scores = scores.double().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    for value in torch.unique(scores).flip(0):
        at = scores == value
        tp += int((at & labels).sum())
        fp += int((at & ~labels).sum())
        fpr.append(fp / max(n_neg, 1))
        tpr.append(tp / max(n_pos, 1))
    return fpr, tpr


def precision_recall(found: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Precision ``|found ∩ truth| / |found|`` and recall ``|found ∩ truth| / |truth|`` of
    bool masks (precision of an empty selection is 0)."""
    found, truth = found.bool(), truth.bool()
    hits = int((found & truth).sum())
    return hits / max(int(found.sum()), 1), hits / max(int(truth.sum()), 1)
