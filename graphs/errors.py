"""Errors raised by graph construction, lookup and file input/output, and the root of every
error this project raises.

:class:`CircuitDiscoveryError` lives here because ``graphs`` is the package the other two may
import; ``attribution`` and ``circuits`` re-export it. Each project error also keeps its
built-in base (ValueError, KeyError, ...), so existing ``except ValueError`` code still works.
"""


class CircuitDiscoveryError(Exception):
    """The root of every error circuit-discovery raises on purpose (bad input, a model it
    cannot use, a file it cannot read): ``except CircuitDiscoveryError`` catches them all."""


class ArgumentTypeError(CircuitDiscoveryError, TypeError):
    """An argument of the wrong type (a graph, a model or a setup expected, something else
    given); shared by all three packages because the mistake is the same everywhere."""


class GraphError(CircuitDiscoveryError):
    """Base class for graph errors."""


class GraphArgumentError(GraphError, ValueError):
    """A value a graph method cannot take (a negative count, ...)."""


class ModelSpecError(GraphError, ValueError):
    """A model description (:class:`graphs.spec.ModelSpec`) with impossible sizes."""


class MissingSpecFieldError(GraphError, KeyError):
    """Model metadata without a field a :class:`graphs.spec.ModelSpec` cannot do without."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""


class GraphFormatError(GraphError, ValueError):
    """A graph file is malformed, truncated, of an unknown schema version, or inconsistent."""


class GraphMismatchError(GraphError, ValueError):
    """A graph is used with a model (or another graph) of a different shape."""


class InconsistentGraphError(GraphError, ValueError):
    """A graph's tensors disagree with each other (``scores`` not the span sum of
    ``position_scores``, ``in_graph`` not the union of ``position_in_graph``), usually after a
    direct write into one of them."""


class UnknownEdgeError(GraphError, KeyError):
    """A node, port or edge name that the graph does not have."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""
