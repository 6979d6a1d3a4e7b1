"""GraphML files, for other graph tools (Gephi, yEd, networkx, igraph).

The file is ``networkx.write_graphml`` of :func:`graphs.networkx_io.to_networkx`. Scores are
GraphML ``double``: networkx writes ``str(float)``, the shortest text that reads back to the
same float64, and a float32 score is exactly representable as a float64, so scores round-trip
bit-exactly (including -0.0, subnormals, ``inf`` and ``nan``).

A position-aware graph is written, by default, with one node per (node, span)
(``"a0.h1@S1"``, see :mod:`graphs.networkx_io`), so other tools draw its spans apart
and :func:`load_graphml` reads back its span names, per-span scores and per-span circuit;
``positions=False`` writes the position-agnostic layout (summed scores) instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from xml.etree.ElementTree import ParseError

import networkx as nx

from graphs.atomic_files import atomic_write
from graphs.errors import GraphFormatError
from graphs.graph import Graph
from graphs.networkx_io import from_networkx, to_networkx


def save_graphml(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    only_in_graph: bool = False,
    positions: bool | None = None,
) -> None:
    """Write ``graph`` as GraphML (atomically: a temporary file renamed over ``path``);
    ``positions`` as in :func:`graphs.networkx_io.to_networkx`."""
    G = to_networkx(graph, only_in_graph=only_in_graph, positions=positions)
    with atomic_write(path) as handle:
        nx.write_graphml(G, handle, named_key_ids=False)


def load_graphml(path: str | os.PathLike[str]) -> Graph:
    """Read a graph written by :func:`save_graphml`; GraphFormatError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such graph file", str(path))
    try:
        G = nx.read_graphml(path)
    # networkx reports bad key types as KeyError and bad values as ValueError/TypeError
    except (ParseError, nx.NetworkXError, KeyError, ValueError, TypeError) as err:
        raise GraphFormatError(
            f"{path} is not valid GraphML (truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err
    try:
        return from_networkx(G)
    except GraphFormatError as err:
        raise GraphFormatError(f"{path}: {err}") from err
