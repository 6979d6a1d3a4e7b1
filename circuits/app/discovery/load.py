"""The job's first step: load the model and its tokenizer from the zoo, a local folder or the
Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.app.discovery.settings import DTYPES

__all__ = ["load_for_task"]


def load_for_task(
    model: str,
    device: str | None = None,
    *,
    dtype: str | None = None,
    device_map: str | None = None,
) -> tuple[Any, Any, str]:
    """``(bridge, tokenizer, source)`` for a zoo name, a local folder or a Hub name;
    ``dtype`` is a :data:`DTYPES` name, ``device_map`` Hugging Face's (see ``load_model``)."""
    from circuits.models import ModelLoadError, load_model, zoo

    placement = {
        "device": device,
        "dtype": DTYPES[dtype] if dtype else None,
        "device_map": device_map,
    }
    if model in zoo.available():
        bridge, tokenizer = zoo.load(model, **placement)
        return bridge, tokenizer, "zoo"
    is_path = Path(model).expanduser().exists()
    try:
        bridge = load_model(model, **placement)
    except ModelLoadError as err:
        if is_path:
            raise
        raise ModelLoadError(
            f"{model!r} is not a bundled model (available: {', '.join(zoo.available()) or 'none'}) "
            f"nor a local folder, and loading it from the Hugging Face Hub failed: {err}"
        ) from err
    tokenizer = getattr(bridge, "tokenizer", None)
    if tokenizer is None:
        raise ModelLoadError(
            f"model {model!r} has no tokenizer; task prompts are text, so save the tokenizer "
            "in the model folder (tokenizer.save_pretrained(folder))"
        )
    return bridge, tokenizer, "path" if is_path else "hub"
