"""The error every Patchscope module raises, below all of them so that none imports another
only for it."""

from __future__ import annotations

from graphs.errors import CircuitDiscoveryError

__all__ = ["PatchscopeError"]


class PatchscopeError(CircuitDiscoveryError, ValueError):
    """Bad Patchscope input (layer or position out of range, hidden sizes that do not match,
    an unknown node); raised before any forward pass, the message names what is valid."""
