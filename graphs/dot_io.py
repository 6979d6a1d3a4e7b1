"""Export a graph's circuit as Graphviz DOT text (export only; DOT is not read back).

Written by hand rather than with ``networkx.nx_pydot`` / ``nx_agraph`` because those need
pydot or pygraphviz, and because a DOT multigraph can draw the parallel q, k and v edges
from one node into one head that a networkx ``DiGraph`` cannot hold. Render it with
``dot -Tsvg circuit.dot -o circuit.svg`` where Graphviz is installed.

Layout hints: ``rankdir=BT`` (input at the bottom, logits on top) and one rank per layer.
Edges are coloured by the sign of their score (blue ≥ 0, red < 0), widened by ``|score|``,
and styled by port: q solid, k dashed, v dotted, MLP/logits inputs bold.

DOT is position-agnostic: a position-aware graph is drawn with its summed scores and its
circuit's union over spans (``circuits.app.figures`` draws the spans; GraphML keeps
them for other tools).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from graphs.atomic_files import atomic_write

if TYPE_CHECKING:
    from graphs.graph import Graph

__all__ = ["save_dot", "to_dot"]

_STYLE = {"q": "solid", "k": "dashed", "v": "dotted", "mlp": "bold", "logits": "bold"}
_SHAPE = {"input": "box", "attention": "ellipse", "mlp": "box", "logits": "box"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph, *, only_in_graph: bool = True) -> str:
    """DOT text of the circuit (``only_in_graph``) or of every real edge."""
    mask = graph.real_edges & graph.in_graph if only_in_graph else graph.real_edges
    edges = [e for e in graph.edges.values() if bool(mask[e.index])]
    biggest = max((abs(e.score) for e in edges), default=0.0) or 1.0
    nodes = {"input", "logits"} | {e.upstream.name for e in edges}
    nodes |= {reader for e in edges for reader in e.port.nodes}
    by_layer: dict[int, list[str]] = {}
    for name in sorted(nodes, key=lambda n: graph.node(n).index):
        by_layer.setdefault(graph.node(name).layer, []).append(name)
    lines = [
        f"digraph {_quote(graph.spec.model_name or 'circuit')} {{",
        "  rankdir=BT;",
        "  node [fontsize=10];",
    ]
    for _layer, names in sorted(by_layer.items()):
        lines.append("  { rank=same; " + " ".join(_quote(n) for n in names) + " }")
        for name in names:
            lines.append(f"  {_quote(name)} [shape={_SHAPE[graph.node(name).kind]}];")
    for e in edges:
        colour = "#1f5fbf" if e.score >= 0 else "#c0392b"
        width = 0.5 + 3.5 * abs(e.score) / biggest
        for reader in e.port.nodes:
            lines.append(
                f"  {_quote(e.upstream.name)} -> {_quote(reader)} [label={_quote(e.port.port)}, "
                f"style={_STYLE[e.port.port]}, color={_quote(colour)}, penwidth={width:.2f}, "
                f"tooltip={_quote(f'{e.name} score={e.score:.4g}')}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def save_dot(graph: Graph, path: str | os.PathLike[str], *, only_in_graph: bool = True) -> None:
    """Write :func:`to_dot` text to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(to_dot(graph, only_in_graph=only_in_graph).encode("utf-8"))
