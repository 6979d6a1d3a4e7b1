"""Training recipes of the bundled models: architecture, data mixture and optimiser settings.

A recipe plus its seed determines the trained weights (training runs single-threaded on the
CPU, so float reductions happen in one order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from circuits.models.zoo import ZooError
from graphs.errors import CircuitDiscoveryError

__all__ = ["RECIPES", "Recipe", "RecipeError", "UnknownRecipeError", "get_recipe"]


class RecipeError(CircuitDiscoveryError, ValueError):
    """A training recipe the trainer cannot follow (an unsupported architecture, a training
    line longer than its ``max_positions``)."""


class UnknownRecipeError(ZooError, KeyError):
    """A recipe name that :data:`RECIPES` does not have; the message lists them."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""


#: Share of training lines from each task ("filler" is the grammar text).
DEFAULT_MIXTURE: dict[str, float] = {
    "ioi": 0.24,
    "greater-than": 0.14,
    "price-tagging": 0.26,
    "entity-attributes": 0.14,
    "copying": 0.14,
    "filler": 0.08,
}


@dataclass(frozen=True)
class Recipe:
    """How one bundled model is built and trained."""

    name: str
    architecture: str  # a Hugging Face class name
    config: dict[str, Any]  # keyword arguments of its config class (vocab size is added)
    steps: int = 6000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    answer_weight: float = 4.0  # extra loss weight on a task line's answer token
    seed: int = 0
    max_positions: int = 64
    mixture: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIXTURE))
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    "toy-gpt2": Recipe(
        name="toy-gpt2",
        architecture="GPT2LMHeadModel",
        config={"n_layer": 4, "n_head": 4, "n_embd": 128, "n_inner": 512},
        description="GPT-2 architecture, 4 layers, 4 heads, width 128",
    ),
    "toy-llama": Recipe(
        name="toy-llama",
        architecture="LlamaForCausalLM",
        config={
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_size": 128,
            "intermediate_size": 352,
            "tie_word_embeddings": True,
        },
        steps=4000,
        description="Llama architecture with grouped-query attention (4 query heads, 2 key/value heads), 4 layers, width 128",
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; available: {', '.join(RECIPES)}")
    return RECIPES[name]
