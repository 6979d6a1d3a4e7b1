"""Supernodes: named groups of nodes that a user made in the explorer, saved as a small JSON
file (``RUN/supernodes.json``) that ``circuits report`` draws as labelled boxes in the circuit
figure and the explorer shows again when it is rebuilt.

Schema (``"format": "circuit-discovery-supernodes"``, ``"schema_version": 1``)::

    {
      "format": "circuit-discovery-supernodes",
      "schema_version": 1,
      "model": "toy-gpt2",                       # the run's model, informative
      "supernodes": [                            # in the order they were made
        {"name": "name movers",                  # non-empty, unique
         "nodes": ["a3.h0", "a3.h2"],            # node names of the graph, at least one,
                                                 # each in at most one supernode
         "annotation": "copy the IO name"}       # free text, may be ""
      ],
      "pinned": {"a3.h0": [x, y]}                # optional: nodes the user pinned, at these
                                                 # figure coordinates (layer rows, see
                                                 # circuits.app.figures.CircuitDrawing)
    }
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphs.errors import CircuitDiscoveryError

__all__ = [
    "SUPERNODES_FILE",
    "SUPERNODES_FORMAT",
    "Supernode",
    "SupernodeError",
    "Supernodes",
    "load_supernodes",
]

SUPERNODES_FILE = "supernodes.json"
SUPERNODES_FORMAT = "circuit-discovery-supernodes"
SUPERNODES_SCHEMA_VERSION = 1


class SupernodeError(CircuitDiscoveryError, ValueError):
    """A supernodes file that does not follow the schema; the message names the problem."""


@dataclass
class Supernode:
    name: str
    nodes: list[str]
    annotation: str = ""


@dataclass
class Supernodes:
    supernodes: list[Supernode]
    pinned: dict[str, tuple[float, float]] = field(default_factory=dict)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUPERNODES_FORMAT,
            "schema_version": SUPERNODES_SCHEMA_VERSION,
            "model": self.model,
            "supernodes": [
                {"name": s.name, "nodes": list(s.nodes), "annotation": s.annotation}
                for s in self.supernodes
            ],
            "pinned": {k: list(v) for k, v in self.pinned.items()},
        }

    @classmethod
    def from_dict(
        cls, data: Any, node_names: set[str] | None = None, source: str = "supernodes"
    ) -> Supernodes:
        """Check ``data`` against the schema (and, with ``node_names``, that every node
        exists); SupernodeError names the first problem."""
        fix = "download the file again from the explorer's Export button"

        def bad(why: str) -> SupernodeError:
            return SupernodeError(f"{source}: {why}; {fix}")

        if not isinstance(data, dict) or data.get("format") != SUPERNODES_FORMAT:
            raise bad(f'not a supernodes file (expected "format": "{SUPERNODES_FORMAT}")')
        version = data.get("schema_version")
        if version != SUPERNODES_SCHEMA_VERSION:
            raise bad(f"schema_version {version!r} is not {SUPERNODES_SCHEMA_VERSION}")
        groups = data.get("supernodes")
        if not isinstance(groups, list):
            raise bad('"supernodes" must be a list')
        seen_names: set[str] = set()
        owner: dict[str, str] = {}
        out = []
        for i, g in enumerate(groups):
            if not isinstance(g, dict):
                raise bad(f"supernode {i} is not an object")
            name, nodes, note = g.get("name"), g.get("nodes"), g.get("annotation", "")
            if not isinstance(name, str) or not name.strip():
                raise bad(f"supernode {i} has no name")
            if name in seen_names:
                raise bad(f"two supernodes are named {name!r}")
            seen_names.add(name)
            if not isinstance(note, str):
                raise bad(f"supernode {name!r}: annotation must be text")
            if (
                not isinstance(nodes, list)
                or not nodes
                or not all(isinstance(n, str) for n in nodes)
            ):
                raise bad(f"supernode {name!r}: nodes must be a non-empty list of node names")
            for n in nodes:
                if node_names is not None and n not in node_names:
                    raise bad(f"supernode {name!r}: no node named {n!r} in this graph")
                if n in owner:
                    raise bad(f"node {n!r} is in two supernodes ({owner[n]!r} and {name!r})")
                owner[n] = name
            out.append(Supernode(name, list(nodes), note))
        pinned_raw = data.get("pinned", {})
        if not isinstance(pinned_raw, dict):
            raise bad('"pinned" must be an object of node name to [x, y]')
        pinned = {}
        for n, xy in pinned_raw.items():
            ok = (
                isinstance(xy, list)
                and len(xy) == 2
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in xy)
            )
            if not ok:
                raise bad(f"pinned node {n!r}: position must be [x, y] numbers")
            if node_names is not None and n not in node_names:
                raise bad(f"pinned node {n!r} is not a node of this graph")
            pinned[n] = (float(xy[0]), float(xy[1]))
        model = data.get("model", "")
        return cls(out, pinned, model if isinstance(model, str) else "")


def load_supernodes(
    run_dir: str | os.PathLike[str], node_names: set[str] | None = None
) -> Supernodes | None:
    """``RUN/supernodes.json`` checked against the schema, or None when there is none."""
    path = Path(run_dir) / SUPERNODES_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SupernodeError(f"{path}: not readable JSON ({exc})") from None
    return Supernodes.from_dict(data, node_names, str(path))
