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
    from circuits.random_models import random_hf_model

    return load_model(random_hf_model(architecture, seed=seed, **overrides))


@pytest.fixture
def tokens():
    return torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(0))
