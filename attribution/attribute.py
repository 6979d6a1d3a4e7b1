"""Edge attribution: one entry point, :func:`attribute`, for every scoring method.

For an edge ``u -> v`` with ``Δ_u = a_u(ablated) - a_u(clean)`` (the corrupted, mean or zero
write of ``u`` minus its clean write):

- ``eap``: ``Δ_u · ∂m/∂x_v`` at the clean run.
- ``clean-corrupted``: ``Δ_u · ½(∂m/∂x_v|clean + ∂m/∂x_v|corrupted)``.
- ``eap-ig-inputs``: ``Δ_u · ∫ ∂m/∂x_v dα`` along the path where the input embedding moves
  from its ablated to its clean value (``e(α) = e_abl + α(e_clean - e_abl)``) and everything
  downstream is recomputed.
- ``eap-ig-activations``: like the above, but for the edges leaving each writer site (the
  input, a layer's heads, a layer's MLP) the path interpolates that site's output alone.
- ``exact``: patch each edge on its own (``x_v += Δ_u`` in the clean run) and measure
  ``m(patched) - m(clean)``: the brute-force ground truth.
- ``ifr``: information-flow routes, the normalised L1 proximity of ``u``'s write to port
  ``v``'s input (forward only, no corrupted prompts; non-negative importances).
- ``relp``: relevance patching, ``Δ_u · r_v`` with ``r_v`` from LRP rules (frozen norm scales
  and attention patterns, identity/half rules in the MLP).
- ``"ensemble:a,b"`` (or a list of names): the mean of the members' normalised ranks of
  ``|score|`` (``"ensemble-z:a,b"``: of their z-scores).

Scores are summed over positions and averaged over examples; their sign convention is
``m(patched) - m(clean)`` (see :mod:`attribution.metrics`), except ``ifr`` and ensembles,
which give non-negative magnitudes.

Integrated gradients are batched: the interpolation steps of a batch are stacked into the batch
dimension in chunks of at most ``max_rows`` rows, and the step-weighted gradients are
accumulated per example before one contraction with ``Δ`` per batch. Step positions and weights
come from captum's approximation methods.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from tqdm.auto import tqdm

from attribution.ablations import Ablation, NoCounterfactualsError
from attribution.data import PromptPairs
from attribution.distributed import all_reduce_sum, is_main_process, shard_range, world_size
from attribution.memory import attribution_peak_bytes, node_chunk_within, rows_within
from attribution.methods import (
    REGISTRY,
    AttributionMethod,
    Ensemble,
    Job,
    MethodError,
    get_method,
    takes_steps,
)
from attribution.metrics import Metric
from attribution.passes import NonFiniteMetricError, frozen_parameters
from attribution.quadrature import quadrature
from attribution.run_setup import RunSetup
from graphs import Graph
from graphs.positions import PositionError


@dataclass
class AttributionResult:
    """What :func:`attribute` did.

    Attributes:
        scores: float ``[n_forward, n_backward]`` edge scores (also written into the graph).
        method, settings: the method and every setting used.
        timings: seconds per phase.
        diagnostics: ``metric_clean`` and ``metric_ablated`` (means over examples), and for
            ``eap-ig-inputs`` the completeness check: ``input_edge_sum`` (sum of the scores of
            edges leaving ``input``, which should equal ``metric_ablated - metric_clean``) and
            ``ig_gap`` (its relative error); ``total_score``.
        position_scores: ``[n_spans, n_forward, n_backward]`` when ``data`` has a position
            axis (:func:`attribution.positions.with_positions`), else None; ``scores`` is
            their sum over spans.
    """

    scores: torch.Tensor
    method: str
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    position_scores: torch.Tensor | None = None


_DEFAULTS = {
    "metric": "logit_diff",
    "ablation": "patching",
    "mean_data": None,
    "batch_size": 8,
    "quiet": False,
}


def attribute(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: str | Metric = "logit_diff",
    *,
    method: str | AttributionMethod = "eap-ig-inputs",
    steps: int = 5,
    quadrature_rule: str = "riemann_left",
    ablation: str | Ablation = "patching",
    mean_data: PromptPairs | None = None,
    batch_size: int = 8,
    max_rows: int | None = None,
    memory_budget_gb: float = 4.0,
    node_chunk: int | None = None,
    quiet: bool = False,
    setup: RunSetup | None = None,
    method_options: dict | None = None,
) -> AttributionResult:
    """Score every edge of ``graph`` for ``data`` and write the scores into the graph.

    Args:
        model: a TransformerBridge from ``circuits.load_model`` (edge hooks on).
        graph: the model's graph (``Graph.from_model(model)``).
        data: clean/corrupted prompt pairs with answers (``corrupted=None``: no
            counterfactuals, for ``ifr`` or mean/zero ablations; anything that would read them
            raises DataError before any work).
        metric: ``"logit_diff"``, ``"prob_diff"``, ``"log_prob"``, ``"kl"`` or a callable
            ``(logits [n, vocab], clean_logits [n, vocab], data) -> [n]``.
        method: one of :data:`attribution.METHODS`, ``"ensemble:NAME,NAME,..."`` or a list of names, or a
            method object (:mod:`attribution.methods`).
        steps: integration steps for the IG methods (used when ``method`` is a name).
        quadrature_rule: ``riemann_left`` (the reference's k/m, k=0..m-1), ``riemann_right``,
            ``riemann_middle``, ``riemann_trapezoid`` or ``gausslegendre``.
        ablation: what replaces a clean write: a registered name
            (:func:`attribution.ablations.names`: ``patching``, the corrupted prompt's;
            ``mean``, the mean write over ``mean_data``'s real tokens; ``zero``; ``optimal``, a
            constant fit on ``mean_data``), or an ablation object (``Patching()``,
            ``MeanAblation(data)``, ``ZeroAblation()``).
        batch_size: examples per batch; memory does not grow with ``len(data)``.
        max_rows: at most this many rows (examples × steps, or examples × edges for ``exact``)
            per forward pass; default ``batch_size * steps`` on GPUs, ``batch_size`` on CPUs
            (where bigger passes are slower per row) and for EAP,
            lowered to what fits in ``memory_budget_gb`` (see :mod:`attribution.memory`).
        memory_budget_gb: memory the attribution may use besides the weights; sizes
            ``max_rows`` and, when the full write buffers would not fit, ``node_chunk``.
        node_chunk: build the activation-difference buffer ``[batch, pos, nodes, d_model]``
            this many upstream nodes at a time (eap, clean-corrupted, eap-ig-inputs), at the
            cost of one extra clean (and corrupted) forward pass per further chunk; the
            scores do not change. Default: all nodes, unless the budget requires chunks.
        quiet: no progress bars, and no printed memory prediction.
        setup: a :class:`~attribution.run_setup.RunSetup` holding metric, ablation, batch size
            and quiet at once (instead of those four arguments).
        method_options: the method's own keyword settings when ``method`` is a name, e.g.
            ``{"train_steps": 100, "target_edges": 20, "seed": 1}`` for ``mask``.

    Position-aware scores: give ``data`` a position axis with
    :func:`attribution.positions.with_positions` (token positions or a span schema); the
    graph then gets ``position_scores`` ``[n_spans, n_forward, n_backward]`` (same runs, the
    contraction keeps each span's terms apart) and ``scores`` their sum.
    """
    setup = RunSetup.resolve(
        setup, _DEFAULTS, metric=metric, ablation=ablation, mean_data=mean_data,
        batch_size=batch_size, quiet=quiet,
    )  # fmt: skip
    method = _method_for(data, method, steps, quadrature_rule, method_options)
    sizing = dict(max_rows=max_rows, memory_budget_gb=memory_budget_gb, node_chunk=node_chunk)
    if isinstance(method, Ensemble):
        return _ensemble(method, model, graph, data, setup, **sizing)
    return _attribute_method(method, model, graph, data, setup, **sizing)


def _method_for(
    data: PromptPairs,
    method: str | AttributionMethod,
    steps: int,
    quadrature_rule: str,
    options: dict | None,
) -> AttributionMethod:
    """The method object for ``method``, refused when ``data`` has a position axis the
    method cannot keep."""
    method = get_method(method, steps=steps, quadrature_rule=quadrature_rule, options=options)
    # before the ensemble branch: an Ensemble declares position_aware=False too
    if data.n_spans and not method.position_aware:
        raise PositionError(
            f"method {method.name!r} does not keep per-position scores; with a position axis "
            "use one of "
            + ", ".join(n for n, cls in REGISTRY.items() if cls.position_aware)
            + ", or give the data without positions"
        )
    return method


def _attribute_method(
    method: AttributionMethod,
    model,
    graph: Graph,
    data: PromptPairs,
    setup: RunSetup,
    *,
    max_rows: int | None,
    memory_budget_gb: float,
    node_chunk: int | None,
) -> AttributionResult:
    """:func:`attribute` for one method (not an ensemble): checked, sized, scored."""
    _check_method(method, model, graph, data, setup)
    dtype = next(model.parameters()).dtype
    max_rows, node_chunk, peak = _plan_memory(
        method, model, graph, data, setup, max_rows, memory_budget_gb, node_chunk
    )
    settings = dict(
        method=method.name,
        steps=getattr(method, "steps", None),  # only methods that integrate take them
        quadrature_rule=getattr(method, "quadrature_rule", None),
        ablation=setup.ablation.name,
        batch_size=setup.batch_size,
        max_rows=max_rows,
        node_chunk=node_chunk,
        predicted_peak_bytes=peak["total"],
        metric=setup.metric_name,
        n_examples=len(data),
        positions=data.n_spans,
    )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    device = next(model.parameters()).device
    means = setup.ablation.means(model, graph, setup.batch_size, dtype, device)
    timings["mean_activations"] = time.perf_counter() - start
    job = Job(
        model, graph, setup.metric_fn, setup.ablation, means, max_rows, dtype, None, node_chunk,
        setup.batch_size,
    )  # fmt: skip
    scores, sums = _score(method, job, data, setup.quiet)
    timings["attribution"] = time.perf_counter() - start - timings["mean_activations"]
    return _result(method, graph, data, scores, sums, settings, timings)


def _check_method(
    method: AttributionMethod, model, graph: Graph, data: PromptPairs, setup: RunSetup
) -> None:
    """Every check of a single method's run against its settings, model, graph and data,
    before any work."""
    if takes_steps(method):
        n_steps = method.steps
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise MethodError(f"steps must be >= 1, got {n_steps}")
        quadrature(method.quadrature_rule, n_steps)  # validates the rule early
    method.check(graph, setup.ablation)
    if not data.has_corrupted and method.reads_corrupted(setup.ablation):
        raise NoCounterfactualsError(
            f"method {method.name!r} with ablation={setup.ablation.name!r}"
        )
    if not method.batch_invariant and world_size() > 1:
        raise MethodError(
            f"{method.name} trains on all the data at once and cannot be split over ranks; "
            "run it without torchrun"
        )
    setup.check(model, graph, data, reads_corrupted=method.reads_corrupted(setup.ablation))


def _plan_memory(
    method: AttributionMethod,
    model,
    graph: Graph,
    data: PromptPairs,
    setup: RunSetup,
    max_rows: int | None,
    memory_budget_gb: float,
    node_chunk: int | None,
) -> tuple[int, int | None, dict[str, int]]:
    """``(max_rows, node_chunk, predicted peak)``: the rows per pass and nodes per write
    buffer that fit the budget (where not given), and the memory they predict (printed
    unless quiet)."""
    device = next(model.parameters()).device
    wanted = method.rows_per_pass(setup.batch_size, device)
    budget = memory_budget_gb * 1024**3
    if max_rows is None:
        max_rows = rows_within(model, data.n_pos, budget, wanted)
    sizes = dict(
        batch_size=min(setup.batch_size, len(data)), n_pos=data.n_pos, rows=max_rows,
        method=method, n_spans=data.n_spans,
    )  # fmt: skip
    if node_chunk is None and method.node_chunking:
        node_chunk = node_chunk_within(model, graph, budget, **sizes)
    if node_chunk is not None and node_chunk < 1:
        raise MethodError(f"node_chunk must be >= 1, got {node_chunk}")
    peak = attribution_peak_bytes(model, graph, node_chunk=node_chunk, **sizes)
    if not setup.quiet and is_main_process():
        tqdm.write(
            f"predicted peak memory {peak['total'] / 2**30:.2f} GiB besides the weights "
            f"(activations {peak['activations'] / 2**30:.2f}, port gradients "
            f"{peak['port_gradients'] / 2**30:.2f}, write buffers {peak['write_buffers'] / 2**30:.2f}"
            + (
                f", {node_chunk} node{'s' if node_chunk > 1 else ''} at a time"
                if node_chunk
                else ""
            )
            + ")",
            file=sys.stderr,
        )
    return max_rows, node_chunk, peak


def _score(
    method: AttributionMethod, job: Job, data: PromptPairs, quiet: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, metric sums)`` over all of ``data``: this rank's shard scored (in batches
    unless the method trains on all of it at once), all-reduced over ranks, averaged over
    examples and kept to real edges."""
    graph, n_spans = job.graph, data.n_spans
    device = next(job.model.parameters()).device
    score_dtype = torch.float64 if job.dtype == torch.float64 else torch.float32
    axis = (n_spans,) if n_spans else ()
    scores = torch.zeros(*axis, graph.n_forward, graph.n_backward, dtype=score_dtype, device=device)
    sums = torch.zeros(2, dtype=torch.float64)  # metric totals: clean, ablated
    # under torchrun each rank scores a contiguous shard; sums are all-reduced below
    shard = shard_range(len(data))
    local = data.select(slice(shard.start, shard.stop))
    # one unit = one example row through one gradient (or patched) pass: covers batches and steps
    job = replace(
        job,
        progress=tqdm(
            # exact patches every edge once per span; gradient methods' passes do not multiply
            total=len(local)
            * method.rows_per_example(graph)
            * (n_spans if n_spans and not method.needs_gradients else 1),
            desc=method.name,
            disable=quiet or not is_main_process(),
            unit="row",
        ),
    )
    with frozen_parameters(job.model):
        if not method.batch_invariant:
            try:
                m_clean, m_ablated = method.score_data(job, local, scores)
            except NonFiniteMetricError as err:
                raise NonFiniteMetricError(err.value, shard.start + err.example) from None
            sums += torch.tensor(
                [float(m_clean.sum()), float(m_ablated.sum())], dtype=torch.float64
            )
        for first, batch in local.batches(job.batch_size) if method.batch_invariant else ():
            batch = batch.to(device)
            try:
                m_clean, m_ablated = method.score_batch(job, batch, scores)
            except NonFiniteMetricError as err:  # name the example of `data`, not of the batch
                raise NonFiniteMetricError(err.value, shard.start + first + err.example) from None
            sums += torch.tensor(
                [float(m_clean.sum()), float(m_ablated.sum())], dtype=torch.float64
            )
    job.progress.close()
    scores = all_reduce_sum(scores)
    sums = all_reduce_sum(sums)
    scores /= len(data)
    # gradient methods contract Δ_u with every port's gradient; keep only real edges (u before v)
    return torch.where(graph.real_edges.to(device), scores, 0.0), sums


def _result(
    method: AttributionMethod,
    graph: Graph,
    data: PromptPairs,
    scores: torch.Tensor,
    sums: torch.Tensor,
    settings: dict[str, Any],
    timings: dict[str, float],
) -> AttributionResult:
    """The scores written into the graph (per span too, with a position axis) and the
    result with its diagnostics."""
    position_scores = None
    if data.n_spans:
        position_scores, scores = scores.cpu(), scores.sum(0)
        graph.set_position_scores(data.span_names, position_scores.float())
    else:
        graph.set_scores(scores.float().cpu())
    diagnostics = {
        "metric_clean": float(sums[0]) / len(data),
        "metric_ablated": float(sums[1]) / len(data),
        "total_score": float(scores.sum()),
    }
    diagnostics["input_edge_sum"] = float(scores[0].sum())
    method.diagnostics(scores, diagnostics)
    return AttributionResult(
        scores=scores.cpu(),
        method=method.name,
        settings=settings,
        timings=timings,
        diagnostics=diagnostics,
        position_scores=position_scores,
    )


def _ensemble(
    ensemble: Ensemble, model, graph: Graph, data: PromptPairs, setup: RunSetup, **kwargs
) -> AttributionResult:
    """Every member's :func:`attribute` run, combined (see :mod:`attribution.methods.ensemble`);
    all members are checked before the first one runs."""
    ensemble.check(graph, setup.ablation)
    for member in ensemble.members:
        if not data.has_corrupted and member.reads_corrupted(setup.ablation):
            raise NoCounterfactualsError(
                f"ensemble member {member.name!r} with ablation={setup.ablation.name!r}"
            )
    setup.check(model, graph, data, reads_corrupted=ensemble.reads_corrupted(setup.ablation))
    results = [
        attribute(model, graph, data, method=m, setup=setup, **kwargs) for m in ensemble.members
    ]
    scores = ensemble.combined([r.scores for r in results], graph.real_edges)
    graph.set_scores(scores.float())
    first = results[0].diagnostics
    diagnostics = {
        "metric_clean": first["metric_clean"],
        "metric_ablated": next(
            (
                r.diagnostics["metric_ablated"]
                for r in results
                if r.diagnostics["metric_ablated"] == r.diagnostics["metric_ablated"]
            ),
            first["metric_ablated"],
        ),
        "total_score": float(scores.sum()),
        "input_edge_sum": float(scores[0].sum()),
    }
    timings = {f"{r.method}.{k}": v for r in results for k, v in r.timings.items()}
    timings["attribution"] = sum(r.timings.get("attribution", 0.0) for r in results)
    settings = dict(results[0].settings, method=ensemble.name, **ensemble.settings())
    settings["member_settings"] = [r.settings for r in results]
    return AttributionResult(scores, ensemble.name, settings, timings, diagnostics)


__all__ = ["AttributionResult", "attribute"]
