"""Computational graphs over TransformerLens models: nodes, ports, edges, scores."""

from graphs.lazy import lazy_exports

# Imported on first use (graphs/lazy.py says why); name -> the module that defines it.
_WHERE = {
    "Circuit": "graphs.circuit",
    "CircuitDiscoveryError": "graphs.errors",
    "GraphError": "graphs.errors",
    "GraphFormatError": "graphs.errors",
    "GraphMismatchError": "graphs.errors",
    "InconsistentGraphError": "graphs.errors",
    "UnknownEdgeError": "graphs.errors",
    "Edge": "graphs.graph",
    "EdgeView": "graphs.graph",
    "Graph": "graphs.graph",
    "load_graphml": "graphs.graphml_io",
    "save_graphml": "graphs.graphml_io",
    "load_json": "graphs.json_io",
    "save_json": "graphs.json_io",
    "INPUT": "graphs.layout",
    "LOGITS": "graphs.layout",
    "Layout": "graphs.layout",
    "Node": "graphs.layout",
    "Port": "graphs.layout",
    "from_networkx": "graphs.networkx_io",
    "to_networkx": "graphs.networkx_io",
    "ModelSpec": "graphs.spec",
    "load_safetensors": "graphs.tensor_io",
    "save_safetensors": "graphs.tensor_io",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

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
    "InconsistentGraphError",
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
