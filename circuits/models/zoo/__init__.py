"""Bundled models, trained by this repository on the synthetic tasks and shipped with it.

``circuits.models.zoo.load("toy-gpt2")`` returns a ``TransformerBridge`` (edge-level hooks on, as
:func:`circuits.load_model` builds it) and its word-level tokenizer, with no network access.
Each model folder holds ``config.json``, ``model.safetensors``, the tokenizer files,
``training.json`` and a model card ``README.md``. ``python -m circuits.app.train_model`` rebuilds
them (see :mod:`circuits.app.train_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.models.zoo.shipped import MODELS_DIR, shipped_names
from graphs.errors import CircuitDiscoveryError

if TYPE_CHECKING:  # annotations only: reading DEFAULT_MODEL imports no torch
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "ZooError",
    "available",
    "load",
    "load_tokenizer",
    "model_dir",
]

#: The model ``circuits discover`` uses when none is named.
DEFAULT_MODEL = "toy-gpt2"


class ZooError(CircuitDiscoveryError, LookupError):
    """An unknown or incomplete bundled model; the message lists the available ones."""


def available(*, compiled: bool = True) -> list[str]:
    """Names of the bundled models shipped with this installation, then (``compiled``) the
    ground-truth models built by code (:mod:`circuits.groundtruth.registry`)."""
    from circuits.groundtruth import registry

    return shipped_names() + (registry.names() if compiled else [])


def model_dir(name: str) -> Path:
    """The folder of shipped model ``name``; :class:`ZooError` if there is none (also for a
    compiled model, which is built in memory: ``truth.save(folder)`` writes one)."""
    shipped = shipped_names()  # the folder is listed once
    if name not in shipped:
        from circuits.groundtruth import registry

        compiled = registry.names()
        if name in compiled:
            raise ZooError(
                f"{name!r} is compiled in memory and has no folder; load it with zoo.load({name!r}) "
                f"or write one with circuits.groundtruth.registry.build({name!r}).save(folder)"
            )
        listed = (
            ", ".join(shipped + compiled)
            or "none (the package was installed without its model files)"
        )
        raise ZooError(f"no bundled model named {name!r}; available: {listed}")
    folder = MODELS_DIR / name
    missing = [f for f in ("model.safetensors", "tokenizer.json") if not (folder / f).is_file()]
    if missing:
        raise ZooError(
            f"bundled model {name!r} is incomplete ({', '.join(missing)} missing in {folder}); "
            f"reinstall the package or rebuild it with `python -m circuits.app.train_model --recipe {name} --overwrite`"
        )
    return folder


def load_tokenizer(name: str) -> Any:
    """The tokenizer of any model :func:`available` lists, without loading its weights (a
    compiled model is built, which takes well under a second)."""
    from transformers import AutoTokenizer

    from circuits.groundtruth import registry

    if name in registry.names():
        return registry.build(name).tokenizer
    return AutoTokenizer.from_pretrained(model_dir(name), local_files_only=True)


def load(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    device_map: str | dict | None = None,
) -> tuple[Any, Any]:
    """``(bridge, tokenizer)`` for bundled model ``name``, loaded from the package, offline;
    ``device``, ``dtype`` and ``device_map`` as in :func:`circuits.models.load_model`."""
    from transformers import AutoTokenizer

    from circuits.groundtruth import registry
    from circuits.models import load_model

    if name in registry.names():  # compiled by code, not shipped as files
        return registry.load(name, device=device, dtype=dtype, device_map=device_map)
    folder = model_dir(name)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bridge = load_model(
        folder, tokenizer=tokenizer, device=device, dtype=dtype, device_map=device_map
    )
    return bridge, tokenizer
