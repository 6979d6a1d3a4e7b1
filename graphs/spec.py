"""The model facts a graph's structure depends on, and how to read them off a model."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch

from graphs.errors import (
    ArgumentTypeError,
    GraphMismatchError,
    MissingSpecFieldError,
    ModelSpecError,
)

# Fields that decide the graph's shape; a graph may only be used with a model that agrees on all.
STRUCTURAL_FIELDS = ("n_layers", "n_heads", "n_kv_heads", "parallel_attn_mlp")
# The advice ending a mismatch message for Python callers.
PYTHON_FIX = "Build a new graph with Graph.from_model(model)."


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a transformer as the residual-stream decomposition sees it.

    ``n_kv_heads`` equals ``n_heads`` for ordinary multi-head attention and is smaller for
    grouped-query attention. ``parallel_attn_mlp`` is true when a block's MLP reads the block
    input rather than the attention output (GPT-NeoX/Pythia ``use_parallel_residual``, GPT-J).
    The remaining fields are recorded for reports and mismatch messages only;
    ``weights_fingerprint`` (see :func:`weights_fingerprint`) tells two models of one shape
    apart and is not compared by ``==``.
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    parallel_attn_mlp: bool = False
    d_model: int = 0
    d_head: int = 0
    d_vocab: int = 0
    architecture: str = ""
    model_name: str = ""
    weights_fingerprint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        for name in ("n_layers", "n_heads", "n_kv_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelSpecError(f"ModelSpec.{name} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ModelSpecError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}): "
                "each key/value head serves an equal group of query heads"
            )

    @property
    def grouped_query(self) -> bool:
        """True when key/value heads are shared by several query heads."""
        return self.n_kv_heads != self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [name for name in ("n_layers", "n_heads") if name not in data]
        if missing:
            raise MissingSpecFieldError(f"model metadata lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_model(cls, model: Any) -> ModelSpec:
        """Read the spec off a TransformerBridge (or anything with a TransformerLens ``cfg``)."""
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise ArgumentTypeError(
                f"expected a TransformerBridge with a .cfg, got {type(model).__name__}; "
                "load models with circuits.load_model(...)"
            )
        n_heads = int(cfg.n_heads)
        n_kv = getattr(cfg, "n_key_value_heads", None)
        return cls(
            n_layers=int(cfg.n_layers),
            n_heads=n_heads,
            n_kv_heads=int(n_kv) if n_kv else n_heads,
            parallel_attn_mlp=bool(getattr(cfg, "parallel_attn_mlp", False)),
            d_model=int(getattr(cfg, "d_model", 0) or 0),
            d_head=int(getattr(cfg, "d_head", 0) or 0),
            d_vocab=int(getattr(cfg, "d_vocab", 0) or 0),
            architecture=str(getattr(cfg, "architecture", "") or ""),
            model_name=str(getattr(cfg, "model_name", "") or ""),
            weights_fingerprint=weights_fingerprint(model),
        )

    def check_matches(
        self, other: ModelSpec, *, what: str = "graph", fix: str = PYTHON_FIX
    ) -> None:
        """Raise GraphMismatchError when ``other`` differs in any structural field; ``fix``
        ends the message (the command line gives its own advice)."""
        diffs = [
            f"{name}: {what} has {getattr(self, name)!r}, model has {getattr(other, name)!r}"
            for name in STRUCTURAL_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]
        if self.d_model and other.d_model and self.d_model != other.d_model:
            diffs.append(f"d_model: {what} has {self.d_model}, model has {other.d_model}")
        if diffs:
            built_for = self.model_name or self.architecture or "another model"
            raise GraphMismatchError(
                f"this {what} was built for {built_for} and does not fit the model "
                f"({'; '.join(diffs)}). {fix}"
            )


def weights_fingerprint(model: Any, *, n_tensors: int = 8, n_values: int = 4096) -> str:
    """A 16-hex-digit hash of the first ``n_values`` values of ``n_tensors`` parameters spread
    over the model (``""`` without readable parameters).

    The same weights give the same fingerprint on every load, on any device and in float32
    or bfloat16 (values are hashed rounded to bfloat16); other weights of the same shape, such
    as a randomly initialised model, give another.
    """
    params = [p for p in model.parameters() if p.device.type != "meta"]
    if not params:
        return ""
    picks = sorted({round(i * (len(params) - 1) / max(n_tensors - 1, 1)) for i in range(n_tensors)})
    digest = hashlib.sha256()
    for i in picks:
        p = params[i].detach()
        values = p.reshape(-1)[:n_values].to("cpu", torch.bfloat16).view(torch.int16)
        digest.update(repr(tuple(p.shape)).encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:16]
