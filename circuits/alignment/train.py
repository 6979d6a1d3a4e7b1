"""Running interchange interventions on a bridge, training them, and evaluating them.

:func:`intervened_logits` runs the base prompts with the site's vectors replaced by
``intervention(base vector, source vector)``; the source vectors come from a no-grad run of the
source prompts (:func:`source_vectors`, computed once per data set, since the model is frozen).

:func:`train_intervention` trains only the intervention's parameters (AdamW), with the model's
parameters frozen for the duration (their ``requires_grad`` is restored afterwards, and the
function checks that no model parameter received a gradient). Boundless DAS's temperature is
annealed linearly from ``temperature_start`` to ``temperature_end`` over the steps, and its loss
adds ``boundary_weight · width / d``. The learning rate decays linearly to 0 (``lr_decay``). Held-out IIA (hard mask) is measured every ``eval_every``
steps; training stops when it has not improved for ``patience`` evaluations (or reached
``target_iia``) and the best state is restored.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from attribution.passes import frozen_parameters
from circuits.alignment.data import CounterfactualPairs
from circuits.alignment.interventions import BoundlessDAS, Intervention
from circuits.alignment.metrics import chance_level, iia, ravel_scores
from circuits.alignment.sites import AlignmentError, Site, resolve_positions, validate_site
from circuits.tasks.accuracy import next_token_logits

__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "intervened_logits",
    "predict",
    "source_vectors",
    "task_accuracy",
    "train_intervention",
]


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _named(pairs: CounterfactualPairs, which: int) -> dict[str, torch.Tensor]:
    return {k: v[which] for k, v in pairs.positions.items()}


def _gather(t: torch.Tensor, site: Site, pos: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(t.shape[0], device=t.device)[:, None].expand_as(pos)
    if site.head is not None:
        return t[rows, pos, site.head]
    return t[rows, pos]


def source_vectors(
    model: Any, site: Site, pairs: CounterfactualPairs, *, batch_size: int = 128
) -> torch.Tensor:
    """``[n, k, d]`` the source prompts' vectors at the site (no grad)."""
    validate_site(model, site)
    device = _device(model)
    pos_all = resolve_positions(site, pairs.source_mask, _named(pairs, 1))
    out = []
    for start in range(0, len(pairs), batch_size):
        sl = slice(start, start + batch_size)
        pos = pos_all[sl].to(device)
        seen: dict[str, torch.Tensor] = {}

        def grab(t, hook, pos=pos, seen=seen):
            seen["v"] = _gather(t, site, pos).detach()
            return t

        with torch.no_grad(), model.hooks(fwd_hooks=[(site.hook, grab)]):
            model(pairs.source[sl].to(device), attention_mask=pairs.source_mask[sl].to(device))
        out.append(seen["v"])
    return torch.cat(out)


def intervened_logits(
    model: Any,
    site: Site,
    intervention: Intervention,
    pairs: CounterfactualPairs,
    sources: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[n, vocab]`` next-token logits after each base prompt's last token, with the site's
    vectors interchanged (gradients flow into the intervention when grad is enabled)."""
    if sources is None:
        sources = source_vectors(model, site, pairs)
    device = _device(model)
    pos = resolve_positions(site, pairs.base_mask, _named(pairs, 0)).to(device)
    sources = sources.to(device)
    if sources.shape[:2] != pos.shape:
        raise AlignmentError(
            f"source vectors cover {sources.shape[1]} positions per example, the base "
            f"{pos.shape[1]}; base and source need the same number of site positions"
        )

    def swap(t, hook):
        base = _gather(t, site, pos)
        new = intervention(base, sources.to(base.dtype)).to(t.dtype)
        rows = torch.arange(t.shape[0], device=t.device)[:, None].expand_as(pos)
        index = (rows, pos) if site.head is None else (rows, pos, torch.full_like(pos, site.head))
        return t.index_put(index, new)

    mask = pairs.base_mask.to(device)
    with model.hooks(fwd_hooks=[(site.hook, swap)]):
        logits = model(pairs.base.to(device), attention_mask=mask)
    last = mask.long().sum(-1) - 1
    return logits[torch.arange(logits.shape[0], device=device), last]


def _restrict(
    logits: torch.Tensor, labels: torch.Tensor, candidates: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits over ``candidates`` only, and labels as indices into them."""
    if candidates is None:
        return logits, labels, None
    cand = torch.as_tensor(list(candidates), device=logits.device)
    match = labels.to(logits.device)[:, None] == cand[None, :]
    if not bool(match.any(-1).all()):
        raise AlignmentError("a label is not among the candidate tokens")
    return logits[:, cand], match.float().argmax(-1), cand


def _predicted_tokens(
    logits: torch.Tensor, labels: torch.Tensor, candidates: Sequence[int] | None
) -> torch.Tensor:
    """``[n]`` token ids of the highest logits (among ``candidates`` when given), on the CPU."""
    scores, _, cand = _restrict(logits, labels, candidates)
    best = scores.argmax(-1)
    return (cand[best] if cand is not None else best).cpu()


@torch.no_grad()
def predict(
    model: Any,
    site: Site,
    intervention: Intervention,
    pairs: CounterfactualPairs,
    *,
    candidates: Sequence[int] | None = None,
    batch_size: int = 128,
    sources: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[n]`` predicted token ids of the intervened runs (intervention in eval mode)."""
    was_training = intervention.training
    intervention.eval()
    if sources is None:
        sources = source_vectors(model, site, pairs, batch_size=batch_size)
    preds = []
    try:
        for start in range(0, len(pairs), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(pairs)))
            logits = intervened_logits(model, site, intervention, pairs.select(idx), sources[idx])
            preds.append(_predicted_tokens(logits, pairs.labels[idx], candidates))
    finally:
        intervention.train(was_training)
    return torch.cat(preds)


@torch.no_grad()
def task_accuracy(
    model: Any,
    pairs: CounterfactualPairs,
    *,
    candidates: Sequence[int] | None = None,
    batch_size: int = 128,
) -> float:
    """The model's own accuracy on the base prompts (against ``base_labels``), no intervention:
    the upper bound for normalised IIA."""
    device = _device(model)
    preds = []
    for start in range(0, len(pairs), batch_size):
        sl = slice(start, start + batch_size)
        mask = pairs.base_mask[sl].to(device)
        logits = next_token_logits(model, pairs.base[sl].to(device), mask, mask.long().sum(-1) - 1)
        preds.append(_predicted_tokens(logits, pairs.base_labels[sl], candidates))
    return iia(torch.cat(preds), pairs.base_labels)


def evaluate(
    model: Any,
    site: Site,
    intervention: Intervention,
    pairs: CounterfactualPairs,
    *,
    candidates: Sequence[int] | None = None,
    batch_size: int = 128,
) -> dict[str, float]:
    """IIA on all pairs, on informative pairs (label ≠ base label) and on the rest, the chance
    level, and — when the pairs mix ``"cause"`` and ``"isolate"`` kinds — Cause/Iso/Disentangle."""
    preds = predict(model, site, intervention, pairs, candidates=candidates, batch_size=batch_size)
    out = {
        "iia": iia(preds, pairs.labels),
        "iia_informative": iia(preds, pairs.labels, pairs.informative),
        "iia_uninformative": iia(preds, pairs.labels, ~pairs.informative),
        "chance": chance_level(pairs.labels),
        "informative_share": pairs.informative_share,
        "n": float(len(pairs)),
    }
    kinds = set(pairs.kinds)
    if {"cause", "isolate"} <= kinds:
        out.update(ravel_scores(preds, pairs.labels, pairs.kinds))
    return out


@dataclass
class TrainConfig:
    """Training settings (defaults suit the bundled toy models).

    ``kind_weights`` weights the loss of each pair kind (MDAS: ``{"cause": 1, "isolate": 1}``);
    each kind's cross-entropy is averaged over its pairs in the batch before weighting.
    ``candidates`` restricts loss and predictions to these token ids (default: full vocab).
    """

    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    boundary_lr: float = 1e-2
    weight_decay: float = 0.0
    lr_decay: bool = True
    boundary_weight: float = 1.0
    temperature_start: float = 50.0
    temperature_end: float = 0.1
    eval_every: int = 50
    patience: int | None = 4
    target_iia: float | None = None
    kind_weights: Mapping[str, float] | None = None
    candidates: Sequence[int] | None = None
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    """The trained intervention (best held-out state restored) and what happened."""

    intervention: Intervention
    history: list[dict[str, float]] = field(default_factory=list)
    best_iia: float = float("nan")
    best_step: int = -1
    steps: int = 0
    stopped_early: bool = False


def _loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kinds: Sequence[str],
    weights: Mapping[str, float] | None,
    candidates: Sequence[int] | None,
) -> torch.Tensor:
    scores, target, _ = _restrict(logits, labels, candidates)
    ce = F.cross_entropy(scores.float(), target.to(scores.device), reduction="none")
    if not weights:
        return ce.mean()
    total = ce.new_zeros(())
    for kind, w in weights.items():
        rows = torch.tensor([k == kind for k in kinds], device=ce.device)
        if rows.any():
            total = total + float(w) * ce[rows].mean()
    return total


def _optimizer(
    model: Any, intervention: Intervention, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the intervention's parameters (a Boundless DAS boundary with its own
    rate and no weight decay) and its learning-rate schedule."""
    params = list(intervention.named_parameters())
    model_params = {id(p) for p in model.parameters()}
    if any(id(p) in model_params for _, p in params):
        raise AlignmentError("the intervention shares parameters with the model")
    boundary = [p for n, p in params if n in ("lo", "hi")]
    others = [p for n, p in params if n not in ("lo", "hi")]
    groups = [{"params": others, "lr": config.lr}]
    if boundary:
        groups.append({"params": boundary, "lr": config.boundary_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        (lambda s: 1.0 - s / max(1, config.steps)) if config.lr_decay else (lambda s: 1.0),
    )
    return optimizer, scheduler


def _train_step(
    model: Any,
    site: Site,
    intervention: Intervention,
    batch: CounterfactualPairs,
    sources: torch.Tensor,
    config: TrainConfig,
    step: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> float:
    """One optimiser step on ``batch`` (a Boundless DAS mask annealed to this step's
    temperature first and regularised); returns the loss."""
    boundless = isinstance(intervention, BoundlessDAS)
    if boundless:
        frac = (step - 1) / max(1, config.steps - 1)
        intervention.set_temperature(
            config.temperature_start + frac * (config.temperature_end - config.temperature_start)
        )
    with torch.enable_grad():
        logits = intervened_logits(model, site, intervention, batch, sources)
        loss = _loss(logits, batch.labels, batch.kinds, config.kind_weights, config.candidates)
        if boundless:
            loss = loss + config.boundary_weight * intervention.regularizer()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


@dataclass
class _HeldOut:
    """The held-out evaluation of :func:`train_intervention`: records each evaluation in
    ``result``, keeps the best state, and says when to stop."""

    model: Any
    site: Site
    intervention: Intervention
    eval_pairs: CounterfactualPairs
    eval_sources: torch.Tensor
    config: TrainConfig
    result: TrainResult
    best_state: dict
    bad_evals: int = 0

    def __call__(self, step: int, loss: float) -> bool:
        """Evaluate at ``step``; True to stop (target IIA reached or patience spent)."""
        config, result, intervention = self.config, self.result, self.intervention
        preds = predict(
            self.model, self.site, intervention, self.eval_pairs,
            candidates=config.candidates, sources=self.eval_sources,
        )  # fmt: skip
        score = iia(preds, self.eval_pairs.labels)
        entry = {"step": float(step), "loss": loss, "iia": score}
        if isinstance(intervention, BoundlessDAS):
            entry["temperature"] = float(intervention.temperature)
            entry["width"] = float(intervention.width().detach())
        result.history.append(entry)
        first = math.isnan(result.best_iia)
        if first or score >= result.best_iia:  # ties: keep the later (smaller, colder) state
            self.bad_evals = 0 if first or score > result.best_iia else self.bad_evals + 1
            result.best_iia, result.best_step = score, step
            self.best_state = copy.deepcopy(intervention.state_dict())
        else:
            self.bad_evals += 1
        if config.target_iia is not None and score >= config.target_iia:
            return True
        return config.patience is not None and self.bad_evals > config.patience


def train_intervention(
    model: Any,
    site: Site,
    intervention: Intervention,
    train_pairs: CounterfactualPairs,
    eval_pairs: CounterfactualPairs | None = None,
    *,
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train ``intervention`` at ``site`` so that the intervened base runs predict
    ``train_pairs.labels``; early-stop on IIA over ``eval_pairs`` (default: the training pairs).

    Raises:
        AlignmentError: bad site, an intervention of the wrong width, empty data.
        RuntimeError: a model parameter received a gradient (the model must stay frozen).
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    d = validate_site(model, site)
    if intervention.d != d:
        raise AlignmentError(
            f"the intervention is {intervention.d} wide but {site.label} has hidden size {d}"
        )
    if len(train_pairs) == 0:
        raise AlignmentError("no training pairs")
    eval_pairs = eval_pairs if eval_pairs is not None else train_pairs
    intervention.to(_device(model))
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    optimizer, scheduler = _optimizer(model, intervention, config)
    result = TrainResult(intervention=intervention)
    best_state = copy.deepcopy(intervention.state_dict())
    with frozen_parameters(model):
        train_sources = source_vectors(model, site, train_pairs)
        held_out = _HeldOut(
            model, site, intervention, eval_pairs, source_vectors(model, site, eval_pairs),
            config, result, best_state,
        )  # fmt: skip
        bar = tqdm(total=config.steps, disable=not config.progress, desc=f"train {site.label}")
        step = 0
        intervention.train()
        for step in range(1, config.steps + 1):
            idx = torch.randint(
                len(train_pairs), (min(config.batch_size, len(train_pairs)),), generator=gen
            )
            loss_value = _train_step(
                model, site, intervention, train_pairs.select(idx), train_sources[idx], config,
                step, optimizer, scheduler,
            )  # fmt: skip
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if step % config.eval_every == 0 or step == config.steps:
                if held_out(step, loss_value):
                    result.stopped_early = step < config.steps
                    break
        bar.close()
        leaked = [n for n, p in model.named_parameters() if p.grad is not None]
        if leaked:  # a bug here, not bad input: stays a built-in (tests/test_errors.py)
            raise RuntimeError(f"model parameters received gradients: {leaked[:3]}")
    result.steps = step
    intervention.load_state_dict(held_out.best_state)
    intervention.eval()
    return result
