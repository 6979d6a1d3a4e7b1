"""Graph files: one registry of formats, and :func:`save_graph` / :func:`load_graph` over it.

A format is a name, the file suffixes it is chosen by, a ``save(graph, path, **options)``
and a ``load(path) -> Graph``, or no ``load`` for an export-only format (DOT, MIB). A new format
is one module with those functions plus one :func:`register_format` line, here for a bundled
format or anywhere for one of your own::

    register_format("csv", (".csv",), save=save_csv, load=load_csv)

The registry is read at each call, so a format registered later counts. The format modules
import :class:`~graphs.graph.Graph` and this module imports them; ``Graph`` itself knows no
file format.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.dot_io import save_dot
from graphs.errors import GraphFormatError, GraphMismatchError
from graphs.graph import Graph
from graphs.graphml_io import load_graphml, save_graphml
from graphs.json_io import load_json, save_json
from graphs.mib_io import save_mib, save_mib_pt
from graphs.tensor_io import load_safetensors, save_safetensors

__all__ = [
    "GraphFormat",
    "format_for",
    "formats",
    "load_graph",
    "readable_suffixes",
    "register_format",
    "save_graph",
]

Saver = Callable[..., None]
Loader = Callable[[Path], Graph]


@dataclass(frozen=True)
class GraphFormat:
    """A registered graph file format; ``load`` is None for an export-only one."""

    name: str
    suffixes: tuple[str, ...]
    save: Saver
    load: Loader | None = None

    @property
    def readable(self) -> bool:
        return self.load is not None


_FORMATS: dict[str, GraphFormat] = {}


def register_format(
    name: str, suffixes: tuple[str, ...], *, save: Saver, load: Loader | None = None
) -> GraphFormat:
    """Add a format (``load=None``: export only); GraphFormatError when its name or one of
    its suffixes is taken, since a suffix must choose one format."""
    name = name.lower()
    suffixes = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
    if name in _FORMATS:
        raise GraphFormatError(f"a graph format named {name!r} is already registered")
    taken = {s: f.name for f in _FORMATS.values() for s in f.suffixes}
    clash = [s for s in suffixes if s in taken]
    if clash:
        raise GraphFormatError(
            f"suffix {clash[0]!r} already chooses the {taken[clash[0]]!r} graph format"
        )
    _FORMATS[name] = GraphFormat(name, suffixes, save, load)
    return _FORMATS[name]


def formats() -> dict[str, GraphFormat]:
    """The registered formats by name, in registration order (a copy)."""
    return dict(_FORMATS)


def readable_suffixes() -> tuple[str, ...]:
    """The suffixes of the formats :func:`load_graph` reads (``.graphml``, ``.json``, ...)."""
    return tuple(s for f in _FORMATS.values() if f.readable for s in f.suffixes)


def format_for(path: str | os.PathLike[str], format: str | None = None) -> GraphFormat:
    """The format named ``format``, or else the one ``path``'s suffix chooses;
    GraphFormatError naming the registered ones when there is none."""
    names = ", ".join(_FORMATS)
    if format is not None:
        found = _FORMATS.get(format.lower().lstrip("."))
        if found is None:
            raise GraphFormatError(f"unknown graph format {format!r}; choose one of {names}")
        return found
    suffix = Path(path).suffix.lower()
    for found in _FORMATS.values():
        if suffix in found.suffixes:
            return found
    suffixes = ", ".join(s for f in _FORMATS.values() for s in f.suffixes)
    raise GraphFormatError(
        f"cannot tell the graph format of {str(path)!r} from its suffix {suffix!r}: use "
        f"{suffixes} or pass format= one of {names}"
    )


def save_graph(
    graph: Graph, path: str | os.PathLike[str], *, format: str | None = None, **options: Any
) -> None:
    """Save ``graph`` to ``path`` in the format ``format`` names or ``path``'s suffix chooses
    (``.graphml``, ``.json``, ``.safetensors``, ``.dot``); ``options`` go to the format's
    saver (``only_in_graph=True`` for GraphML, say)."""
    format_for(path, format).save(graph, path, **options)


def load_graph(
    path: str | os.PathLike[str], *, model: Any = None, format: str | None = None
) -> Graph:
    """Load a graph saved by :func:`save_graph`. With ``model`` (a TransformerBridge or a
    ModelSpec), raise GraphMismatchError unless the graph fits it."""
    found = format_for(path, format)
    if found.load is None:
        readable = ", ".join(f.name for f in _FORMATS.values() if f.readable)
        raise GraphFormatError(
            f"{path}: {found.name} is an export-only graph format, not read back; load one of "
            f"{readable}"
        )
    graph = found.load(path)
    if model is not None:
        try:
            graph.check_compatible(model)
        except GraphMismatchError as err:
            raise GraphMismatchError(f"{path}: {err}") from err
    return graph


# The bundled formats: each is its module plus this one line.
register_format("graphml", (".graphml",), save=save_graphml, load=load_graphml)
register_format("json", (".json",), save=save_json, load=load_json)
register_format("safetensors", (".safetensors",), save=save_safetensors, load=load_safetensors)
register_format("dot", (".dot",), save=save_dot)
register_format("mib", (), save=save_mib)  # MIB's files end in .json: chosen by name only
register_format("mib-pt", (), save=save_mib_pt)  # and .pt
