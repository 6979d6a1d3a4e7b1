"""What every attribution and evaluation call shares: the metric, the ablation, the batch size
and whether to show progress, in one object (:class:`RunSetup`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attribution.ablations import Ablation, NoCounterfactualsError, Patching, as_ablation
from attribution.data import DataError, PromptPairs
from attribution.metrics import Metric, get_metric
from graphs import Graph
from graphs.errors import ArgumentTypeError


@dataclass(frozen=True)
class RunSetup:
    """``metric`` (a name or a callable, see :mod:`attribution.metrics`), ``ablation`` (an
    :class:`~attribution.ablations.Ablation`), ``batch_size`` (examples per pass) and
    ``quiet`` (no progress bars)."""

    metric: str | Metric = "logit_diff"
    ablation: Ablation = field(default_factory=Patching)
    batch_size: int = 8
    quiet: bool = True

    def __post_init__(self) -> None:
        get_metric(self.metric)  # an unknown name fails here, before any model work
        if not isinstance(self.ablation, Ablation):
            raise ArgumentTypeError(f"ablation must be an Ablation object, got {self.ablation!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ArgumentTypeError(f"batch_size must be a whole number, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def metric_fn(self) -> Metric:
        return get_metric(self.metric)

    @property
    def metric_name(self) -> str:
        return (
            self.metric
            if isinstance(self.metric, str)
            else getattr(self.metric, "__name__", "callable")
        )

    def check(
        self, model, graph, data: PromptPairs, *, reads_corrupted: bool | None = None
    ) -> None:
        """Raise a clear error for a graph of another model, bad prompts, or missing corrupted
        prompts where they would be read (default: with patching), before any work."""
        check_inputs(model, graph, data, self.ablation, reads_corrupted=reads_corrupted)

    @classmethod
    def resolve(cls, setup: RunSetup | None, defaults: dict[str, Any], **given: Any) -> RunSetup:
        """``setup``, or one built from a function's keyword arguments (``metric``,
        ``ablation``, ``mean_data``, ``batch_size``, ``quiet``); passing ``setup`` together
        with any of those set away from the function's ``defaults`` is a TypeError, so that
        no argument is silently ignored."""
        if setup is None:
            mean_data = given.pop("mean_data", None)
            given["ablation"] = as_ablation(
                given.get("ablation", "patching"), mean_data, given.get("metric", "logit_diff"),
                quiet=given.get("quiet", True),
            )  # fmt: skip
            return cls(**given)
        if not isinstance(setup, RunSetup):
            raise ArgumentTypeError(f"setup must be a RunSetup, got {type(setup).__name__}")
        clashes = [k for k, v in given.items() if v is not defaults.get(k) and v != defaults.get(k)]
        if clashes:
            raise ArgumentTypeError(
                f"pass either setup= or {', '.join(clashes)}, not both (setup already holds them)"
            )
        return setup


def check_inputs(
    model,
    graph: Graph,
    data: PromptPairs,
    ablation: Ablation,
    *,
    reads_corrupted: bool | None = None,
) -> None:
    """Raise a clear error, before any model work, for a graph of another model, empty data,
    bad prompts (the ablation's reference prompts included), or data without corrupted
    prompts where they would be read (``reads_corrupted``; default: when the ablation reads
    them)."""
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
