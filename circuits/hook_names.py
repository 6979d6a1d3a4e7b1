"""Bridge hook names for circuit-graph nodes and residual-stream layers.

:mod:`circuits.alignment` and :mod:`circuits.patchscopes` both name places in a
``TransformerBridge`` run by graph node (``input``, ``a{l}.h{h}``, ``m{l}``) or by layer; this
module is the one place that turns those into hook names, so both packages accept the same
nodes and reject a bad one with the same message.
"""

from __future__ import annotations

import difflib
from typing import Any

__all__ = ["residual_hook", "writer_hook", "writer_node"]


def residual_hook(layer: int, n_layers: int) -> str:
    """The hook holding the residual stream before block ``layer``
    (``blocks.{layer}.hook_resid_pre``); for ``layer == n_layers`` the last block's
    ``hook_resid_post`` (the final residual, before the last norm). ``layer`` must already be
    in ``0..n_layers``."""
    if layer < n_layers:
        return f"blocks.{layer}.hook_resid_pre"
    return f"blocks.{n_layers - 1}.hook_resid_post"


def writer_node(graph: Any, node: Any, error: type[Exception] = ValueError) -> Any:
    """The :class:`graphs.layout.Node` named ``node`` that writes to the residual stream.

    Raises:
        error: ``node`` is not a name of ``graph``'s layout, or is ``logits`` (which writes
            nothing); the message lists the valid names and the closest matches. Callers pass
            their own error class (``AlignmentError``, ``PatchscopeError``).
    """
    layout = graph.layout
    found = layout.node_by_name.get(node) if isinstance(node, str) else None
    if found is None or found.forward_index < 0:
        spec = graph.spec
        close = difflib.get_close_matches(str(node), list(layout.node_by_name), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise error(
            f"unknown node {node!r}{hint}: a node that writes to the residual stream is "
            f"'input', 'a{{l}}.h{{h}}' or 'm{{l}}' with l in 0..{spec.n_layers - 1} and h in "
            f"0..{spec.n_heads - 1} ('logits' writes nothing)"
        )
    return found


def writer_hook(node: Any) -> tuple[str, int | None]:
    """``(hook, head)`` where a residual-writing layout node's write is read: the embeddings
    for ``input`` (``blocks.0.hook_resid_pre``, head ``None``), a head's result
    (``blocks.{l}.attn.hook_result``, which has a head axis, and the head index) or an MLP's
    output (``blocks.{l}.hook_mlp_out``, head ``None``)."""
    if node.kind == "input":
        return "blocks.0.hook_resid_pre", None
    if node.kind == "attention":
        return f"blocks.{node.layer}.attn.hook_result", node.head
    if node.kind == "mlp":
        return f"blocks.{node.layer}.hook_mlp_out", None
    # callers pass what writer_node accepted (it refuses logits with their own error class),
    # so this is a bug, not bad input: it stays a built-in (tests/test_errors.py)
    raise ValueError(f"node {node.name!r} ({node.kind}) writes nothing to the residual stream")
