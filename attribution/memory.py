"""Memory estimates used to size the rows of one forward+backward pass."""

from __future__ import annotations

import torch


def row_bytes(model, n_pos: int, dtype: torch.dtype | None = None) -> int:
    """Estimated bytes that one example row of ``n_pos`` tokens keeps alive for the backward
    pass of an edge-hooked bridge.

    Per layer and token: the per-head q/k/v input copies (``(H + 2K)·d``), per-head results
    (``H·d``), the MLP hidden layer twice (``2·d_mlp``), about ten residual-width tensors
    (norms, projections, residual) and the attention scores and pattern (``2·H·n_pos``); plus,
    per row, three vocabulary-wide tensors for the logits (only the metric position is
    unembedded, :func:`attribution.passes.unembed_at`). Checked against measured peaks on GPT-2
    shapes (within about 30 %); used only to pick chunk sizes, never for correctness."""
    cfg = model.cfg
    d, heads = int(cfg.d_model), int(cfg.n_heads)
    kv = int(getattr(cfg, "n_key_value_heads", None) or heads)
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d)
    per_layer = (heads + 2 * kv) * d + heads * d + 2 * d_mlp + 10 * d + 2 * heads * n_pos
    per_token = int(cfg.n_layers) * per_layer
    size = torch.finfo(dtype or next(model.parameters()).dtype).bits // 8
    return (per_token * n_pos + 3 * int(cfg.d_vocab)) * size


def rows_within(model, n_pos: int, budget_bytes: float, wanted: int) -> int:
    """How many rows (at most ``wanted``, at least 1) fit in ``budget_bytes``."""
    return max(1, min(wanted, int(budget_bytes // max(1, row_bytes(model, n_pos)))))


def attribution_peak_bytes(
    model,
    graph,
    *,
    batch_size: int,
    n_pos: int,
    rows: int,
    method,
    node_chunk: int | None = None,
    dtype: torch.dtype | None = None,
    n_spans: int | None = None,
) -> dict[str, int]:
    """Predicted peak bytes of :func:`attribution.attribute` beyond the model's weights.

    Per batch of ``b`` examples and ``p`` positions, with ``s`` bytes per activation value:

    - ``activations``: ``rows`` example rows of a forward+backward pass (:func:`row_bytes`);
    - ``port_gradients``: ``b·p·K·d·s`` (``K`` ports);
    - ``write_buffers``: clean, ablated and difference writes, ``3·b·p·F'·d·s`` with ``F'``
      the node chunk (all ``F`` upstream nodes unless chunked);
    - ``contraction`` (:mod:`attribution.contraction`): the per-token products of one block
      of ``K'`` ports (the widest block of one reader layer's ports, at most the node chunk
      when chunked) with ``F'`` nodes, and their copy kept per span, ``2·b·p·F'·K'·c`` with
      ``c`` the scores' bytes (8 in float64 runs, else 4); on 16-bit models also float32
      copies of the differences and of one block of gradients, ``(F' + K')·b·p·d·4``;
    - ``logits``: the clean and corrupted logits at the metric positions, ``2·b·V·s``;
    - ``position_scores`` (with ``n_spans`` ``S``): the ``[S, F, K]`` score accumulator,
      ``S·F·K·8`` (float64 at worst); 0 without a position axis.

    ``total`` is their sum. Compared with measured peaks in ``benchmarks/bench_memory.py``."""
    dtype = dtype or next(model.parameters()).dtype
    s = torch.finfo(dtype).bits // 8
    b, p, d = batch_size, n_pos, int(graph.spec.d_model or model.cfg.d_model)
    F, K = graph.n_forward, graph.n_backward
    from attribution.contraction import score_blocks
    from attribution.methods import get_method  # the method declares whether it chunks

    K_block = max((stop - first for _, first, stop in score_blocks(graph.real_edges)), default=K)
    if node_chunk is not None and get_method(method).node_chunking:
        F = min(F, node_chunk)
        K_block = min(K_block, node_chunk)
    c = 8 if dtype == torch.float64 else 4
    parts = {
        "activations": rows * row_bytes(model, n_pos, dtype),
        "port_gradients": b * p * K * d * s,
        "write_buffers": 3 * b * p * F * d * s,
        "contraction": 2 * b * p * F * K_block * c
        + ((F + K_block) * b * p * d * 4 if s < 4 else 0),
        "logits": 2 * b * int(model.cfg.d_vocab) * s,
        "position_scores": n_spans * graph.n_forward * K * 8 if n_spans else 0,
    }
    parts["total"] = sum(parts.values())
    return parts


def node_chunk_within(model, graph, budget_bytes: float, **kwargs) -> int | None:
    """The largest node chunk whose predicted peak fits ``budget_bytes`` (None: no chunking
    needed; 1 when even that does not fit, the smallest possible)."""
    if attribution_peak_bytes(model, graph, node_chunk=None, **kwargs)["total"] <= budget_bytes:
        return None
    low, high = 1, graph.n_forward
    while low < high:  # the peak grows with the chunk: bisect for the largest that fits
        mid = (low + high + 1) // 2
        if attribution_peak_bytes(model, graph, node_chunk=mid, **kwargs)["total"] <= budget_bytes:
            low = mid
        else:
            high = mid - 1
    return low
