"""What replaces a clean write: the corrupted prompt's, a mean over reference prompts, or zero.

Ablations are objects (:class:`Patching`, :class:`MeanAblation`, :class:`ZeroAblation`,
:class:`~attribution.optimal_ablation.OptimalAblation`); everywhere an ablation is taken, its
name is accepted too (:func:`as_ablation`). Shared by attribution and faithfulness evaluation,
so both validate and ablate alike.

A name becomes an object in one place, :func:`build_ablation`: it looks the class up
(:func:`ablation_class`) and asks it what it needs (``needs_reference``: prompts to take
statistics from or fit on) and how to build itself (:meth:`Ablation.build`), so no caller
compares names. A new ablation is a subclass with a ``name``, :meth:`Ablation.writes` (and
:meth:`Ablation.means` and ``needs_reference`` if it needs reference statistics), listed in
:func:`ablation_classes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from attribution.data import DataError, PromptPairs
from attribution.passes import collect_writes
from graphs import Graph
from graphs.errors import CircuitDiscoveryError

ABLATIONS = ("patching", "mean", "zero", "optimal")


class AblationError(CircuitDiscoveryError, ValueError):
    """An unknown ablation name, or an ablation without the reference prompts it needs."""


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
    #: it takes statistics from (or fits on) reference prompts, given to :meth:`build`
    needs_reference: ClassVar[bool] = False
    #: it reads the corrupted prompts, so data without them cannot be ablated with it
    reads_corrupted: ClassVar[bool] = False

    @classmethod
    def build(
        cls, reference: PromptPairs | None, *, metric="logit_diff", seed: int = 0, quiet=True
    ) -> Ablation:
        """The ablation from its recorded settings: ``reference`` (when ``needs_reference``),
        the run's ``metric`` and ``seed``, and ``quiet`` (no progress bar of a fit)."""
        return cls()

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
    reads_corrupted: ClassVar[bool] = True

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
    needs_reference: ClassVar[bool] = True

    @classmethod
    def build(cls, reference, *, metric="logit_diff", seed=0, quiet=True):
        return cls(reference)

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


def ablation_classes() -> dict[str, type[Ablation]]:
    """Every ablation class by name, in :data:`ABLATIONS` order."""
    from attribution.optimal_ablation import OptimalAblation  # it builds on this module

    classes = (Patching, MeanAblation, ZeroAblation, OptimalAblation)
    return {cls.name: cls for cls in classes}


def ablation_class(name: str) -> type[Ablation]:
    """The class of the ablation called ``name``; AblationError names the choices."""
    classes = ablation_classes()
    if name not in classes:
        raise AblationError(f"unknown ablation {name!r}; choose one of {', '.join(classes)}")
    return classes[name]


def build_ablation(
    name: str,
    reference: PromptPairs | Callable[[], PromptPairs] | None = None,
    *,
    metric="logit_diff",
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation called ``name``, rebuilt from a run's settings: the one place a name
    becomes an object. ``reference`` (prompts, or a function loading them, called only when
    the ablation needs them) gives mean and optimal ablation their statistics; ``metric`` and
    ``seed`` are the run's (optimal ablation fits its constants with them). AblationError for
    an unknown name or missing reference prompts."""
    cls = ablation_class(name)
    if not cls.needs_reference:
        return cls.build(None, metric=metric, seed=seed, quiet=quiet)
    if callable(reference):
        reference = reference()
    if reference is None:
        raise AblationError(
            f"ablation={name!r} needs mean_data: the reference prompts it takes its "
            "statistics from (mean) or fits its constants on (optimal)"
        )
    return cls.build(reference, metric=metric, seed=seed, quiet=quiet)


def as_ablation(
    ablation: str | Ablation,
    mean_data: PromptPairs | None = None,
    metric="logit_diff",
    *,
    seed: int = 0,
    quiet: bool = True,
) -> Ablation:
    """The ablation object for ``ablation`` (an object, or a name built by
    :func:`build_ablation` with ``mean_data`` as its reference prompts, ``metric``, ``seed``
    and ``quiet``). ValueError names the choices or what is missing."""
    if isinstance(ablation, Ablation):
        if mean_data is not None:
            raise AblationError(
                "mean_data goes with ablation='mean'; with an ablation object, pass "
                "MeanAblation(mean_data) instead"
            )
        return ablation
    return build_ablation(ablation, mean_data, metric=metric, seed=seed, quiet=quiet)


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
        reads_corrupted = ablation.reads_corrupted
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
