"""A circuit: which edges and nodes of a graph it keeps, as two bool masks.

Selection functions (``circuits.search.select``) and the minimal-circuit search return a
:class:`Circuit` and leave their input graph as it was (as networkx algorithms do); put a
circuit into a graph with :meth:`graphs.Graph.set_circuit` and read a graph's circuit with
:attr:`graphs.Graph.circuit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Circuit:
    """``edges``: bool ``[n_forward, n_backward]``, the kept edges, or, for a position-aware
    circuit (:mod:`circuits.search.select`), ``[n_spans, n_forward, n_backward]``, the
    kept (span, edge) pairs; ``nodes``: bool ``[n_nodes]``, the kept nodes
    (``graph.layout.nodes`` order). ``n_edges`` counts the ``True`` entries of ``edges``."""

    edges: torch.Tensor
    nodes: torch.Tensor

    @property
    def n_edges(self) -> int:
        return int(self.edges.sum())

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.sum())

    # the names Graph uses, so code written for graphs returned by selections keeps working
    def count_included_edges(self) -> int:
        return self.n_edges

    def count_included_nodes(self) -> int:
        return self.n_nodes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        return torch.equal(self.edges, other.edges) and torch.equal(self.nodes, other.nodes)

    def __repr__(self) -> str:
        return f"Circuit({self.n_edges} edges, {self.n_nodes} nodes)"
