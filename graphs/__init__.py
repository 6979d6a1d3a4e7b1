"""Computational graphs over TransformerLens models: nodes, ports, edges, scores."""

from graphs.circuit import Circuit
from graphs.errors import (
    CircuitDiscoveryError,
    GraphError,
    GraphFormatError,
    GraphMismatchError,
    UnknownEdgeError,
)
from graphs.graph import Edge, EdgeView, Graph
from graphs.graphml_io import load_graphml, save_graphml
from graphs.json_io import load_json, save_json
from graphs.layout import INPUT, LOGITS, Layout, Node, Port
from graphs.networkx_io import from_networkx, to_networkx
from graphs.spec import ModelSpec
from graphs.tensor_io import load_safetensors, save_safetensors

__all__ = [
    "INPUT",
    "LOGITS",
    "Circuit",
    "CircuitDiscoveryError",
    "Edge",
    "EdgeView",
    "Graph",
    "GraphError",
    "GraphFormatError",
    "GraphMismatchError",
    "Layout",
    "ModelSpec",
    "Node",
    "Port",
    "UnknownEdgeError",
    "from_networkx",
    "load_graphml",
    "load_json",
    "load_safetensors",
    "save_graphml",
    "save_json",
    "save_safetensors",
    "to_networkx",
]
