"""Learned edge masks (Edge Pruning, Bhaskar et al. 2024; MIB's UGS baseline): one
hard-concrete gate per edge, trained so that the masked model keeps the task metric while a
sparsity penalty closes gates (the loop: :mod:`attribution.mask_training`).

Score of an edge: the trained gate's probability of being open, ``P(z > 0)`` in (0, 1):
non-negative, higher = keep. This is *not* the ``m(patched) − m(clean)`` convention of the
other methods; selection ranks by ``|score|`` by default, which ranks these correctly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from tqdm.auto import tqdm

from attribution.data import PromptPairs
from attribution.mask_training import (
    MaskBatch,
    MaskTrainingError,
    check_target,
    keep_probability,
    train_mask,
)
from attribution.methods.base import INTEGRATION_OPTIONS, AttributionMethod, Job, Option, batch_runs
from attribution.passes import NonFiniteMetricError
from graphs import Graph

WARM_STARTS = (None, "eap-ig-inputs")
_INTEGRATION = {option.name for option in INTEGRATION_OPTIONS}


class LearnedMask(AttributionMethod):
    """Edge masks learned by gradient descent on hard-concrete gates.

    Options (constructor keywords, or ``method_options`` of :func:`attribution.attribute`):
        train_steps: optimiser steps, one batch each (batches cycle in order).
        lr: Adam learning rate on ``log α``.
        target_edges: edge count the sparsity ramp aims at (1 … n_edges); None: a plain L0
            penalty.
        penalty: weight λ of the sparsity term.
        ramp: fraction of the steps over which the allowed edge count falls to the target.
        seed: seeds the initial ``log α`` noise and the gates' samples.
        warm_start: None (``log α ~ N(init, 0.5²)``) or ``"eap-ig-inputs"`` (``log α`` from
            the rank of each edge's ``|EAP-IG|`` score, from −1 for the lowest to 3 for the
            highest).
        init: mean initial ``log α`` (2: gates almost open, the full model).

    Cost: ``train_steps`` forward and backward passes of one batch (plus one forward pass per
    batch for the ablated writes and one for the empty circuit; a warm start adds EAP-IG's)."""

    name = "mask"
    description = "learned hard-concrete edge mask (Edge Pruning)"
    batch_invariant = False
    # in the order of the command line's flags and of the recorded method_options
    options = (
        Option("train_steps", int, 200, "training steps, one batch each", "steps", "N"),
        Option(
            "target_edges", int, None, "edge count the sparsity ramp aims at", "target-edges",
            "K", default_text="none, a plain L0 penalty",
        ),
        Option("lr", float, 0.1, "Adam learning rate", "lr", "LR"),
        Option(
            "warm_start", str, None, "start the gates from EAP-IG's edge ranking", "warm-start",
            choices=("eap-ig-inputs",), default_text="random start, seeded by --seed",
        ),
        Option("penalty", float, 1.0, "weight λ of the sparsity term"),
        Option("ramp", float, 0.5, "fraction of the steps the edge count falls over"),
        Option("seed", int, 0, "seeds the initial log α noise and the gates' samples"),
        Option("init", float, 2.0, "mean initial log α (2: gates almost open)"),
        *INTEGRATION_OPTIONS,  # for the eap-ig-inputs warm start
    )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """The mask's own options; the warm start's ``steps`` and ``quadrature_rule`` are
        recorded as the run's (``AttributionResult.settings``)."""
        return {
            name: value for name, value in super().settings().items() if name not in _INTEGRATION
        }

    def check(self, graph: Graph, ablation) -> None:
        super().check(graph, ablation)
        check_target(graph, self.target_edges)

    def check_options(self) -> None:
        """Raise MaskTrainingError for options that are wrong whatever the graph."""
        target = self.target_edges
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, int) or target < 1
        ):
            raise MaskTrainingError(
                f"target_edges must be a whole number of edges >= 1 (or None), got {target!r}"
            )
        if isinstance(self.train_steps, bool) or not isinstance(self.train_steps, int):
            raise MaskTrainingError(f"train_steps must be a whole number, got {self.train_steps!r}")
        if self.train_steps < 1:
            raise MaskTrainingError(f"train_steps must be >= 1, got {self.train_steps}")
        if not self.lr > 0 or self.penalty < 0 or not 0 < self.ramp <= 1:
            raise MaskTrainingError(
                f"need lr > 0, penalty >= 0 and 0 < ramp <= 1; got lr={self.lr}, "
                f"penalty={self.penalty}, ramp={self.ramp}"
            )
        if self.warm_start not in WARM_STARTS:
            raise MaskTrainingError(
                f"unknown warm_start {self.warm_start!r}; choose None or 'eap-ig-inputs'"
            )

    def rows_per_example(self, graph: Graph) -> int:
        return 0  # training shows its own progress, in steps

    def score_batch(self, job, batch, scores):
        raise MaskTrainingError("a learned mask trains on all the data at once: use score_data")

    def score_data(
        self, job: Job, data: PromptPairs, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train the mask on ``data`` and add ``len(data) · P(gate open)`` into ``scores`` (so
        that :func:`attribute`'s mean over examples is the probability); return the clean and
        ablated metric per example (``[len(data)]`` each)."""
        device = scores.device
        batches, m_clean, m_ablated = [], [], []
        for first, part in data.batches(job.batch_size):
            part = part.to(device)
            try:
                runs = batch_runs(job, part)
            except NonFiniteMetricError as err:  # name the example of `data`
                raise NonFiniteMetricError(err.value, first + err.example) from None
            batches.append(MaskBatch(part, runs.clean_logits, runs.m_clean, runs.ablated))
            m_clean.append(runs.m_clean)
            m_ablated.append(runs.m_ablated)
        init = self.initial_log_alpha(job, batches, device)
        log_alpha, self.last_diagnostics = train_mask(
            job.model, job.graph, batches, job.metric_fn, init, train_steps=self.train_steps,
            lr=self.lr, penalty=self.penalty, target_edges=self.target_edges, ramp=self.ramp,
            seed=self.seed, quiet=job.progress.disable,
        )  # fmt: skip
        real = job.graph.real_edges.to(device)
        scores += (keep_probability(log_alpha) * real).to(scores.dtype) * len(data)
        return torch.cat(m_clean), torch.cat(m_ablated)

    def initial_log_alpha(self, job: Job, batches: list[MaskBatch], device) -> torch.Tensor:
        """``[n_forward, n_backward]`` starting ``log α`` (see the class's ``warm_start``)."""
        graph = job.graph
        shape = (graph.n_forward, graph.n_backward)
        if self.warm_start is None:
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(shape, generator=generator, dtype=torch.float64)
            return (self.init + 0.5 * noise).to(device=device, dtype=job.dtype)
        from attribution.methods.ig_inputs import EAPIGInputs  # the registry imports us

        ig = EAPIGInputs(steps=self.steps, quadrature_rule=self.quadrature_rule)
        quiet_job = replace(job, progress=tqdm(disable=True))
        eap = torch.zeros(shape, dtype=torch.float64, device=device)
        for batch in batches:
            ig.score_batch(quiet_job, batch.data, eap)
        real = graph.real_edges.to(device)
        keys = eap.abs()[real]
        rank = torch.empty_like(keys)
        rank[keys.argsort(stable=True)] = torch.arange(len(keys), dtype=keys.dtype, device=device)
        init = torch.full(shape, -1.0, dtype=torch.float64, device=device)
        init[real] = -1.0 + 4.0 * rank / max(1, len(keys) - 1)
        return init.to(job.dtype)

    def diagnostics(self, scores, diagnostics) -> None:
        diagnostics.update(getattr(self, "last_diagnostics", {}))
