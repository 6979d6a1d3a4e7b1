"""Faithfulness: how much of the model's task behaviour a circuit keeps when every edge outside
it is ablated at once.

    f(C) = (m(C) − m(∅)) / (m(M) − m(∅))

with ``m(M)`` the metric of the full model, ``m(C)`` of the circuit (all other edges ablated)
and ``m(∅)`` of the empty circuit (every edge ablated), each the mean over examples. A full
graph gives f = 1 and the empty graph f = 0 by construction; the tests check both, and that the
single-pass evaluation matches an edge-by-edge re-computation.

Curves follow the MIB circuit track: circuits of the top 0.1 … 100 % of edges by |score|,
CPR = area under f (higher is better) and CMD = area under |1 − f| (lower is better), by the
trapezoid rule over the fraction of edges kept (MIB's definition). Every curve also carries
CPR_log and CMD_log, the same areas over log10 of the fraction rescaled to [0, 1], which weigh
the small circuits as much as the large ones; the two are different numbers and never share a
name.

Position-aware circuits (``[n_spans, n_forward, n_backward]`` masks, :mod:`.select`) go through
the same evaluator: each edge outside the circuit is ablated at the tokens of the spans it is
not kept at; :func:`evaluate` takes one as ``circuit`` and :func:`position_faithfulness_curve`
ranks position-aware edges.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from attribution.ablations import Ablation
from attribution.data import DataError, PromptPairs
from attribution.distributed import all_gather_rows, is_main_process, shard_range
from attribution.edge_ablation import ablation_hooks
from attribution.metrics import Metric
from attribution.passes import collect_writes, unembed_at
from attribution.run_setup import RunSetup
from circuits.search.areas import AREA_NAMES, curve_areas
from circuits.search.select import position_mask, position_scores, ranked_position_edges, top_k
from graphs import Graph
from graphs.errors import ArgumentTypeError, CircuitDiscoveryError
from graphs.positions import PositionError

DEFAULT_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: Random circuits drawn per size for the random baseline: one draw is noise (at 240 of 479
#: edges, 20 seeds gave f from -0.003 to 0.568), so the baseline is a mean with its spread.
RANDOM_DRAWS = 10


_DEFAULTS = {
    "metric": "logit_diff",
    "ablation": "patching",
    "mean_data": None,
    "batch_size": 8,
    "quiet": True,
}


def evaluator_for(model, graph, data, evaluator, setup, **given) -> CircuitEvaluator:
    """``evaluator`` when given (after checking it was built for this model, graph and data,
    and that no other setting is passed with it), else a new one."""
    if evaluator is None:
        return CircuitEvaluator(model, graph, data, setup=setup, **given)
    if evaluator.model is not model or evaluator.data is not data:
        raise FaithfulnessError("evaluator was built for another model or other data")
    evaluator.graph.check_compatible(graph.spec)
    RunSetup.resolve(evaluator.setup, _DEFAULTS, **given)  # raises if a setting is passed too
    if setup is not None and setup != evaluator.setup:
        raise ArgumentTypeError("pass either setup= or evaluator=, not both")
    return evaluator


class FaithfulnessError(CircuitDiscoveryError, ValueError):
    """Faithfulness cannot be computed as asked (e.g. m(M) equals m(∅))."""


@dataclass
class Faithfulness:
    """One circuit's evaluation.

    ``per_example_*`` are ``[n]`` lists; ``ci`` is the bootstrap ``(low, high)`` of f at
    ``ci_level``; ``random_fs`` the faithfulness of each of several random circuits of the same
    size (seeds ``seed, seed + 1, ...``), ``random_f`` their mean and ``random_f_std`` their
    standard deviation."""

    f: float
    m_full: float
    m_circuit: float
    m_empty: float
    n_edges: int
    n_examples: int
    ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    random_f: float | None = None
    random_f_std: float | None = None
    random_fs: list[float] = field(default_factory=list)
    per_example_full: list[float] = field(default_factory=list)
    per_example_circuit: list[float] = field(default_factory=list)
    per_example_empty: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class CircuitEvaluator:
    """Evaluates many circuits on one dataset, sharing the clean and ablated runs.

    Built once (validating inputs, running the clean and ablated passes per batch); each call
    of :meth:`metrics` then costs one patched forward pass per batch and circuit. Ablated writes
    (``[batch, pos, n_forward, d_model]`` per batch) are cached while they fit in
    ``cache_bytes``, and recomputed otherwise."""

    def __init__(
        self,
        model,
        graph: Graph,
        data: PromptPairs,
        metric: str | Metric = "logit_diff",
        *,
        ablation: str | Ablation = "patching",
        mean_data: PromptPairs | None = None,
        batch_size: int = 8,
        cache_bytes: int = 2 * 1024**3,
        quiet: bool = True,
        setup: RunSetup | None = None,
    ):
        setup = RunSetup.resolve(
            setup, _DEFAULTS, metric=metric, ablation=ablation, mean_data=mean_data,
            batch_size=batch_size, quiet=quiet,
        )  # fmt: skip
        setup.check(model, graph, data)
        self.setup = setup
        self.metric_fn = setup.metric_fn
        self.model, self.graph, self.data = model, graph, data
        self.ablation, self.batch_size, self.quiet = setup.ablation, setup.batch_size, setup.quiet
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.mean_writes = self.ablation.means(
            model, graph, self.batch_size, self.dtype, self.device
        )
        self.n_evaluations = 0
        self._batches: list[tuple[PromptPairs, torch.Tensor, torch.Tensor | None]] = []
        full, used = [], 0
        # under torchrun each rank runs a contiguous shard; per-example values are gathered
        shard = shard_range(len(data))
        self._n_local = len(shard)
        for _, batch in data.select(slice(shard.start, shard.stop)).batches(batch_size):
            batch = batch.to(self.device)
            clean_logits, ablated = self._runs(batch)
            full.append(self.metric_fn(clean_logits, clean_logits, batch))
            keep = used + ablated.numel() * ablated.element_size() <= cache_bytes
            used += ablated.numel() * ablated.element_size() if keep else 0
            self._batches.append((batch, clean_logits, ablated if keep else None))
        local = torch.cat(full).double().cpu() if full else torch.empty(0, dtype=torch.float64)
        self.m_full = all_gather_rows(local)
        self.m_empty = self.metrics([torch.zeros_like(graph.real_edges)])[0]
        for name, values in (("full model", self.m_full), ("empty circuit", self.m_empty)):
            if not torch.isfinite(values).all():
                bad = int(torch.nonzero(~torch.isfinite(values)).flatten()[0])
                raise FloatingPointError(
                    f"metric of the {name} is {float(values[bad])} on example {bad}"
                )
        self.n_evaluations = 0  # the empty circuit above is set-up, not a user's evaluation

    @torch.no_grad()
    def _runs(self, batch: PromptPairs) -> tuple[torch.Tensor, torch.Tensor]:
        clean_writes, clean_logits = collect_writes(
            self.model, self.graph, batch.clean, batch.attention_mask, self.dtype,
            positions=batch.positions,
        )  # fmt: skip
        ablated, _ = self.ablation.writes(
            self.model, self.graph, batch, self.mean_writes, clean_writes
        )
        return clean_logits, ablated

    @torch.no_grad()
    def metrics(self, circuits: list[torch.Tensor]) -> torch.Tensor:
        """Per-example metric ``[k, n]`` of each circuit (bool ``[n_forward, n_backward]``
        masks of kept edges), every other edge ablated. When the data has a position axis
        (:func:`attribution.positions.with_positions`) a mask may also be position-aware,
        ``[n_spans, n_forward, n_backward]``: an edge is then kept or ablated per span."""
        for i, mask in enumerate(circuits):
            check_circuit_shape(mask, self.graph, self.data, f"circuit {i}")
        parts: list[list[torch.Tensor]] = [[] for _ in circuits]
        progress = tqdm(
            total=self._n_local * len(circuits),
            desc="faithfulness",
            unit="ex",
            disable=self.quiet or not is_main_process(),
        )
        for batch, clean_logits, ablated in self._batches:
            if ablated is None:
                _, ablated = self._runs(batch)
            args = (self.model, self.graph, batch, ablated, self.metric_fn, clean_logits)
            for i, mask in enumerate(circuits):
                parts[i].append(patched_metric(*args, mask))
                progress.update(len(batch))
        progress.close()
        self.n_evaluations += len(circuits)
        if self._batches:
            local = torch.stack([torch.cat(p) for p in parts]).double().cpu()
        else:  # more ranks than examples: this rank has none
            local = torch.empty(len(circuits), 0, dtype=torch.float64)
        return all_gather_rows(local, dim=1)

    def faithfulness(self, circuit: torch.Tensor) -> float:
        """f of one circuit (mean over examples)."""
        m = float(self.metrics([circuit])[0].mean())
        return faithfulness_from_metrics(float(self.m_full.mean()), m, float(self.m_empty.mean()))


def circuit_metrics(
    model,
    graph: Graph,
    data: PromptPairs,
    circuits: list[torch.Tensor],
    metric: str | Metric = "logit_diff",
    *,
    ablation: str | Ablation = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    quiet: bool = True,
    setup: RunSetup | None = None,
    evaluator: CircuitEvaluator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example metric of the full model ``[n]``, of the empty circuit ``[n]`` and of each
    circuit in ``circuits`` (bool ``[n_forward, n_backward]`` edge masks) ``[k, n]``.
    ``evaluator``: reuse one built for this model and data (its clean and ablated runs)."""
    evaluator = evaluator_for(
        model, graph, data, evaluator, setup, metric=metric, ablation=ablation,
        mean_data=mean_data, batch_size=batch_size, quiet=quiet,
    )  # fmt: skip
    m_circ = (
        evaluator.metrics(circuits) if circuits else torch.empty(0, len(data), dtype=torch.float64)
    )
    return evaluator.m_full, evaluator.m_empty, m_circ


def check_circuit_shape(mask: torch.Tensor, graph: Graph, data: PromptPairs, what: str) -> None:
    """DataError unless ``mask`` is ``[n_forward, n_backward]`` or, when ``data`` has a
    position axis of ``S`` spans, ``[S, n_forward, n_backward]``."""
    shape = (graph.n_forward, graph.n_backward)
    spans = data.n_spans
    if tuple(mask.shape) != shape and (spans is None or tuple(mask.shape) != (spans, *shape)):
        expected = f"{shape}" + (f" or {(spans, *shape)}" if spans else "")
        raise DataError(f"{what} has shape {tuple(mask.shape)}, expected {expected}")


def patched_metric(model, graph, batch, ablated, metric_fn, clean_logits, keep) -> torch.Tensor:
    """Per-example metric with every real edge outside ``keep`` ablated."""
    hooks = ablation_hooks(model, graph, ablated, ~keep.to(torch.bool), batch.spans)
    # the metric reads one position per row: unembed only there (a third of a small
    # model's forward); the logits port is fed before the unembedding, so ablation is unchanged
    hooks.append(unembed_at(batch.positions))
    with model.hooks(fwd_hooks=hooks):
        out = model(batch.clean, attention_mask=batch.attention_mask)
    return metric_fn(out[:, 0], clean_logits, batch)


def faithfulness_from_metrics(m_full: float, m_circuit: float, m_empty: float) -> float:
    denom = m_full - m_empty
    if abs(denom) <= 1e-12 * max(1.0, abs(m_full), abs(m_empty)):
        raise FaithfulnessError(
            f"faithfulness is undefined: the full model and the empty circuit score the same "
            f"(m(M) = {m_full:.6g}, m(∅) = {m_empty:.6g}); choose data whose clean and corrupted "
            "prompts differ in the behaviour the metric measures"
        )
    return (m_circuit - m_empty) / denom


def evaluate(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: str | Metric = "logit_diff",
    *,
    circuit: torch.Tensor | None = None,
    ablation: str | Ablation = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    bootstrap: int = 1000,
    ci_level: float = 0.95,
    random_baseline: bool = True,
    random_draws: int = RANDOM_DRAWS,
    seed: int = 0,
    quiet: bool = True,
    setup: RunSetup | None = None,
    evaluator: CircuitEvaluator | None = None,
) -> Faithfulness:
    """Faithfulness of the graph's circuit (``graph.position_in_graph`` when it has a
    position-aware one, else ``graph.in_graph``) or of the edge mask ``circuit`` (bool
    ``[n_forward, n_backward]``, or position-aware ``[n_spans, n_forward, n_backward]`` when
    ``data`` has a position axis; random circuits are then drawn among position-aware edges).

    Every edge outside the circuit is replaced by its ablated value (``patching``: the
    corrupted prompt's; ``mean``: the mean over ``mean_data``; ``zero``), all at once, in one
    patched forward pass per batch. Returns f, m(M), m(C), m(∅), per-example values, a
    bootstrap confidence interval of f over examples, and (``random_baseline``) the mean and
    spread of f over ``random_draws`` random circuits with the same number of edges (seeds
    ``seed, seed + 1, ...``), evaluated in the same pass as the circuit.

    Warns (``UserWarning``) when the circuit has no edges or the graph was never attributed
    (every score 0), since such an f says nothing about a found circuit."""
    keep, n_spans = _kept_edges(graph, data, circuit)
    warn_if_unattributed(graph, "evaluate")
    if not keep.any():
        warnings.warn(
            "evaluate: the circuit has no edges, so f is the empty circuit's (0 by definition); "
            "set one first, e.g. graph.set_circuit(top_n(graph, 50)), or pass circuit=",
            UserWarning,
            stacklevel=2,
        )
    if random_baseline and random_draws < 1:
        raise FaithfulnessError(f"random_draws must be at least 1, got {random_draws}")
    circuits = [keep]
    if random_baseline:
        circuits += [
            random_circuit(graph, int(keep.sum()), seed=seed + j, n_spans=n_spans)
            for j in range(random_draws)
        ]
    m_full, m_empty, m_circ = circuit_metrics(
        model, graph, data, circuits, metric, ablation=ablation, mean_data=mean_data,
        batch_size=batch_size, quiet=quiet, setup=setup, evaluator=evaluator,
    )  # fmt: skip
    return _faithfulness(
        m_full, m_circ, m_empty, n_edges=int(keep.sum()), n_examples=len(data),
        bootstrap=bootstrap, ci_level=ci_level, seed=seed,
    )  # fmt: skip


def _kept_edges(
    graph: Graph, data: PromptPairs, circuit: torch.Tensor | None
) -> tuple[torch.Tensor, int | None]:
    """The real edges :func:`evaluate` keeps (of ``circuit``, else of the graph's circuit, the
    position-aware one when it has one) and the spans random circuits are drawn over (None for
    a position-agnostic circuit)."""
    if circuit is None and graph.position_in_graph is not None:
        if data.n_spans != graph.position_in_graph.shape[0]:
            raise PositionError(
                f"the graph's circuit is position-aware ({graph.position_in_graph.shape[0]} "
                f"spans) but the data has {'no position axis' if data.n_spans is None else f'{data.n_spans} spans'}; "
                "give the data the graph's positions (attribution.positions.with_positions), "
                "or pass circuit=graph.in_graph to evaluate the union over spans"
            )
        circuit = graph.position_in_graph
    if circuit is not None:  # before ``&``, which would broadcast e.g. a [1, K] mask silently
        check_circuit_shape(circuit, graph, data, "circuit")
    n_spans = data.n_spans if circuit is not None and circuit.dim() == 3 else None
    keep = (graph.in_graph if circuit is None else circuit).to(torch.bool) & graph.real_edges
    return keep, n_spans


def _faithfulness(
    m_full: torch.Tensor,
    m_circ: torch.Tensor,
    m_empty: torch.Tensor,
    *,
    n_edges: int,
    n_examples: int,
    bootstrap: int,
    ci_level: float,
    seed: int,
) -> Faithfulness:
    """The :class:`Faithfulness` of per-example metrics: the circuit's (``m_circ[0]``, with a
    bootstrap interval of ``bootstrap`` resamples unless 0) and the random circuits'
    (``m_circ[1:]``)."""
    full, empty = float(m_full.mean()), float(m_empty.mean())
    f = faithfulness_from_metrics(full, float(m_circ[0].mean()), empty)
    ci = bootstrap_ci(m_full, m_circ[0], m_empty, bootstrap, ci_level, seed) if bootstrap else None
    random_fs = [faithfulness_from_metrics(full, float(m.mean()), empty) for m in m_circ[1:]]
    return Faithfulness(
        f=f,
        m_full=full,
        m_circuit=float(m_circ[0].mean()),
        m_empty=empty,
        n_edges=n_edges,
        n_examples=n_examples,
        ci=ci,
        ci_level=ci_level,
        random_f=float(np.mean(random_fs)) if random_fs else None,
        random_f_std=float(np.std(random_fs)) if random_fs else None,
        random_fs=random_fs,
        per_example_full=m_full.tolist(),
        per_example_circuit=m_circ[0].tolist(),
        per_example_empty=m_empty.tolist(),
    )


def bootstrap_ci(
    m_full, m_circ, m_empty, n_resamples: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap of f over examples (f of resampled means, as f is a ratio)."""
    rng = np.random.default_rng(seed)
    n = len(m_full)
    idx = rng.integers(0, n, size=(n_resamples, n))
    full, circ, empty = (np.asarray(x)[idx].mean(1) for x in (m_full, m_circ, m_empty))
    denom = full - empty
    valid = np.abs(denom) > 1e-12
    values = (circ[valid] - empty[valid]) / denom[valid]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def warn_if_unattributed(graph: Graph, caller: str) -> None:
    """A ``UserWarning`` when every edge score of ``graph`` is 0: it was never attributed, so
    any ranking of its edges is arbitrary (index order)."""
    if not graph.scores[graph.real_edges].any():
        warnings.warn(
            f"{caller}: every edge score of the graph is 0 (it was never attributed), so the "
            "edges are ranked arbitrarily; run attribution.attribute(model, graph, data) first",
            UserWarning,
            stacklevel=3,
        )


def random_circuit(
    graph: Graph, n_edges: int, *, seed: int = 0, n_spans: int | None = None
) -> torch.Tensor:
    """A bool edge mask of ``n_edges`` real edges drawn uniformly with ``seed``; with
    ``n_spans``, ``n_edges`` position-aware edges ``[n_spans, n_forward, n_backward]``."""
    real_mask = graph.real_edges if n_spans is None else graph.real_edges.expand(n_spans, -1, -1)
    real = real_mask.flatten().nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(real_mask.numel(), dtype=torch.bool)
    mask[real[torch.randperm(len(real), generator=gen)[:n_edges]]] = True
    return mask.view(real_mask.shape)


def top_edges_mask(graph: Graph, n_edges: int, *, absolute: bool = True) -> torch.Tensor:
    """Bool edge mask of the ``n_edges`` best-scoring edges, dead ones included (the curve
    evaluates exactly the top ``n_edges``; see :func:`circuits.search.select.top_k`)."""
    return top_k(graph, n_edges, absolute=absolute, prune_dead=False).edges


def edge_mask(graph: Graph, flat_indices: torch.Tensor) -> torch.Tensor:
    """Bool ``[n_forward, n_backward]`` mask with the edges at ``flat_indices``
    (``up * n_backward + port``, as ``Graph.ranked_edge_indices`` gives them) set."""
    mask = torch.zeros(graph.real_edges.numel(), dtype=torch.bool)
    mask[flat_indices] = True
    return mask.view_as(graph.real_edges)


@dataclass
class FaithfulnessCurve:
    """f at each circuit size and four trapezoid areas: ``cpr`` and ``cmd`` (MIB's) over the
    fraction of edges kept, ``cpr_log`` and ``cmd_log`` over log10 of it rescaled to [0, 1]."""

    fractions: list[float]
    n_edges: list[int]
    f: list[float]
    m_full: float
    m_empty: float
    m_circuits: list[float]
    cpr: float
    cmd: float
    cpr_log: float
    cmd_log: float
    random_f: list[float] | None = None  # per size: mean over the random draws
    random_f_std: list[float] | None = None  # per size: their standard deviation
    random_draws: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def areas(self) -> dict[str, float]:
        """``{"cpr", "cmd", "cpr_log", "cmd_log"}``, as ``metrics.json`` records them."""
        return {k: getattr(self, k) for k in AREA_NAMES}

    @classmethod
    def from_metrics(
        cls, fractions, sizes: list[int], m_circuits: list[float], full: float, empty: float,
        **random,
    ) -> FaithfulnessCurve:  # fmt: skip
        """The curve of mean circuit metrics ``m_circuits`` (one per size): f of each, and its
        areas over ``fractions``; ``random`` takes the random-baseline fields."""
        f = [faithfulness_from_metrics(full, m, empty) for m in m_circuits]
        return cls(
            fractions=list(fractions), n_edges=sizes, f=f, m_full=full, m_empty=empty,
            m_circuits=m_circuits, **curve_areas(fractions, f), **random,
        )  # fmt: skip


def curve_settings(
    fractions: tuple[float, ...], random_baseline: bool, random_draws: int
) -> tuple[tuple[float, ...], int]:
    """The checked ``fractions`` (floats) and the number of random draws per size; ValueError
    for fractions that are not increasing values in (0, 1] or fewer than 1 draw."""
    fractions = tuple(float(x) for x in fractions)
    if (
        not fractions
        or any(not 0 < x <= 1 for x in fractions)
        or list(fractions) != sorted(fractions)
    ):
        raise FaithfulnessError(f"fractions must be increasing values in (0, 1], got {fractions}")
    if random_baseline and random_draws < 1:
        raise FaithfulnessError(f"random_draws must be at least 1, got {random_draws}")
    return fractions, random_draws if random_baseline else 0


def random_masks(
    graph: Graph, sizes: list[int], draws: int, seed: int, n_spans: int | None = None
) -> list[torch.Tensor]:
    """``draws`` random circuits of every size, draw ``j`` of size ``i`` with seed
    ``seed + i + j * len(sizes)`` (all sizes of draw 0, then of draw 1, ...)."""
    return [
        random_circuit(graph, k, seed=seed + i + j * len(sizes), n_spans=n_spans)
        for j in range(draws)
        for i, k in enumerate(sizes)
    ]


def curve_of(
    fractions: tuple[float, ...],
    sizes: list[int],
    m_full: torch.Tensor,
    m_empty: torch.Tensor,
    m_circ: torch.Tensor,
    draws: int,
) -> FaithfulnessCurve:
    """The curve of the per-example metrics ``m_circ`` ``[len(sizes) * (1 + draws), n]``: the
    top-edge circuits of each size, then the random draws of :func:`random_masks`."""
    full, empty = float(m_full.mean()), float(m_empty.mean())
    means = m_circ.mean(1).tolist()
    random_f = random_std = None
    if draws:
        # [draws, sizes]: row j holds draw j of every size
        drawn = np.array(
            [faithfulness_from_metrics(full, m, empty) for m in means[len(sizes) :]]
        ).reshape(draws, len(sizes))
        random_f, random_std = drawn.mean(0).tolist(), drawn.std(0).tolist()
    return FaithfulnessCurve.from_metrics(
        fractions, sizes, means[: len(sizes)], full, empty, random_f=random_f, random_f_std=random_std, random_draws=draws,
    )  # fmt: skip


def faithfulness_curve(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: str | Metric = "logit_diff",
    *,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    absolute: bool = True,
    ablation: str | Ablation = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    random_baseline: bool = False,
    random_draws: int = RANDOM_DRAWS,
    seed: int = 0,
    quiet: bool = True,
    setup: RunSetup | None = None,
    evaluator: CircuitEvaluator | None = None,
) -> FaithfulnessCurve:
    """Faithfulness of the top ``fraction`` of edges by score for each fraction (MIB's ten sizes
    by default), evaluated together so clean and ablated runs are shared; its areas (MIB's CPR and
    CMD, and CPR_log and CMD_log over a log size axis: :func:`curve_areas`).

    ``random_baseline``: per size, the mean and standard deviation of f over ``random_draws``
    random circuits (draw ``j`` of size ``i`` uses seed ``seed + i + j * len(fractions)``)."""
    fractions, draws = curve_settings(fractions, random_baseline, random_draws)
    warn_if_unattributed(graph, "faithfulness_curve")
    sizes, masks = _curve_circuits(graph, fractions, absolute, draws, seed, by_position=False)
    m_full, m_empty, m_circ = circuit_metrics(
        model, graph, data, masks, metric, ablation=ablation, mean_data=mean_data,
        batch_size=batch_size, quiet=quiet, setup=setup, evaluator=evaluator,
    )  # fmt: skip
    return curve_of(fractions, sizes, m_full, m_empty, m_circ, draws)


def position_faithfulness_curve(
    evaluator: CircuitEvaluator,
    graph: Graph,
    *,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    absolute: bool = True,
    random_baseline: bool = False,
    random_draws: int = RANDOM_DRAWS,
    seed: int = 0,
) -> FaithfulnessCurve:
    """:func:`faithfulness_curve` over position-aware edges ``(span, upstream, port)``: f of
    the top ``fraction`` of them per fraction, its areas over the fraction of position-aware
    edges kept, and (``random_baseline``) random position-aware circuits, seeded as there.
    ``evaluator`` must be built on data with the graph's position axis."""
    check_position_evaluator(evaluator, graph)
    fractions, draws = curve_settings(fractions, random_baseline, random_draws)
    sizes, masks = _curve_circuits(graph, fractions, absolute, draws, seed, by_position=True)
    m_circ = evaluator.metrics(masks)
    return curve_of(fractions, sizes, evaluator.m_full, evaluator.m_empty, m_circ, draws)


def _curve_circuits(
    graph: Graph,
    fractions: tuple[float, ...],
    absolute: bool,
    draws: int,
    seed: int,
    *,
    by_position: bool,
) -> tuple[list[int], list[torch.Tensor]]:
    """A curve's sizes and masks: the top edges at each fraction, then :func:`random_masks`;
    over position-aware edges ``[n_spans, n_forward, n_backward]`` when ``by_position``.
    Sizes follow MIB's evaluator, ``int(x · n)`` edges: a circuit holds no more than ``x`` of
    them (none when ``x · n < 1``: the empty circuit, f = 0)."""
    if not by_position:
        sizes = [int(x * graph.n_edges) for x in fractions]
        masks = [top_edges_mask(graph, k, absolute=absolute) for k in sizes]
        return sizes, masks + random_masks(graph, sizes, draws, seed)
    order = ranked_position_edges(graph, absolute=absolute)
    sizes = [int(x * len(order)) for x in fractions]
    masks = [position_mask(graph, order[:k]) for k in sizes]
    return sizes, masks + random_masks(graph, sizes, draws, seed, n_spans=len(graph.positions))


def check_position_evaluator(evaluator: CircuitEvaluator, graph: Graph) -> None:
    """PositionError unless ``graph`` has a position axis and ``evaluator`` was built on data
    with the same spans (as a position-aware search or curve needs)."""
    position_scores(graph)
    data: PromptPairs = evaluator.data
    if data.span_names != graph.positions:
        raise PositionError(
            f"the evaluator's data has spans {data.span_names}, the graph {graph.positions}; "
            "build the evaluator on the data the graph was attributed with"
        )
