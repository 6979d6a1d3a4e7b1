"""Versioned, human-readable JSON graph files, for reading and diffing.

Schema (version 1)::

    {
      "format": "circuit-discovery-graph",
      "schema_version": 1,
      "model": {"n_layers": 12, "n_heads": 12, "n_kv_heads": 12, ...every ModelSpec field},
      "metadata": {"task": "ioi", "metric": "logit_diff", ...},  (optional: graph.metadata)
      "nodes": [
        {"name": "input", "kind": "input", "layer": -1, "head": -1, "in_graph": true},
        ...
      ],
      "edges": [
        {"name": "input->a0.h0<q>", "source": "input", "target": "a0.h0<q>", "port": "q",
         "score": 0.0123, "in_graph": false},
        ...
      ]
    }

``nodes`` lists every component node and ``edges`` every edge of the model, one per line, in
index order, so two files of the same model diff line by line. ``target`` is the port name.

A position-aware graph (:mod:`graphs.positions`) adds the top-level ``"positions"`` (its span
names, in order) and gives every edge ``"position_scores"``, one score per span in that order
(``score`` stays their sum); a position-aware circuit adds ``"in_graph_positions"`` to every
edge, the names of the spans it is kept at (``in_graph`` is true exactly when that list is not
empty)::

    "positions": ["prefix", "IO", "S1", "end"],
    ...
    {"name": "a0.h1->a2.h3<v>", ..., "score": 0.5, "in_graph": true,
     "position_scores": [0.0, 0.25, 0.25, 0.0], "in_graph_positions": ["IO"]},

The fields are optional and keep schema version 1 (the meaning of ``score`` and ``in_graph``
is unchanged): files without them load as position-agnostic graphs, and readers that do not
know them read the summed scores and the circuit's union over spans.

Scores are float32 written as the shortest decimal that reads back to the same float32
(``0.1``, not ``0.10000000149011612``). JSON has no NaN or infinity, so NaN is written as
``null`` and infinities as the strings ``"inf"`` / ``"-inf"``; all three read back exactly
(NaN payload bits are not kept). Readers take ``kind``/``layer``/``head``/``port`` as derived
and only check them when present.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from graphs.atomic_files import atomic_write
from graphs.edge_table import EdgeCollector, parse_flag, span_names
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


def _score_value(score: float) -> float | str | None:
    """A float32 score as a JSON value: a number, or null / "inf" / "-inf"."""
    if math.isnan(score):
        return None
    if math.isinf(score):
        return "inf" if score > 0 else "-inf"
    return score


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    """The JSON document as Python objects (scores are exact float64 copies of the float32s)."""
    graph.check_positions()
    layout = graph.layout
    node_flags = graph.nodes_in_graph.tolist()
    index = graph.real_edges.nonzero()
    ups, ports = index[:, 0].tolist(), index[:, 1].tolist()
    scores = graph.scores[graph.real_edges].tolist()
    flags = graph.in_graph[graph.real_edges].tolist()
    edges = [
        {
            "name": f"{layout.upstream[u].name}->{layout.ports[p].name}",
            "source": layout.upstream[u].name,
            "target": layout.ports[p].name,
            "port": layout.ports[p].port,
            "score": _score_value(score),
            "in_graph": flag,
        }
        for u, p, score, flag in zip(ups, ports, scores, flags, strict=True)
    ]
    data: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "model": spec_to_dict(graph.spec),
        "metadata": graph.metadata,
    }
    if graph.positions is not None:
        data["positions"] = list(graph.positions)
        per_span = graph.position_scores[:, graph.real_edges].T.tolist()  # [edge, span]
        for edge, row in zip(edges, per_span, strict=True):
            edge["position_scores"] = [_score_value(v) for v in row]
        if graph.position_in_graph is not None:
            kept = graph.position_in_graph[:, graph.real_edges].T.tolist()
            names = graph.positions
            for edge, row in zip(edges, kept, strict=True):
                edge["in_graph_positions"] = [n for n, k in zip(names, row, strict=True) if k]
    data.update(
        nodes=[
            {
                "name": n.name,
                "kind": n.kind,
                "layer": n.layer,
                "head": n.head,
                "in_graph": node_flags[n.index],
            }
            for n in layout.nodes
        ],
        edges=edges,
    )
    return data


def graph_from_dict(data: Any) -> Graph:
    """Rebuild a Graph from :func:`graph_to_dict`'s structure; GraphFormatError names any
    problem (missing keys, unknown/duplicate/missing edges, wrong format or version)."""
    if not isinstance(data, dict):
        raise GraphFormatError(
            f"expected a JSON object at the top level, got {type(data).__name__}"
        )
    check_format(data.get("format"), data.get("schema_version"))
    for key in ("model", "nodes", "edges"):
        if key not in data:
            raise GraphFormatError(f"lacks the top-level {key!r} key")
    if not isinstance(data["model"], dict):
        raise GraphFormatError("'model' must be an object of ModelSpec fields")
    graph = Graph(spec_from_mapping(data["model"], what="'model' field"))
    graph.metadata = metadata_from_stored(data.get("metadata"))
    _read_nodes(graph, _list(data, "nodes"))
    positions = _read_positions(data)
    entries = _list(data, "edges")
    circuit = positions is not None and any(
        isinstance(e, dict) and "in_graph_positions" in e for e in entries
    )
    collector = EdgeCollector(graph, positions, position_circuit=circuit)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise GraphFormatError(f"edge {i} is {type(entry).__name__}, expected an object")
        name = entry.get("name")
        source, target = entry.get("source"), entry.get("target")
        if ("source" not in entry or "target" not in entry) and isinstance(name, str):
            source, _, target = name.partition("->")  # hand-written records may give only a name
        label = f"edge {i} ({name if name is not None else f'{source}->{target}'!r})"
        for key in ("source", "target", "score", "in_graph"):
            if key not in entry and not (key in ("source", "target") and isinstance(name, str)):
                raise GraphFormatError(f"{label} lacks {key!r}")
        if name is not None and name != f"{source}->{target}":
            raise GraphFormatError(
                f"{label} disagrees with its source {source!r} and target {target!r}"
            )
        extra: dict[str, Any] = {}
        if positions is not None:
            if "position_scores" not in entry:
                raise GraphFormatError(
                    f"{label} lacks 'position_scores'; the file has 'positions', so every edge "
                    f"gives one score per span ({len(positions)})"
                )
            extra["position_scores"] = entry["position_scores"]
            if circuit:
                extra["position_flags"] = _span_flags(entry, positions, label)
        elif "position_scores" in entry or "in_graph_positions" in entry:
            raise GraphFormatError(
                f"{label} has per-span fields but the file has no top-level 'positions' (the "
                "span names they refer to)"
            )
        collector.add(label, source, target, entry["score"], entry["in_graph"], **extra)
    collector.finish(complete=True)
    return graph


def _read_positions(data: dict[str, Any]) -> tuple[str, ...] | None:
    if "positions" not in data:
        return None
    return span_names(data["positions"], f"'positions' is {data['positions']!r}")


def _span_flags(entry: dict[str, Any], positions: tuple[str, ...], label: str) -> list[bool]:
    """The per-span circuit flags of an edge record from its ``in_graph_positions`` names."""
    if "in_graph_positions" not in entry:
        raise GraphFormatError(
            f"{label} lacks 'in_graph_positions'; other edges have it (a position-aware "
            "circuit), so every edge lists the spans it is kept at ([] for none)"
        )
    names = entry["in_graph_positions"]
    if not isinstance(names, list) or len(set(map(str, names))) != len(names):
        raise GraphFormatError(
            f"{label} has in_graph_positions={names!r}; expected a list of distinct span names"
        )
    unknown = [n for n in names if n not in positions]
    if unknown:
        raise GraphFormatError(
            f"{label} is kept at span {unknown[0]!r}, which is not in 'positions' "
            f"({', '.join(positions)})"
        )
    return [n in names for n in positions]


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise GraphFormatError(f"{key!r} must be a list, got {type(value).__name__}")
    return value


def _read_nodes(graph: Graph, entries: list[Any]) -> None:
    layout = graph.layout
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise GraphFormatError(f"node {i} must be an object with a 'name'")
        name = entry["name"]
        node = layout.node_by_name.get(name) if isinstance(name, str) else None
        label = f"node {i} ({name!r})"
        if node is None:
            raise GraphFormatError(f"{label} is not a node of this model")
        if name in seen:
            raise GraphFormatError(f"{label} appears twice")
        seen.add(name)
        for key in ("kind", "layer", "head"):
            if key in entry and entry[key] != getattr(node, key):
                raise GraphFormatError(
                    f"{label} has {key}={entry[key]!r}; this model's {name} has {getattr(node, key)!r}"
                )
        if "in_graph" not in entry:
            raise GraphFormatError(f"{label} lacks 'in_graph'")
        graph.nodes_in_graph[node.index] = parse_flag(entry["in_graph"], label)
    if len(seen) != graph.n_nodes:
        absent = [n.name for n in layout.nodes if n.name not in seen]
        raise GraphFormatError(
            f"'nodes' lacks {len(absent)} of the model's {graph.n_nodes} nodes "
            f"(first: {', '.join(map(repr, absent[:3]))})"
        )


def _number_text(score: float) -> str:
    """Shortest decimal that reads back (via float64, as json.loads does) to this float32.

    numpy prints the shortest float32-unique digits; reading them as float64 first and then
    rounding to float32 could in principle round twice the wrong way, so each text is checked
    and the exact float64 repr used in that case.
    """
    text = str(np.float32(score))
    return text if np.float32(float(text)) == np.float32(score) else repr(score)


def _value_text(value: float | str | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)
    return _number_text(value)


def _span_text(edge: dict[str, Any]) -> str:
    text = ""
    if "position_scores" in edge:
        values = ", ".join(_value_text(v) for v in edge["position_scores"])
        text += f', "position_scores": [{values}]'
    if "in_graph_positions" in edge:
        text += f', "in_graph_positions": {json.dumps(edge["in_graph_positions"])}'
    return text


def dumps(graph: Graph) -> str:
    """The JSON text: header fields indented, then one node and one edge per line."""
    data = graph_to_dict(graph)
    flag = {True: "true", False: "false"}
    nodes = ",\n    ".join(json.dumps(node) for node in data["nodes"])
    edges = ",\n    ".join(
        f'{{"name": {json.dumps(e["name"])}, "source": {json.dumps(e["source"])}, '
        f'"target": {json.dumps(e["target"])}, "port": {json.dumps(e["port"])}, '
        f'"score": {_value_text(e["score"])}, "in_graph": {flag[e["in_graph"]]}'
        + _span_text(e)
        + "}"
        for e in data["edges"]
    )
    positions = f'  "positions": {json.dumps(data["positions"])},\n' if "positions" in data else ""
    return (
        "{\n"
        f'  "format": {json.dumps(data["format"])},\n'
        f'  "schema_version": {data["schema_version"]},\n'
        f'  "model": {json.dumps(data["model"])},\n'
        f'  "metadata": {metadata_to_text(data["metadata"])},\n'
        f"{positions}"
        f'  "nodes": [\n    {nodes}\n  ],\n'
        f'  "edges": [\n    {edges}\n  ]\n'
        "}\n"
    )


def save_json(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` as JSON (atomically: a temporary file renamed over ``path``)."""
    text = dumps(graph)
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


def load_json(path: str | os.PathLike[str]) -> Graph:
    """Read a graph written by :func:`save_json`; GraphFormatError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such graph file", str(path))
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise GraphFormatError(
            f"{path} is not valid JSON (truncated or corrupt?): {err.msg} at line {err.lineno} "
            f"column {err.colno} (char {err.pos})"
        ) from err
    except UnicodeDecodeError as err:
        raise GraphFormatError(f"{path} is not UTF-8 text, so not a JSON graph: {err}") from err
    try:
        return graph_from_dict(data)
    except GraphFormatError as err:
        raise GraphFormatError(f"{path}: {err}") from err
