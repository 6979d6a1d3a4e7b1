"""The model folders shipped inside the package: where they are and their names.

Apart from :mod:`circuits.models.zoo` because :mod:`circuits.groundtruth.registry` needs the
shipped names (a compiled model may not take one) while the zoo lists the compiled models: both
read this module, so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MODELS_DIR", "shipped_names"]

#: Where the shipped model folders live.
MODELS_DIR: Path = Path(__file__).resolve().parent / "models"


def shipped_names() -> list[str]:
    """Names of the model folders shipped with this installation, sorted."""
    return sorted(p.name for p in MODELS_DIR.glob("*") if (p / "config.json").is_file())
