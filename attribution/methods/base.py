"""The shared base of every attribution method, and the per-batch runs they all start from.

A method is an object (the design follows captum's ``Attribution`` → ``GradientAttribution``):
its class attributes declare what it needs, so that :func:`attribution.attribute`, the memory
predictor (:mod:`attribution.memory`) and the discovery job ask the method instead of keeping
tables of method names; :meth:`AttributionMethod.score_batch` does its scoring.

Sign convention of every method: a score estimates ``m(clean run with the edge patched to its
ablated write) - m(clean run)``, summed over positions; :func:`attribute` averages over
examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from attribution.ablations import Ablation
from attribution.data import PromptPairs
from attribution.metrics import Metric
from attribution.passes import check_finite, collect_writes, unembed_at
from attribution.sites import INPUT_HOOK
from graphs import Graph
from graphs.errors import ArgumentTypeError, CircuitDiscoveryError


class MethodError(CircuitDiscoveryError, ValueError):
    """A method that cannot run as asked: a bad option (``steps``, ``node_chunk``, ...), an
    ablation it does not support, or a name already registered."""


class MethodArchitectureError(MethodError):
    """A method asked to run on an architecture it does not support (not to be confused with
    :class:`circuits.models.UnsupportedArchitectureError`, a model that cannot be loaded)."""


@dataclass(frozen=True)
class Job:
    """What every batch of one :func:`attribution.attribute` call shares."""

    model: Any
    graph: Graph
    metric_fn: Metric
    ablation: Ablation
    means: torch.Tensor | None  # MeanAblation's [n_forward, d_model] writes, else None
    max_rows: int
    dtype: torch.dtype
    progress: Any  # tqdm
    node_chunk: int | None
    batch_size: int = 8


@dataclass
class BatchRuns:
    """The clean and ablated runs of one batch (``nodes``: the forward indices held).

    ``clean_writes``, ``ablated``, ``delta``: ``[batch, pos, len(nodes), d_model]``, with
    ``delta = (ablated - clean) · pad_mask`` (padding positions contribute nothing: no real
    token reads them). ``clean_logits``: ``[batch, vocab]`` at the metric positions;
    ``m_clean``, ``m_ablated``: ``[batch]``."""

    clean_writes: torch.Tensor
    ablated: torch.Tensor
    delta: torch.Tensor
    pad_mask: torch.Tensor
    clean_logits: torch.Tensor
    m_clean: torch.Tensor
    m_ablated: torch.Tensor


def batch_runs(job: Job, batch: PromptPairs, nodes: range | None = None) -> BatchRuns:
    """Run ``batch`` clean and ablated (no gradients), recording the writes of ``nodes``
    (all upstream nodes by default) and the metric of both runs."""
    model, graph = job.model, job.graph
    clean_writes, clean_logits = collect_writes(
        model, graph, batch.clean, batch.attention_mask, job.dtype, nodes, batch.positions
    )
    ablated, ablated_logits = job.ablation.writes(
        model, graph, batch, job.means, clean_writes, nodes
    )
    pad_mask = batch.attention_mask[:, :, None, None].to(job.dtype)
    with torch.no_grad():
        m_clean = job.metric_fn(clean_logits, clean_logits, batch)
        check_finite(m_clean, torch.arange(len(batch)))
        if ablated_logits is None:  # mean/zero: the metric with the input write ablated
            ablated_logits = _input_ablated_logits(model, batch, ablated[:, :, 0])
        m_ablated = job.metric_fn(ablated_logits, clean_logits, batch)
    return BatchRuns(
        clean_writes,
        ablated,
        masked_delta(ablated, clean_writes, pad_mask),
        pad_mask,
        clean_logits,
        m_clean,
        m_ablated,
    )


def masked_delta(
    ablated: torch.Tensor, clean: torch.Tensor, pad_mask: torch.Tensor
) -> torch.Tensor:
    """``(ablated - clean) · pad_mask`` (``pad_mask`` ``[b, p, 1, 1]``), without the product
    when nothing is padded."""
    delta = ablated - clean
    if not bool(pad_mask.all()):
        delta.mul_(pad_mask)
    return delta


def _input_ablated_logits(model, batch: PromptPairs, input_write: torch.Tensor) -> torch.Tensor:
    """Logits ``[batch, vocab]`` with the input embedding replaced by its ablated value."""

    def replace(t, hook):
        return input_write.to(device=t.device, dtype=t.dtype)

    hooks = [(INPUT_HOOK, replace), unembed_at(batch.positions)]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(batch.clean, attention_mask=batch.attention_mask)
    return logits[:, 0]


@dataclass(frozen=True)
class Option:
    """One keyword setting of a method, declared on its class (``options``): the constructor
    takes it, ``attribute(..., method_options={name: value})`` passes it, and
    ``circuits discover`` offers it as ``--{method}-{flag}`` when ``flag`` is set.

    ``default_text`` is how ``--help`` words the default when ``str(default)`` would not say
    it; ``metavar`` and ``choices`` go to the flag as in :mod:`argparse`. An option named
    ``seed`` takes the command line's ``--seed``."""

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    default_text: str | None = None


#: What a method that integrates takes (the command line's ``--steps`` and ``--quadrature``).
INTEGRATION_OPTIONS: tuple[Option, ...] = (
    Option("steps", int, 5, "integration steps"),
    Option("quadrature_rule", str, "riemann_left", "integration rule (attribution.RULES)"),
)


def takes_steps(method: type[AttributionMethod] | AttributionMethod) -> bool:
    """Whether a method (class or object) takes ``steps`` and ``quadrature_rule``: the ones
    that integrate, and those that run one that does (a learned mask's warm start)."""
    return any(option.name == "steps" for option in method.options)


def build_method(
    cls: type[AttributionMethod], steps: int, quadrature_rule: str, options: dict | None = None
) -> AttributionMethod:
    """``cls`` with its ``options``, and ``steps`` and ``quadrature_rule`` where it takes them."""
    integration = {"steps": steps, "quadrature_rule": quadrature_rule} if takes_steps(cls) else {}
    return cls(**integration, **(options or {}))


class AttributionMethod:
    """One edge-scoring method. Subclasses set the class attributes and :meth:`score_batch`.

    Attributes (declared per class):
        name: the name users pass as ``method=``.
        options: the method's own keyword settings (:class:`Option`), as its constructor
            takes them; ``circuits discover`` builds its ``--{name}-*`` flags from them.
        needs_gradients: runs backward passes (all but ``exact``).
        integrates: integrated gradients; such a method declares
            :data:`INTEGRATION_OPTIONS` (``steps``, ``quadrature_rule``) among its options.
        reports_gap: reports the IG completeness gap (``diagnostics["ig_gap"]``), a relative
            error defined by ``gap_definition``.
        node_chunking: its activation differences can be built a chunk of upstream nodes at
            a time (``attribute(node_chunk=...)``), without changing the scores.
        ablations: the names of the ablations it supports (None: every registered one).
        needs_corrupted: True when it always reads corrupted prompts, False when it never
            does (whatever the ablation), None when it does exactly when the ablation reads
            them (``Ablation.reads_corrupted``: patching). Data without counterfactuals
            (``PromptPairs(corrupted=None)``) is refused before any work where they would be
            read.
        supported_architectures: the HF architectures it runs on (None: every one).
        position_aware: it can keep each span's terms apart when the data has a position axis
            (``attribution.positions.with_positions``); other methods refuse such data before
            any work.
        batch_invariant: its scores are a sum of per-batch scores (:meth:`score_batch`), so
            they do not depend on how the data is split into batches or ordered, and shards
            can be scored apart. False for methods that train on the whole data (learned
            masks): :func:`attribute` then calls :meth:`score_data` once.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    needs_gradients: ClassVar[bool] = True
    integrates: ClassVar[bool] = False
    reports_gap: ClassVar[bool] = False
    gap_definition: ClassVar[str] = (
        "relative: |Σ scores of edges leaving input − (m(ablated) − m(clean))| / "
        "|m(ablated) − m(clean)|"
    )
    node_chunking: ClassVar[bool] = False
    ablations: ClassVar[tuple[str, ...] | None] = None
    needs_corrupted: ClassVar[bool | None] = None
    supported_architectures: ClassVar[tuple[str, ...] | None] = None
    batch_invariant: ClassVar[bool] = True
    position_aware: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        """Takes exactly the declared :attr:`options` (each defaulting to its ``default``)."""
        unknown = sorted(set(options) - {option.name for option in self.options})
        if unknown:
            raise ArgumentTypeError(f"{type(self).__name__} takes no option {', '.join(unknown)}")
        for option in self.options:
            setattr(self, option.name, options.get(option.name, option.default))
        self.check_options()

    def check_options(self) -> None:
        """Raise for option values that are wrong whatever the graph, as the method is made
        (before any work); none by default."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.settings().items())})"
        )

    def settings(self) -> dict[str, Any]:
        """The method's own settings (its options), as recorded in results."""
        return {option.name: getattr(self, option.name) for option in self.options}

    def reads_corrupted(self, ablation: Ablation) -> bool:
        """Whether a run with ``ablation`` reads the corrupted prompts."""
        if self.needs_corrupted is None:
            return ablation.reads_corrupted
        return self.needs_corrupted

    def check(self, graph: Graph, ablation: Ablation) -> None:
        """Raise :class:`MethodError` (a ValueError), before any model work, when this method
        cannot run as asked."""
        supported = self.supported_architectures
        if supported is not None and graph.spec.architecture not in supported:
            raise MethodArchitectureError(
                f"method {self.name!r} supports {', '.join(supported)} only, not "
                f"{graph.spec.architecture}; pick another method (e.g. 'eap')"
            )
        if self.ablations is not None and ablation.name not in self.ablations:
            raise MethodError(
                f"{self.name} supports ablation={' or '.join(repr(a) for a in self.ablations)} "
                f"only, got {ablation.name!r}"
            )

    def rows_per_pass(self, batch_size: int, device: torch.device) -> int:
        """Rows (examples × steps or × edges) one pass would like, before the memory budget."""
        return batch_size

    def rows_per_example(self, graph: Graph) -> int:
        """Progress units per example: example rows through one gradient (or patched) pass."""
        return 1

    def score_batch(
        self, job: Job, batch: PromptPairs, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add this batch's edge scores, summed over examples and positions, into ``scores``
        ``[n_forward, n_backward]``; return the per-example metric of the clean and the
        ablated run (``[batch]`` each)."""
        raise NotImplementedError

    def score_data(
        self, job: Job, data: PromptPairs, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For methods that are not ``batch_invariant``: add ``len(data)`` times the edge
        scores into ``scores`` using all of ``data`` at once; return the per-example metric of
        the clean and the ablated run (``[len(data)]`` each)."""
        raise NotImplementedError

    def diagnostics(self, scores: torch.Tensor, diagnostics: dict[str, float]) -> None:
        """Add method-specific checks to ``diagnostics`` (which holds ``metric_clean``,
        ``metric_ablated`` and ``input_edge_sum``)."""
        if self.reports_gap:
            expected = diagnostics["metric_ablated"] - diagnostics["metric_clean"]
            gap = abs(diagnostics["input_edge_sum"] - expected)
            diagnostics["ig_gap"] = gap / max(abs(expected), 1e-12)
