"""Lazy package exports: a package's names are imported on first use, not with the package.

``import circuits.app.cli`` must not import torch: the command line can then catch Ctrl-C
during its (seconds long) start-up, which it cannot do while Python imports the package
that holds it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``where`` is read from the
    module ``where[name]`` on first access and then cached on the package. A name that is a
    submodule of ``where[name]`` (``"zoo": "circuits.models"``) is imported as one, since
    a package's submodules are not its attributes until something imports them."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:  # AttributeError lets `from package import submodule` go on
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        source = importlib.import_module(module)
        try:
            value = getattr(source, name)
        except AttributeError:
            value = importlib.import_module(f"{module}.{name}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
