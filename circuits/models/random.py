"""Small randomly initialised Hugging Face causal LMs, built from configs (no download).

They exist for tests and demos: every architecture in
:data:`circuits.models.SUPPORTED_ARCHITECTURES` can be built in a fraction of a second, with
grouped-query attention exercised on Llama, Qwen2 and Gemma-2 by default.
"""

from __future__ import annotations

import torch
import transformers

from circuits.models.loading import SUPPORTED_ARCHITECTURES
from graphs.errors import CircuitDiscoveryError

__all__ = ["SUPPORTED_ARCHITECTURES", "RandomModelError", "random_hf_model"]


class RandomModelError(CircuitDiscoveryError, ValueError):
    """A random model asked for with an unknown architecture or inconsistent sizes."""


# Architectures whose attention has one key/value head per query head.
_NO_GQA = ("GPT2LMHeadModel", "GPTNeoXForCausalLM")


def _build_config(
    architecture: str,
    *,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    d_model: int,
    d_mlp: int,
    vocab_size: int,
    max_positions: int,
    parallel: bool,
) -> transformers.PretrainedConfig:
    head_dim = d_model // n_heads
    if architecture == "GPT2LMHeadModel":
        return transformers.GPT2Config(
            vocab_size=vocab_size,
            n_positions=max_positions,
            n_embd=d_model,
            n_layer=n_layers,
            n_head=n_heads,
            n_inner=d_mlp,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
    if architecture == "GPTNeoXForCausalLM":
        return transformers.GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            intermediate_size=d_mlp,
            max_position_embeddings=max_positions,
            use_parallel_residual=parallel,
            # Pythia uses 25 % rotary dimensions; on tiny heads that is 2 dims, so use half.
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
            },
            bos_token_id=0,
            eos_token_id=0,
        )
    common = dict(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
    )
    if architecture == "LlamaForCausalLM":
        return transformers.LlamaConfig(**common, head_dim=head_dim)
    if architecture == "Qwen2ForCausalLM":
        return transformers.Qwen2Config(**common)
    if architecture == "Gemma2ForCausalLM":
        return transformers.Gemma2Config(
            **common,
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            # Keep the local-attention window beyond any sequence the model can see.
            sliding_window=2 * max_positions,
        )
    raise AssertionError(architecture)  # pragma: no cover - guarded by the caller


def random_hf_model(
    architecture: str,
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int | None = None,
    d_model: int = 32,
    d_mlp: int = 64,
    vocab_size: int = 128,
    max_positions: int = 64,
    parallel: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> transformers.PreTrainedModel:
    """Build a tiny randomly initialised causal LM of ``architecture``, in eval mode.

    Args:
        architecture: One of :data:`SUPPORTED_ARCHITECTURES` (a Hugging Face class name).
        n_kv_heads: Key/value heads. Default ``n_heads // 2`` on Llama, Qwen2 and Gemma-2 (so
            grouped-query attention is exercised), ``n_heads`` on GPT-2 and GPT-NeoX, which
            have no GQA (any other value is rejected there).
        parallel: GPT-NeoX only: ``use_parallel_residual`` (attention and MLP read the same
            residual, as in Pythia).
        seed: Weights come from ``torch.manual_seed(seed)`` inside a forked RNG, so the same
            seed gives identical weights and the global RNG state is left untouched.

    Raises:
        RandomModelError: (a ValueError) for an unknown architecture or inconsistent sizes.
    """
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise RandomModelError(
            f"unknown architecture {architecture!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    if d_model % n_heads:
        raise RandomModelError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    if n_kv_heads is None:
        n_kv_heads = n_heads if architecture in _NO_GQA else max(1, n_heads // 2)
    if architecture in _NO_GQA and n_kv_heads != n_heads:
        raise RandomModelError(
            f"{architecture} has no grouped-query attention: n_kv_heads must be n_heads"
        )
    if n_heads % n_kv_heads:
        raise RandomModelError(f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}")

    config = _build_config(
        architecture,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_model=d_model,
        d_mlp=d_mlp,
        vocab_size=vocab_size,
        max_positions=max_positions,
        parallel=parallel,
    )
    config.architectures = [architecture]
    config._attn_implementation = "eager"
    model_cls = getattr(transformers, architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.to(dtype=dtype).eval()
