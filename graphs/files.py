"""Choosing a graph file format by suffix (or by name) for ``Graph.save`` / ``Graph.load``."""

from __future__ import annotations

import os
from pathlib import Path

from graphs.errors import GraphFormatError
from graphs.graph import Graph
from graphs.graphml_io import load_graphml, save_graphml
from graphs.json_io import load_json, save_json
from graphs.tensor_io import load_safetensors, save_safetensors

#: Graph file suffixes and their formats (the files Graph.load reads).
FORMATS = {".graphml": "graphml", ".json": "json", ".safetensors": "safetensors"}
_SAVERS = {"graphml": save_graphml, "json": save_json, "safetensors": save_safetensors}
_LOADERS = {"graphml": load_graphml, "json": load_json, "safetensors": load_safetensors}


def format_for(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``"graphml"``, ``"json"`` or ``"safetensors"``, from ``format`` or else the suffix."""
    if format is not None:
        name = format.lower().lstrip(".")
        if name not in _SAVERS:
            raise GraphFormatError(
                f"unknown graph format {format!r}; choose one of {', '.join(_SAVERS)}"
            )
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise GraphFormatError(
            f"cannot tell the graph format of {str(path)!r} from its suffix {suffix!r}: use "
            f"{', '.join(FORMATS)} or pass format= one of {', '.join(_SAVERS)}"
        )
    return FORMATS[suffix]


def save_graph(graph: Graph, path: str | os.PathLike[str], *, format: str | None = None) -> None:
    """Save ``graph`` in the format chosen by :func:`format_for`."""
    _SAVERS[format_for(path, format)](graph, path)


def load_graph(path: str | os.PathLike[str], *, format: str | None = None) -> Graph:
    """Load a graph in the format chosen by :func:`format_for`."""
    return _LOADERS[format_for(path, format)](path)
