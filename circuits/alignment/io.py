"""Saving and loading a trained intervention compactly.

One ``.safetensors`` file holds the ``k × d`` basis of the learned subspace (and, for Boundless
DAS, the two boundaries) — not the ``d × d`` rotation or its parametrisation — and, in the
file's string metadata, a JSON document with the site, the causal variable, the intervention
kind and the model's shape. Loading gives a :class:`~circuits.alignment.interventions.Subspace`,
which intervenes exactly as the trained intervention does in eval mode (hard mask):
``x_b + Bᵀ B (x_s − x_b)``.

:func:`load_intervention` refuses a model of another shape (layers, heads, ``d_model``, or a
different hidden size at the site).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from circuits.alignment.interventions import Intervention, Subspace
from circuits.alignment.sites import AlignmentError, Site, validate_site

__all__ = ["FORMAT", "load_intervention", "model_shape", "read_metadata", "save_intervention"]

FORMAT = "circuit-discovery/alignment-intervention/1"


def model_shape(model: Any) -> dict[str, Any]:
    """The structural facts an intervention depends on."""
    from graphs.spec import ModelSpec

    spec = ModelSpec.from_model(model)
    return {
        "n_layers": spec.n_layers,
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "d_model": spec.d_model,
        "architecture": spec.architecture,
    }


def save_intervention(
    path: str | os.PathLike[str],
    intervention: Intervention,
    site: Site,
    variable: str | tuple[str, ...],
    model: Any,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``intervention``'s basis (and boundaries) with its site, variable and the model's
    shape to ``path`` (``.safetensors`` appended if missing); returns the path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    d = validate_site(model, site)
    basis = intervention.basis().detach().float().cpu().contiguous()
    if basis.shape[1] != d:
        raise AlignmentError(f"basis is {basis.shape[1]} wide but {site.label} has hidden size {d}")
    tensors = {"basis": basis}
    bounds = intervention.boundaries()
    if bounds is not None:
        tensors["boundaries"] = torch.tensor(bounds, dtype=torch.float32)
    meta = {
        "format": FORMAT,
        "kind": intervention.kind,
        "site": site.to_dict(),
        "variable": variable if isinstance(variable, str) else list(variable),
        "k": int(basis.shape[0]),
        "hidden_size": d,
        "model": model_shape(model),
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"alignment": json.dumps(meta, sort_keys=True)})
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a saved intervention."""
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("alignment")
    if raw is None:
        raise AlignmentError(f"{path} is not a saved alignment intervention (no metadata)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise AlignmentError(f"{path}: unknown format {meta.get('format')!r}; expected {FORMAT}")
    return meta


def load_intervention(
    path: str | os.PathLike[str], model: Any = None
) -> tuple[Subspace, Site, str | tuple[str, ...], dict[str, Any]]:
    """``(intervention, site, variable, metadata)`` from ``path``.

    With ``model``, refuses (:class:`AlignmentError`) when its shape differs from the one the
    intervention was trained on, or the site's hidden size differs.
    """
    meta = read_metadata(path)
    tensors = load_file(str(path))
    site = Site.from_dict(meta["site"])
    if model is not None:
        have = model_shape(model)
        want = meta["model"]
        diffs = [
            f"{k}: saved for {want[k]!r}, model has {have[k]!r}"
            for k in ("n_layers", "n_heads", "n_kv_heads", "d_model")
            if want.get(k) != have.get(k)
        ]
        if not diffs:
            d = validate_site(model, site)
            if d != meta["hidden_size"]:
                diffs.append(f"hidden size at {site.label}: saved {meta['hidden_size']}, model {d}")
        if diffs:
            raise AlignmentError(
                f"cannot load {path} on this model, it was trained on another shape "
                f"({'; '.join(diffs)})"
            )
    bounds = tensors.get("boundaries")
    intervention = Subspace(
        tensors["basis"], tuple(float(b) for b in bounds) if bounds is not None else None
    )
    variable = meta["variable"]
    return intervention, site, tuple(variable) if isinstance(variable, list) else variable, meta
