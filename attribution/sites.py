"""Where the graph's nodes write to and ports read from the residual stream, as bridge hooks.

A *writer site* is one hook whose output holds the writes of one or more upstream nodes
(``input``, all heads of a layer, one MLP); a *reader site* is one hook whose input holds the
inputs of one or more ports (a layer's q, k or v inputs, an MLP input, the final residual).

Gemma-2 normalises each attention output before adding it to the stream
(``blocks.{l}.ln1_post``). A head's write is therefore defined as its result passed through
that norm *with the norm's scale taken from the same run*: ``r_h / rms(sum_h r_h) * (1 + w)``.
These writes add up exactly to what the block adds to the stream, so edge patching stays
well-defined (patching ``u -> v`` adds ``write_u(corrupted) - write_u(clean)`` to port v).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from graphs import Graph

#: The hook whose output is the input node's write (embeddings, before block 0).
INPUT_HOOK = "blocks.0.hook_resid_pre"


@dataclass(frozen=True)
class WriterSite:
    hook: str
    rows: tuple[int, ...]  # forward indices written, in the order of the hook's head axis
    per_head: bool  # True when the hook output is [batch, pos, heads, d_model]
    post_norm: str | None = None  # Gemma-2: name of the norm module applied after the heads


@dataclass(frozen=True)
class ReaderSite:
    hook: str
    cols: tuple[int, ...]  # port indices read, in the order of the hook's head axis
    per_head: bool


def writer_sites(graph: Graph) -> list[WriterSite]:
    """Writer sites in forward order: input, then per layer heads and MLP."""
    layout, spec = graph.layout, graph.spec
    post_norm = spec.architecture == "Gemma2ForCausalLM"
    sites = [WriterSite(INPUT_HOOK, (0,), False)]
    for layer in range(spec.n_layers):
        heads = tuple(layout.head_index(layer, h) for h in range(spec.n_heads))
        norm = f"blocks.{layer}.ln1_post" if post_norm else None
        sites.append(WriterSite(f"blocks.{layer}.attn.hook_result", heads, True, norm))
        sites.append(WriterSite(f"blocks.{layer}.hook_mlp_out", (layout.mlp_index(layer),), False))
    return sites


def reader_sites(graph: Graph) -> list[ReaderSite]:
    """Reader sites: per layer q, k, v inputs and MLP input, then the final residual."""
    layout, spec = graph.layout, graph.spec
    sites = []
    for layer in range(spec.n_layers):
        H, K = spec.n_heads, spec.n_kv_heads
        sites.append(
            ReaderSite(
                f"blocks.{layer}.hook_q_input",
                tuple(layout.q_port(layer, h) for h in range(H)),
                True,
            )
        )
        sites.append(
            ReaderSite(
                f"blocks.{layer}.hook_k_input",
                tuple(layout.k_port(layer, g) for g in range(K)),
                True,
            )
        )
        sites.append(
            ReaderSite(
                f"blocks.{layer}.hook_v_input",
                tuple(layout.v_port(layer, g) for g in range(K)),
                True,
            )
        )
        sites.append(ReaderSite(f"blocks.{layer}.hook_mlp_in", (layout.mlp_port(layer),), False))
    sites.append(ReaderSite("ln_final.hook_in", (layout.logits_port,), False))
    return sites


def _gemma_gain(model, norm_name: str) -> torch.Tensor:
    module = model.get_submodule(norm_name)
    weight = dict(module.named_parameters())
    (w,) = [p for name, p in weight.items() if name.endswith("weight")]
    return 1.0 + w.detach()


def writer_hooks(
    model,
    graph: Graph,
    out: torch.Tensor,
    sign: float = 1.0,
    nodes: range | None = None,
    *,
    detach: bool = True,
) -> list:
    """Forward hooks that add ``sign * write`` of every upstream node into ``out``
    ``[batch, pos, n_forward, d_model]`` (detached unless ``detach=False``, which learned
    masks need: their gradient flows through every write). With ``nodes`` (a range of forward
    indices) only those nodes' writes are kept, in ``out[:, :, node - nodes.start]``."""
    hooks = []
    pending: dict[str, torch.Tensor] = {}
    nodes = range(graph.n_forward) if nodes is None else nodes
    for site in writer_sites(graph):
        kept = [i for i, row in enumerate(site.rows) if row in nodes]
        if not kept:
            continue
        local = [site.rows[i] - nodes.start for i in kept]
        # a site's nodes are consecutive forward indices: add into a slice (a view), not
        # through an index (a gather and a scatter of the whole block)
        assert local == list(range(local[0], local[0] + len(local)))
        rows = slice(local[0], local[0] + len(local))
        # which of the site's heads to keep (None: all, without an indexing copy)
        pick = None if len(kept) == len(site.rows) else slice(kept[0], kept[-1] + 1)

        def add(value, rows=rows, pick=pick):
            if pick is not None:
                value = value[:, :, pick]
            # .to(device): with a device_map, layers (and their writes) may sit on other devices
            out[:, :, rows].add_(value.to(device=out.device, dtype=out.dtype), alpha=sign)

        def save(t, hook, site=site, add=add):
            value = t.detach() if detach else t
            if site.post_norm is not None:
                pending[site.post_norm] = value  # scaled once the norm's scale is known
                return t
            add(value if site.per_head else value.unsqueeze(2))
            return t

        hooks.append((site.hook, save))
        if site.post_norm is not None:
            gain = _gemma_gain(model, site.post_norm)

            def scale(t, hook, site=site, add=add, gain=gain):
                result = pending.pop(site.post_norm)
                add(result / (t.detach() if detach else t).unsqueeze(-1) * gain)
                return t

            hooks.append((f"{site.post_norm}.hook_scale", scale))
    return hooks
