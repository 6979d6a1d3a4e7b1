"""Compact graph files: the dense tensors in safetensors, with the spec in string metadata.

Tensors: ``scores`` float32 ``[n_forward, n_backward]``, ``in_graph`` bool (same shape),
``nodes_in_graph`` bool ``[n_nodes]``. Metadata (safetensors allows only strings):
``format``, ``schema_version``, ``model`` (the ModelSpec as JSON) and ``metadata``
(``graph.metadata`` as JSON; optional). A position-aware graph adds the tensor
``position_scores`` float32 ``[n_spans, n_forward, n_backward]`` and the metadata
``positions`` (its span names as a JSON list), and a position-aware circuit the bool tensor
``position_in_graph`` (same shape; ``in_graph`` is its union over spans). Readers check that
``scores`` is the span sum of ``position_scores`` and ``in_graph`` the union of
``position_in_graph``; files without these entries load as position-agnostic graphs, as
before, and an older file whose position scores a later ``set_scores`` had made stale loads
without them, with a warning. Reading goes through safetensors only, which never unpickles.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from graphs.atomic_files import atomic_write
from graphs.errors import GraphFormatError
from graphs.graph import Graph
from graphs.schema import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    check_format,
    metadata_from_stored,
    metadata_to_text,
    spec_from_mapping,
    spec_to_dict,
)

_TENSORS = ("scores", "in_graph", "nodes_in_graph")


def save_safetensors(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` as safetensors (atomically: a temporary file renamed over ``path``)."""
    graph.check_positions()
    tensors = {
        "scores": graph.scores.detach().to("cpu", torch.float32).contiguous(),
        "in_graph": (graph.in_graph & graph.real_edges).contiguous(),
        "nodes_in_graph": graph.nodes_in_graph.to("cpu", torch.bool).contiguous(),
    }
    if graph.position_scores is not None:
        tensors["position_scores"] = graph.position_scores.to("cpu", torch.float32).contiguous()
    if graph.position_in_graph is not None:
        tensors["position_in_graph"] = (graph.position_in_graph & graph.real_edges).contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "schema_version": str(SCHEMA_VERSION),
        "model": json.dumps(spec_to_dict(graph.spec)),
        "metadata": metadata_to_text(graph.metadata),
    }
    if graph.positions is not None:
        metadata["positions"] = json.dumps(list(graph.positions))
    data = _sorted_header(safetensors_bytes(tensors, metadata=metadata))
    with atomic_write(path) as handle:
        handle.write(data)


def _sorted_header(data: bytes) -> bytes:
    """``data`` with its JSON header re-written with sorted keys.

    safetensors builds the header from a hash map, so its key order (and the file's bytes)
    changes from save to save; two identical runs must write identical files. The tensor
    offsets are relative to the end of the header, so the data block is kept as it is, and
    the header is padded with spaces to 8 bytes as safetensors does.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def load_safetensors(path: str | os.PathLike[str]) -> Graph:
    """Read a graph written by :func:`save_safetensors`; GraphFormatError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such graph file", str(path))
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = set(handle.keys())
            wanted = (*_TENSORS, "position_scores", "position_in_graph")
            tensors = {name: handle.get_tensor(name) for name in wanted if name in names}
    except (SafetensorError, ValueError, OSError) as err:
        raise GraphFormatError(
            f"{path} is not a valid safetensors file (truncated or corrupt?): {err}"
        ) from err
    try:
        return _graph_from_parts(metadata, tensors)
    except GraphFormatError as err:
        raise GraphFormatError(f"{path}: {err}") from err


def _graph_from_parts(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> Graph:
    graph = _graph_of_metadata(metadata)
    _check_tensors(graph, tensors)
    graph.set_scores(tensors["scores"])
    # A bool byte other than 0/1 is not a valid torch bool; normalise through uint8.
    graph.set_in_graph(
        tensors["in_graph"].view(torch.uint8) != 0,
        tensors["nodes_in_graph"].view(torch.uint8) != 0,
    )
    if ("positions" in metadata) != ("position_scores" in tensors):
        raise GraphFormatError(
            "a position-aware graph needs both the 'positions' metadata and the "
            "'position_scores' tensor; this file has only one"
        )
    if "positions" in metadata:
        _read_position_scores(graph, metadata["positions"], tensors)
    if "position_in_graph" in tensors:
        _read_position_circuit(graph, tensors["position_in_graph"])
    return graph


def _graph_of_metadata(metadata: dict[str, str]) -> Graph:
    """An empty graph of the file's model, with its ``graph.metadata``."""
    version_text = metadata.get("schema_version")
    version = (
        int(version_text) if version_text is not None and version_text.isdigit() else version_text
    )
    check_format(metadata.get("format"), version)
    if "model" not in metadata:
        raise GraphFormatError("metadata lacks 'model' (the ModelSpec as JSON)")
    try:
        model = json.loads(metadata["model"])
    except json.JSONDecodeError as err:
        raise GraphFormatError(f"metadata 'model' is not valid JSON: {err}") from err
    if not isinstance(model, dict):
        raise GraphFormatError("metadata 'model' must be a JSON object of ModelSpec fields")
    graph = Graph(spec_from_mapping(model, what="'model' field"))
    graph.metadata = metadata_from_stored(metadata.get("metadata"))
    return graph


def _check_tensors(graph: Graph, tensors: dict[str, torch.Tensor]) -> None:
    """GraphFormatError unless the three plain tensors are there, each of its dtype and shape."""
    missing = [name for name in _TENSORS if name not in tensors]
    if missing:
        raise GraphFormatError(f"lacks tensor(s) {', '.join(map(repr, missing))}")
    edge_shape = (graph.n_forward, graph.n_backward)
    expected = {
        "scores": (torch.float32, edge_shape),
        "in_graph": (torch.bool, edge_shape),
        "nodes_in_graph": (torch.bool, (graph.n_nodes,)),
    }
    for name, (dtype, shape) in expected.items():
        tensor = tensors[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            s = graph.spec
            raise GraphFormatError(
                f"tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')} "
                f"{tuple(tensor.shape)}, expected {str(dtype).removeprefix('torch.')} {shape} "
                f"for the model in the metadata (n_layers={s.n_layers}, n_heads={s.n_heads}, "
                f"n_kv_heads={s.n_kv_heads}, parallel_attn_mlp={s.parallel_attn_mlp})"
            )


def _read_position_scores(graph: Graph, text: str, tensors: dict[str, torch.Tensor]) -> None:
    """Give ``graph`` the file's position axis (span names ``text``, JSON); the stored
    ``scores`` must be their sum, or (an older file) the stale axis is dropped."""
    try:
        names = json.loads(text)
    except json.JSONDecodeError as err:
        raise GraphFormatError(f"metadata 'positions' is not valid JSON: {err}") from err
    shape = (len(names), graph.n_forward, graph.n_backward)
    ps = tensors["position_scores"]
    if not isinstance(names, list) or ps.dtype != torch.float32 or tuple(ps.shape) != shape:
        raise GraphFormatError(
            f"tensor 'position_scores' is {tuple(ps.shape)}, expected float32 {shape} for "
            "the span names in the 'positions' metadata"
        )
    in_graph, nodes = graph.in_graph.clone(), graph.nodes_in_graph.clone()
    graph.set_position_scores(names, ps)
    summed, stored = graph.scores, tensors["scores"]
    if not bool(((summed == stored) | (summed.isnan() & stored.isnan())).all()):
        if "position_in_graph" in tensors:  # written by a saver that checks the sums
            raise GraphFormatError(
                "tensor 'scores' is not the sum over spans of 'position_scores'; the file "
                "is inconsistent"
            )
        # Savers before check_positions existed could keep position scores that a later
        # set_scores had made stale; the scores are what the graph meant.
        warnings.warn(
            "this safetensors graph's 'position_scores' do not sum to its 'scores' (saved "
            "after graph.set_scores replaced them); loading it without the stale position "
            "axis",
            stacklevel=4,  # the caller of load_safetensors
        )
        graph.drop_positions()
    graph.scores = tensors["scores"].clone()  # the stored sum, bit for bit (-0.0 kept)
    graph.set_in_graph(in_graph, nodes)


def _read_position_circuit(graph: Graph, pig: torch.Tensor) -> None:
    """Give ``graph`` the file's per-span circuit; ``in_graph`` must be its union."""
    edge_shape = (graph.n_forward, graph.n_backward)
    shape = None if graph.positions is None else (len(graph.positions), *edge_shape)
    if graph.positions is None or pig.dtype != torch.bool or tuple(pig.shape) != shape:
        raise GraphFormatError(
            f"tensor 'position_in_graph' is {str(pig.dtype).removeprefix('torch.')} "
            f"{tuple(pig.shape)}, expected bool {shape} (a position-aware circuit needs the "
            "file's 'positions' and 'position_scores')"
        )
    per_span = (pig.view(torch.uint8) != 0) & graph.real_edges
    if not torch.equal(per_span.any(0), graph.in_graph):
        raise GraphFormatError(
            "tensor 'in_graph' is not the union over spans of 'position_in_graph'; the "
            "file is inconsistent (re-save the graph)"
        )
    graph.position_in_graph = per_span
