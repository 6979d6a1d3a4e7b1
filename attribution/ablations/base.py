"""The base of every ablation: what replaces a clean write, what it needs, and how a run saves
and restores it.

A subclass declares what it needs (``needs_reference``: prompts to take statistics from or fit
on; ``reads_corrupted``: the corrupted prompts, which ``corrupted_run`` implies; ``fits``: a fit
with the run's metric and seed), how it is built from a run's settings (:meth:`Ablation.build`), saved into a run record
(:meth:`Ablation.saved`) and restored from one (:meth:`Ablation.restore`), so callers ask the
object instead of comparing names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from attribution.data import DataError, PromptPairs
from graphs import Graph
from graphs.errors import CircuitDiscoveryError


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
    """Base of the ablations; ``name`` is how results, run records and the command line call
    it, ``description`` what ``--help`` says of it."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: it takes statistics from (or fits on) reference prompts, given to :meth:`build`
    needs_reference: ClassVar[bool] = False
    #: it reads the corrupted prompts, so data without them cannot be ablated with it
    reads_corrupted: ClassVar[bool] = False
    #: its writes are the corrupted prompts' own run (activation patching), so a method may
    #: read that run's other activations too (raw head results, gradients); such an ablation
    #: reads the corrupted prompts, so declaring this declares ``reads_corrupted`` too
    corrupted_run: ClassVar[bool] = False
    #: it fits parameters on the reference prompts with the run's metric and seed (slow;
    #: fitted once per model, so callers build it once and reuse it)
    fits: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the corrupted run's own writes are read from the corrupted prompts: one declaration
        if cls.corrupted_run:
            cls.reads_corrupted = True

    @classmethod
    def build(
        cls, reference: PromptPairs | None, *, metric="logit_diff", seed: int = 0, quiet=True
    ) -> Ablation:
        """The ablation from its recorded settings: ``reference`` (when ``needs_reference``),
        the run's ``metric`` and ``seed``, and ``quiet`` (no progress bar of a fit)."""
        return cls()

    def saved(self) -> dict[str, Any]:
        """What a run records (in its graph files' metadata) to rebuild this ablation: its
        name and, when it takes reference prompts, how many (``n_reference``)."""
        saved: dict[str, Any] = {"ablation": self.name}
        if self.reference_data is not None:
            saved["n_reference"] = len(self.reference_data)
        return saved

    @classmethod
    def restore(
        cls,
        saved: Mapping[str, Any],
        load_reference: Callable[[int | None], PromptPairs | None],
        *,
        metric="logit_diff",
        seed: int = 0,
        quiet: bool = True,
    ) -> Ablation:
        """The ablation a run recorded (:meth:`saved`): ``load_reference(n_reference)`` gives
        its reference prompts and is called only when it takes some; AblationError when it
        gives none."""
        reference = None
        if cls.needs_reference:
            reference = load_reference(saved.get("n_reference"))
            if reference is None:
                raise AblationError(
                    f"ablation={cls.name!r} needs mean_data: the reference prompts it takes "
                    "its statistics from (mean) or fits its constants on (optimal)"
                )
        return cls.build(reference, metric=metric, seed=seed, quiet=quiet)

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


__all__ = ["Ablation", "AblationError", "NoCounterfactualsError"]
