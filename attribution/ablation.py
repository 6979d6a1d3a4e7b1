"""What replaces a clean write: the corrupted prompt's, a mean over reference prompts, or zero.

Ablations are objects (:class:`Patching`, :class:`MeanAblation`, :class:`ZeroAblation`);
everywhere an ablation is taken, the strings ``"patching"``, ``"mean"`` (with ``mean_data``)
and ``"zero"`` are accepted too (:func:`as_ablation`). Shared by attribution and faithfulness
evaluation, so both validate and ablate alike. A new ablation is a subclass with a ``name``
and :meth:`Ablation.writes` (and :meth:`Ablation.means` if it needs reference statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attribution.data import DataError, PromptPairs
from attribution.passes import collect_writes
from graphs import Graph

ABLATIONS = ("patching", "mean", "zero", "optimal")


class NoCounterfactualsError(DataError):
    """Data without corrupted prompts given to something that needs them."""

    def __init__(self, what: str):
        super().__init__(
            f"{what} needs corrupted (counterfactual) prompts, but the data has none "
            "(corrupted=None); add corrupted prompts, use ablation='mean' or 'zero', or a "
            "method that needs none (method='ifr')"
        )


class Ablation:
    """Base of the ablations; ``name`` is how results and the command line call it."""

    name: ClassVar[str] = ""

    @property
    def reference_data(self) -> PromptPairs | None:
        """Prompts the ablation takes statistics from (None: it needs none)."""
        return None

    def means(self, model, graph: Graph, batch_size: int, dtype, device) -> torch.Tensor | None:
        """Statistics computed once per call before the batches (None: none needed)."""
        return None

    def writes(
        self,
        model,
        graph: Graph,
        batch: PromptPairs,
        means: torch.Tensor | None,
        clean_writes: torch.Tensor,
        nodes: range | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ablated writes ``[batch, pos, n_forward, d]`` shaped like ``clean_writes`` (which
        holds the forward indices ``nodes`` only, when given), and the ablated run's logits
        at the metric positions ``[batch, vocab]`` when the ablation is a run of its own
        (None otherwise)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class Patching(Ablation):
    """The corrupted prompt's write (activation patching)."""

    name: ClassVar[str] = "patching"

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        if batch.corrupted is None:
            raise NoCounterfactualsError("ablation='patching'")
        return collect_writes(
            model, graph, batch.corrupted, batch.attention_mask, clean_writes.dtype, nodes,
            positions=batch.positions,
        )  # fmt: skip


@dataclass(frozen=True, repr=False)
class MeanAblation(Ablation):
    """The mean write of each node over the real clean tokens of ``reference`` prompts."""

    reference: PromptPairs
    name: ClassVar[str] = "mean"

    @property
    def reference_data(self) -> PromptPairs:
        return self.reference

    def means(self, model, graph, batch_size, dtype, device):
        return mean_writes(model, graph, self.reference.to(device), batch_size, dtype)

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        ref = means if nodes is None else means[nodes.start : nodes.stop]
        return ref.expand_as(clean_writes).clone(), None

    def __repr__(self) -> str:
        return f"MeanAblation({len(self.reference)} prompts)"


@dataclass(frozen=True, repr=False)
class ZeroAblation(Ablation):
    """Zero: the edge's write is removed."""

    name: ClassVar[str] = "zero"

    def writes(self, model, graph, batch, means, clean_writes, nodes=None):
        return torch.zeros_like(clean_writes[0, 0]).expand_as(clean_writes).clone(), None


def as_ablation(
    ablation: str | Ablation,
    mean_data: PromptPairs | None = None,
    metric="logit_diff",
    *,
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation object for ``ablation`` (a name, with ``mean_data`` for ``"mean"`` and
    ``"optimal"``, or an object); ``metric``, ``seed`` and ``quiet`` (progress of the fit) go
    to ``"optimal"``'s fit of its constants. ValueError names the choices or what is missing."""
    if isinstance(ablation, Ablation):
        if mean_data is not None:
            raise ValueError(
                "mean_data goes with ablation='mean'; with an ablation object, pass "
                "MeanAblation(mean_data) instead"
            )
        return ablation
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    if ablation == "mean":
        if mean_data is None:
            raise ValueError(
                "ablation='mean' needs mean_data: the prompts whose mean activations replace clean ones"
            )
        return MeanAblation(mean_data)
    if ablation == "optimal":
        from attribution.optimal_ablation import OptimalAblation  # it builds on this module

        if mean_data is None:
            raise ValueError(
                "ablation='optimal' needs mean_data: the prompts its constants are fit on"
            )
        return OptimalAblation(mean_data, metric=metric, seed=seed, quiet=quiet)
    return Patching() if ablation == "patching" else ZeroAblation()


def check_inputs(
    model,
    graph: Graph,
    data: PromptPairs,
    ablation: str | Ablation,
    mean_data=None,
    *,
    reads_corrupted: bool | None = None,
) -> Ablation:
    """The ablation object, after raising a clear error, before any model work, for an unknown
    ablation, mean ablation without reference data, a graph of another model, empty data,
    bad prompts, or data without corrupted prompts where they would be read
    (``reads_corrupted``; default: when the ablation is patching)."""
    ablation = as_ablation(ablation, mean_data)
    if reads_corrupted is None:
        reads_corrupted = ablation.name == "patching"
    if reads_corrupted and not data.has_corrupted:
        raise NoCounterfactualsError(f"ablation={ablation.name!r}")
    graph.check_compatible(model)
    if len(data) == 0:
        raise DataError("no examples: data is empty")
    vocab = int(model.cfg.d_vocab)
    data.validate(vocab)
    if ablation.reference_data is not None:
        ablation.reference_data.validate(vocab)
    return ablation


def mean_writes(model, graph: Graph, data: PromptPairs, batch_size: int, dtype) -> torch.Tensor:
    """Mean write of every upstream node over the real clean tokens of ``data``: ``[n_forward, d]``."""
    total, count = None, 0
    for _, batch in data.batches(batch_size):
        writes, _ = collect_writes(model, graph, batch.clean, batch.attention_mask, torch.float64)
        real = batch.attention_mask.bool()
        part = writes[real].sum(0)
        total = part if total is None else total + part
        count += int(real.sum())
    return (total / count).to(dtype)
