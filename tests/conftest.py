"""Shared fixtures: small randomly initialised models, built offline from configs."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The test models are tiny: thread start-up costs more than it saves, and on a loaded 2-core
# machine two threads per process made patched passes many times slower.
torch.set_num_threads(1)

# (architecture, keyword overrides) of every architecture the project supports.
ARCHITECTURES = [
    ("GPT2LMHeadModel", {}),
    ("GPTNeoXForCausalLM", {"parallel": True}),
    ("GPTNeoXForCausalLM", {"parallel": False}),
    ("LlamaForCausalLM", {}),
    ("Qwen2ForCausalLM", {}),
    ("Gemma2ForCausalLM", {}),
]
ARCH_IDS = ["gpt2", "neox-parallel", "neox-sequential", "llama-gqa", "qwen2-gqa", "gemma2-gqa"]


@pytest.fixture(params=ARCHITECTURES, ids=ARCH_IDS)
def arch_case(request):
    return request.param


def tiny_bridge(architecture: str, seed: int = 0, **overrides):
    """A TransformerBridge over a random tiny HF model, with edge-level hooks on."""
    from circuits.models import load_model
    from circuits.models.random import random_hf_model

    return load_model(random_hf_model(architecture, seed=seed, **overrides))


def randomized_bridge(architecture: str, seed: int = 0, *, scale: float = 1.0, **overrides):
    """A float64 bridge with random biases (N(0, 0.3)) and norm weights (1 + 0.3 N), since HF
    initialises them to 0 and 1 and a mishandled bias or norm would go unnoticed; with
    ``scale`` the non-embedding weight matrices are multiplied by it (sharper attention, so
    that the corrupted prompt matters and faithfulness curves are not flat)."""
    from circuits.models import load_model
    from circuits.models.random import random_hf_model

    hf = random_hf_model(architecture, seed=seed, dtype=torch.float64, **overrides)
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for module_name, module in hf.named_modules():
            is_norm = "norm" in type(module).__name__.lower()
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                if is_norm and name == "weight":
                    p.copy_(1 + 0.3 * noise)
                elif name == "bias":
                    p.copy_(0.3 * noise)
                elif p.dim() == 2 and not any(e in module_name for e in ("emb", "wte", "wpe")):
                    p.mul_(scale)
    return load_model(hf)


def random_pairs(n: int, pos: int, seed: int, *, padded: bool = False, vocab: int = 128):
    """Random ``PromptPairs`` over token ids below ``vocab`` (the random models' vocabulary):
    corrupted = clean with all but the last token redrawn; ``padded``: random right padding."""
    from attribution import PromptPairs

    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, pos), generator=gen)
    corrupted = clean.clone()
    corrupted[:, : pos - 1] = torch.randint(0, vocab, (n, pos - 1), generator=gen)
    answers = torch.randint(0, vocab, (n, 1), generator=gen)
    distractors = torch.randint(0, vocab, (n, 1), generator=gen)
    mask = torch.ones(n, pos, dtype=torch.long)
    if padded:  # right padding on some examples: the metric reads their last real token
        lengths = torch.randint(2, pos + 1, (n,), generator=gen)
        mask = (torch.arange(pos)[None, :] < lengths[:, None]).long()
    return PromptPairs(clean, corrupted, answers, distractors, attention_mask=mask)


@pytest.fixture
def tokens():
    return torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(0))
