"""Errors raised by graph construction, lookup and file input/output."""


class GraphError(Exception):
    """Base class for graph errors."""


class GraphFormatError(GraphError, ValueError):
    """A graph file is malformed, truncated, of an unknown schema version, or inconsistent."""


class GraphMismatchError(GraphError, ValueError):
    """A graph is used with a model (or another graph) of a different shape."""


class UnknownEdgeError(GraphError, KeyError):
    """A node, port or edge name that the graph does not have."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""
