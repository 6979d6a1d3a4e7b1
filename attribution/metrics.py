"""Task metrics, computed per example from the logits at the metric position.

Every metric has the signature ``metric(logits, clean_logits, data) -> Tensor[n]`` where
``logits`` and ``clean_logits`` are ``[n, vocab]`` (the run being measured and the unpatched
clean run, at each example's metric position) and ``data`` is the batch's
:class:`~attribution.data.PromptPairs`. The attributed quantity is the mean over examples.

Sign convention (used everywhere in this project): an edge's score estimates
``m(clean run with the edge patched) - m(clean run)``. For ``logit_diff``, ``prob_diff`` and
``log_prob`` higher means more of the clean behaviour, so important edges get negative scores;
``kl`` is 0 on the clean run and grows with damage, so important edges get positive scores.
Pruning ranks by ``|score|`` by default, which makes both work.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attribution.data import PromptPairs
from graphs.errors import CircuitDiscoveryError

Metric = Callable[[torch.Tensor, torch.Tensor, PromptPairs], torch.Tensor]


class MetricError(CircuitDiscoveryError, ValueError):
    """An unknown metric name, or a metric callable that returns the wrong shape."""


def _gather_mean(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean of ``values[i, ids[i, j]]`` over the non-negative ids of each row (0 if none)."""
    valid = ids >= 0
    picked = values.gather(1, ids.clamp(min=0)) * valid
    return picked.sum(1) / valid.sum(1).clamp(min=1)


def _gather_sum(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    valid = ids >= 0
    return (values.gather(1, ids.clamp(min=0)) * valid).sum(1)


def logit_diff(logits: torch.Tensor, clean_logits: torch.Tensor, data: PromptPairs) -> torch.Tensor:
    """Mean answer logit minus mean distractor logit (just the answer logit if no distractors)."""
    return _gather_mean(logits, data.answers) - _gather_mean(logits, data.distractors)


def prob_diff(logits: torch.Tensor, clean_logits: torch.Tensor, data: PromptPairs) -> torch.Tensor:
    """Probability mass on the answers minus mass on the distractors."""
    probs = logits.softmax(-1)
    return _gather_sum(probs, data.answers) - _gather_sum(probs, data.distractors)


def log_prob(logits: torch.Tensor, clean_logits: torch.Tensor, data: PromptPairs) -> torch.Tensor:
    """Log of the probability mass on the answers."""
    logp = logits.log_softmax(-1)
    valid = data.answers >= 0
    picked = logp.gather(1, data.answers.clamp(min=0)).masked_fill(~valid, float("-inf"))
    return picked.logsumexp(1)


def kl(logits: torch.Tensor, clean_logits: torch.Tensor, data: PromptPairs) -> torch.Tensor:
    """KL(clean distribution || this run's distribution); 0 on the clean run."""
    clean_logp = clean_logits.log_softmax(-1)
    logp = logits.log_softmax(-1)
    return (clean_logp.exp() * (clean_logp - logp)).sum(-1)


METRICS: dict[str, Metric] = {
    "logit_diff": logit_diff,
    "prob_diff": prob_diff,
    "log_prob": log_prob,
    "kl": kl,
}


def get_metric(metric: str | Metric) -> Metric:
    """A metric by name (``logit_diff``, ``prob_diff``, ``log_prob``, ``kl``) or a callable."""
    if callable(metric):
        return metric
    try:
        return METRICS[metric.replace("-", "_")]
    except KeyError:
        raise MetricError(
            f"unknown metric {metric!r}; choose one of {sorted(METRICS)} or pass a callable"
        ) from None
