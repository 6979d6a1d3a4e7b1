"""Names and indices of the nodes, ports and edges of the residual-stream decomposition.

Upstream ("forward") nodes write into the residual stream; downstream ("backward") ports read
from it. The index layout is fixed so that scores can live in dense ``[upstream, port]``
tensors:

- upstream index: ``input`` is 0; layer ``l``'s heads are ``1 + l*(H+1) + h`` and its MLP
  ``1 + l*(H+1) + H``. ``n_forward = 1 + L*(H+1)``.
- port index: with ``P = H + 2*K + 1`` ports per layer, layer ``l``'s query ports are
  ``l*P + h``, its key ports ``l*P + H + g``, value ports ``l*P + H + K + g``, MLP port
  ``l*P + H + 2K``; ``logits`` is ``L*P``. ``n_backward = L*P + 1``.

Grouped-query attention (``K < H`` key/value heads): a key or value input is computed once per
key/value head and shared by its ``H/K`` query heads (query head ``h`` uses key/value head
``h // (H/K)``, as Hugging Face's ``repeat_kv`` does). The graph therefore has one ``k`` and one
``v`` port per key/value head, named ``a{l}.kv{g}<k>`` / ``a{l}.kv{g}<v>``, feeding every query
head of the group. Patching edge ``u -> a{l}.kv{g}<k>`` changes the keys that all heads of group
``g`` see, which is exactly what one intervention on the model's key input can do. With
ordinary multi-head attention (``K == H``) each head has its own ports ``a{l}.h{h}<k>``.

Edge count, with ``P = H + 2K + 1``::

    E = (L*P + 1)                          # from input
      + (H + 1) * (P * L*(L-1)/2 + L)      # from every head and MLP to later layers and logits
      + L*H                                # heads to their own layer's MLP (0 if parallel)

GPT-2 small (L=H=K=12): 158 nodes, 157 x 445 index, 32,491 edges. Llama-3-8B (L=32, H=32,
K=8): 805,681 edges here; a graph that gives every query head its own k/v port (not exactly
patchable on a grouped model) would have 1,592,881.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from graphs.errors import UnknownEdgeError
from graphs.spec import ModelSpec

INPUT = "input"
LOGITS = "logits"


@dataclass(frozen=True)
class Node:
    """A component: ``input``, an attention head ``a{l}.h{h}``, an MLP ``m{l}`` or ``logits``.

    ``layer`` is -1 for ``input`` and ``n_layers`` for ``logits``; ``head`` is -1 unless the
    node is a head. ``forward_index`` is the node's row in score tensors (-1 for ``logits``,
    which writes nothing); ``index`` is its position in ``Graph.nodes`` / node flag tensors.
    """

    name: str
    kind: str  # "input" | "attention" | "mlp" | "logits"
    layer: int
    head: int
    index: int
    forward_index: int


@dataclass(frozen=True)
class Port:
    """An input of a downstream node: ``q``/``k``/``v`` of attention, or the single input of an
    MLP (``port == "mlp"``) or of the logits (``port == "logits"``).

    ``nodes`` lists the nodes that read this port (several query heads for a grouped k/v port).
    ``head`` is the query head for ``q``, the key/value head for ``k``/``v``, else -1.
    """

    name: str
    port: str
    layer: int
    head: int
    nodes: tuple[str, ...]
    index: int


class Layout:
    """All names and indices for one :class:`ModelSpec`; cheap to build even for 8B models."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        L, H, K = spec.n_layers, spec.n_heads, spec.n_kv_heads
        self.ports_per_layer = H + 2 * K + 1
        self.n_forward = 1 + L * (H + 1)
        self.n_backward = L * self.ports_per_layer + 1

        nodes = [Node(INPUT, "input", -1, -1, 0, 0)]
        for layer in range(L):
            for head in range(H):
                idx = len(nodes)
                nodes.append(Node(f"a{layer}.h{head}", "attention", layer, head, idx, idx))
            idx = len(nodes)
            nodes.append(Node(f"m{layer}", "mlp", layer, -1, idx, idx))
        nodes.append(Node(LOGITS, "logits", L, -1, len(nodes), -1))
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.node_by_name: dict[str, Node] = {n.name: n for n in nodes}

        group = H // K
        ports: list[Port] = []
        for layer in range(L):
            for head in range(H):
                ports.append(
                    Port(
                        f"a{layer}.h{head}<q>", "q", layer, head, (f"a{layer}.h{head}",), len(ports)
                    )
                )
            for kind in ("k", "v"):
                for g in range(K):
                    readers = tuple(f"a{layer}.h{h}" for h in range(g * group, (g + 1) * group))
                    name = (
                        f"a{layer}.kv{g}<{kind}>"
                        if spec.grouped_query
                        else f"a{layer}.h{g}<{kind}>"
                    )
                    ports.append(Port(name, kind, layer, g, readers, len(ports)))
            ports.append(Port(f"m{layer}", "mlp", layer, -1, (f"m{layer}",), len(ports)))
        ports.append(Port(LOGITS, "logits", L, -1, (LOGITS,), len(ports)))
        self.ports: tuple[Port, ...] = tuple(ports)
        self.port_by_name: dict[str, Port] = {p.name: p for p in ports}
        self.upstream: tuple[Node, ...] = self.nodes[:-1]

    # ----------------------------------------------------------------- index arithmetic
    def head_index(self, layer: int, head: int) -> int:
        return 1 + layer * (self.spec.n_heads + 1) + head

    def mlp_index(self, layer: int) -> int:
        return 1 + layer * (self.spec.n_heads + 1) + self.spec.n_heads

    def q_port(self, layer: int, head: int) -> int:
        return layer * self.ports_per_layer + head

    def k_port(self, layer: int, kv_head: int) -> int:
        return layer * self.ports_per_layer + self.spec.n_heads + kv_head

    def v_port(self, layer: int, kv_head: int) -> int:
        return layer * self.ports_per_layer + self.spec.n_heads + self.spec.n_kv_heads + kv_head

    def mlp_port(self, layer: int) -> int:
        return layer * self.ports_per_layer + self.spec.n_heads + 2 * self.spec.n_kv_heads

    @property
    def logits_port(self) -> int:
        return self.n_backward - 1

    # ----------------------------------------------------------------- edges
    @cached_property
    def real_edges(self) -> torch.Tensor:
        """Bool ``[n_forward, n_backward]``: True where an upstream node can feed a port."""
        up_layer = torch.tensor([n.layer for n in self.upstream])
        up_is_head = torch.tensor([n.kind == "attention" for n in self.upstream])
        port_layer = torch.tensor([p.layer for p in self.ports])
        port_is_mlp = torch.tensor([p.port == "mlp" for p in self.ports])
        mask = up_layer[:, None] < port_layer[None, :]
        if not self.spec.parallel_attn_mlp:
            mask |= (
                (up_layer[:, None] == port_layer[None, :])
                & up_is_head[:, None]
                & port_is_mlp[None, :]
            )
        return mask

    @cached_property
    def n_edges(self) -> int:
        return int(self.real_edges.sum())

    def expected_edge_count(self) -> int:
        """Closed-form edge count (see module docstring); must equal ``n_edges``."""
        L, H, P = self.spec.n_layers, self.spec.n_heads, self.ports_per_layer
        same_layer = 0 if self.spec.parallel_attn_mlp else L * H
        return (L * P + 1) + (H + 1) * (P * L * (L - 1) // 2 + L) + same_layer

    def edge_name(self, up: int, port: int) -> str:
        return f"{self.upstream[up].name}->{self.ports[port].name}"

    def edge_index(self, name: str) -> tuple[int, int]:
        """``(upstream index, port index)`` of a real edge given its name ``"u->port"``."""
        up_name, sep, port_name = name.partition("->")
        up = self.node_by_name.get(up_name)
        port = self.port_by_name.get(port_name)
        if not sep or up is None or up.forward_index < 0 or port is None:
            raise UnknownEdgeError(
                f"no edge named {name!r}: edge names look like 'input->a0.h1<q>' or 'a3.h2->m5'"
                + (
                    " (key/value ports are a{l}.kv{g}<k> on this grouped-query model)"
                    if self.spec.grouped_query
                    else ""
                )
            )
        if not bool(self.real_edges[up.forward_index, port.index]):
            raise UnknownEdgeError(
                f"{name!r} is not an edge of this model: {up_name} (layer {up.layer}) cannot feed "
                f"{port_name} (layer {port.layer})"
            )
        return up.forward_index, port.index

    def node(self, name: str) -> Node:
        try:
            return self.node_by_name[name]
        except KeyError:
            raise UnknownEdgeError(
                _unknown("node", name, "'input', 'a0.h1', 'm3' or 'logits'")
            ) from None

    def port(self, name: str) -> Port:
        try:
            return self.port_by_name[name]
        except KeyError:
            raise UnknownEdgeError(_unknown("port", name, "'a0.h1<q>', 'm3' or 'logits'")) from None


def _unknown(what: str, name: str, examples: str) -> str:
    return f"no {what} named {name!r}; {what} names look like {examples}"
