"""What every graph file carries, whatever its format: the format name, the schema version and the
model spec; and the checks that read them back.

GraphML graph attributes, the JSON header and the safetensors metadata all hold the same three
things, so a file can be identified and its graph rebuilt (``Layout(spec)``) before any edge is
read. Bump :data:`SCHEMA_VERSION` whenever the meaning of a stored field changes; readers refuse
versions they do not know rather than guess.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from graphs.errors import GraphFormatError
from graphs.spec import STRUCTURAL_FIELDS, ModelSpec

FORMAT_NAME = "circuit-discovery-graph"
SCHEMA_VERSION = 1

_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSpec))
_BOOL_FIELDS = {"parallel_attn_mlp"}
_STR_FIELDS = {"architecture", "model_name", "weights_fingerprint"}


def check_format(fmt: Any, version: Any) -> None:
    """Raise GraphFormatError unless ``(fmt, version)`` names a format this code reads."""
    if fmt is None:
        raise GraphFormatError(
            f"no 'format' marker: circuit-discovery graph files say format={FORMAT_NAME!r}; "
            "this file was not written by save_graph (or lost its header)"
        )
    if fmt != FORMAT_NAME:
        raise GraphFormatError(
            f"format is {fmt!r}, expected {FORMAT_NAME!r}: not a circuit-discovery graph"
        )
    if version is None:
        raise GraphFormatError(
            f"no 'schema_version' (this version of circuit-discovery reads {SCHEMA_VERSION})"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version != SCHEMA_VERSION:
        newer = (
            isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        )
        hint = (
            "the file was written by a newer circuit-discovery; upgrade to read it"
            if newer
            else "re-save the graph with this version of circuit-discovery"
        )
        raise GraphFormatError(
            f"unsupported schema version {version!r} (this version of circuit-discovery reads "
            f"{SCHEMA_VERSION}); {hint}"
        )


def metadata_to_text(metadata: Mapping[str, Any]) -> str:
    """``graph.metadata`` as JSON text with sorted keys (GraphML and safetensors store strings)."""
    try:
        return json.dumps(dict(metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise GraphFormatError(
            f"graph.metadata must hold JSON values (strings, finite numbers, booleans, None, "
            f"lists, dicts): {err}"
        ) from None


def metadata_from_stored(value: Any) -> dict[str, Any]:
    """The stored metadata (a dict, or its JSON text) as a dict; ``{}`` for files without it."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise GraphFormatError(f"'metadata' is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise GraphFormatError(
            f"'metadata' must be a JSON object (task, metric, ...), got {type(value).__name__}"
        )
    return value


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """Every ModelSpec field as a scalar (so GraphML can hold each as a graph attribute)."""
    return spec.to_dict()


def spec_from_mapping(data: Mapping[str, Any], *, what: str) -> ModelSpec:
    """Rebuild a ModelSpec from stored fields; ``what`` names the container in messages
    (``"graph attribute"``, ``"'model' field"``).

    The structural fields are required, not defaulted: a grouped-query graph read without its
    ``n_kv_heads`` would silently become a different graph. Unknown keys are ignored.
    """
    missing = [name for name in STRUCTURAL_FIELDS if name not in data]
    if missing:
        raise GraphFormatError(
            f"missing {what} {', '.join(map(repr, missing))}: circuit-discovery graph files carry "
            f"every model field ({', '.join(_SPEC_FIELDS)}); add it or re-save the graph"
        )
    values: dict[str, Any] = {}
    for name in _SPEC_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name in _BOOL_FIELDS:
            ok, expected = isinstance(value, bool), "true or false"
        elif name in _STR_FIELDS:
            ok, expected = isinstance(value, str), "a string"
        else:
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        if not ok:
            raise GraphFormatError(f"{what} {name!r} is {value!r}; expected {expected}")
        values[name] = value
    try:
        return ModelSpec(**values)
    except ValueError as err:
        raise GraphFormatError(f"invalid model in {what}s: {err}") from err
