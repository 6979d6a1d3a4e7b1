"""Errors that several app modules raise, kept below all of them so that none imports another
module only for its exception (the discovery job's settings check and the output-folder
checks both raise ``RunError``)."""

from __future__ import annotations

from graphs.errors import CircuitDiscoveryError

__all__ = ["RunError"]


class RunError(CircuitDiscoveryError, ValueError):
    """Bad settings or output folder, found before any model work; the message says the fix."""
