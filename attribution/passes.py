"""Model runs the attribution methods are built from: reading writes, reading the metric,
and collecting the metric's gradient at every port in one backward pass."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from attribution.data import PromptPairs
from attribution.metrics import Metric, MetricError
from attribution.sites import INPUT_HOOK, reader_sites, writer_hooks
from graphs import Graph
from graphs.errors import CircuitDiscoveryError


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module) -> Iterator[None]:
    """Turn off parameter gradients: attribution needs gradients at activations only, and not
    computing weight gradients saves about a third of each backward pass."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class NonFiniteMetricError(CircuitDiscoveryError, FloatingPointError):
    """The metric is NaN or infinite for one example (``example``: its index in the data passed
    to the function that raised)."""

    def __init__(self, value: float, example: int):
        self.value, self.example = value, example
        super().__init__(
            f"metric is {value} for example {example}; check its answer tokens "
            "(log_prob of a zero-probability answer?) and the model's dtype"
        )


def check_finite(values: torch.Tensor, example: torch.Tensor) -> None:
    """Raise NonFiniteMetricError for the first non-finite ``values[row]`` (example ``example[row]``)."""
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite).flatten()[0])
        raise NonFiniteMetricError(float(values[bad].detach()), int(example[bad]))


def at_positions(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``[n, pos, vocab]`` -> ``[n, vocab]`` at each example's metric position."""
    return logits[torch.arange(logits.shape[0], device=logits.device), positions]


#: The hook on the unembedding's input (the final residual after its norm).
UNEMBED_HOOK = "unembed.hook_in"


def unembed_at(positions: torch.Tensor) -> tuple[str, Callable]:
    """A forward hook that unembeds each row at its metric position only (``positions``
    long ``[n]``): the unembedding's input ``[n, pos, d]`` is cut to ``[n, 1, d]``, so the
    model returns logits ``[n, 1, vocab]``. Every metric reads those positions alone, and
    the vocabulary-wide product at every token is about a third of a GPT-2-small forward
    (and of its backward). The final norm works per token, so the values do not change."""

    def cut(t, hook):
        rows = torch.arange(t.shape[0], device=t.device)
        return t[rows, positions.to(t.device)].unsqueeze(1)

    return (UNEMBED_HOOK, cut)


def collect_writes(
    model,
    graph: Graph,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    dtype: torch.dtype,
    nodes: range | None = None,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One no-grad run: every upstream node's write ``[n, pos, n_forward, d_model]`` (or only
    the forward indices in ``nodes``: ``[n, pos, len(nodes), d_model]``) and the logits
    ``[n, pos, vocab]``, or with ``positions`` (long ``[n]``) the logits ``[n, vocab]`` at
    those positions only (:func:`unembed_at`)."""
    n, pos = tokens.shape
    writes = torch.zeros(
        n,
        pos,
        graph.n_forward if nodes is None else len(nodes),
        graph.spec.d_model or model.cfg.d_model,
        dtype=dtype,
        device=tokens.device,
    )
    hooks = writer_hooks(model, graph, writes, nodes=nodes)
    if positions is not None:
        hooks.append(unembed_at(positions))
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, attention_mask=mask)
    return writes, logits if positions is None else logits[:, 0]


def port_gradient_hooks(graph: Graph, grads: torch.Tensor, example: torch.Tensor) -> list:
    """Forward hooks that register tensor hooks adding each port input's gradient into
    ``grads[example[row]]`` (``grads`` is ``[n, pos, n_backward, d_model]``), so many
    interpolation steps stacked into the batch reduce to one gradient per example."""
    # rows that are the examples in order (EAP, one IG step a pass): a plain in-place add
    in_order = len(example) == grads.shape[0] and torch.equal(
        example.cpu(), torch.arange(len(example))
    )
    hooks = []
    for site in reader_sites(graph):
        first, last = site.cols[0], site.cols[-1] + 1
        # each site's ports are contiguous in the layout, so a slice (a view) can be added into
        assert list(site.cols) == list(range(first, last))

        def fwd(t, hook, first=first, last=last, per_head=site.per_head):
            if t.requires_grad:
                # A hook may see the residual tensor itself (hook_mlp_in is resid_mid, which
                # also flows on through the skip connection); a fresh view carries only the
                # gradient of this port's reader.
                t = t.view_as(t)

                def bwd(grad):
                    g = grad if per_head else grad.unsqueeze(2)
                    g = g.to(device=grads.device, dtype=grads.dtype)  # device_map: any device
                    if in_order:
                        grads[:, :, first:last].add_(g)
                    else:
                        grads[:, :, first:last].index_add_(0, example, g)

                t.register_hook(bwd)
            return t

        hooks.append((site.hook, fwd))
    return hooks


def metric_backward(
    model,
    graph: Graph,
    data: PromptPairs,
    metric: Metric,
    clean_logits: torch.Tensor,
    grads: torch.Tensor,
    *,
    tokens: torch.Tensor,
    example: torch.Tensor,
    weight: torch.Tensor,
    extra_hooks: list | None = None,
    leaf_hook: Callable | None = None,
) -> torch.Tensor:
    """Run ``tokens`` (rows = examples ``example[row]`` of ``data``), take
    ``sum_row weight[row] * metric[row]`` and backpropagate it, adding port-input gradients into
    ``grads``. ``leaf_hook`` replaces the input write (e.g. for input interpolation); by default
    the input write is made a leaf so gradients flow without parameter gradients.
    Returns the per-row metric values (detached)."""

    def make_leaf(t, hook):
        return t.detach().requires_grad_(True)

    hooks = [(INPUT_HOOK, leaf_hook or make_leaf)]
    hooks += port_gradient_hooks(graph, grads, example)
    hooks += extra_hooks or []
    rows = (
        data.select(example.cpu())
        if len(example) != len(data) or not torch.equal(example.cpu(), torch.arange(len(data)))
        else data
    )
    hooks.append(unembed_at(rows.positions))
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, attention_mask=rows.attention_mask.to(tokens.device))
        values = metric(logits[:, 0], clean_logits[example], rows)
        if values.shape != (len(example),):
            raise MetricError(
                f"metric returned shape {tuple(values.shape)}; it must return one value per example ([{len(example)}])"
            )
        check_finite(values, example)
        (values * weight.to(values.dtype)).sum().backward()
    return values.detach()
