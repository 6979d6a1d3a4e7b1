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


def randomize_weights(
    hf_model,
    seed: int,
    *,
    std: float = 0.3,
    scale: float = 1.0,
    scale_embeddings: bool = False,
    gemma_offset: bool = False,
):
    """Give ``hf_model`` random biases (N(0, std²)) and norm gains (1 + N(0, std²)), since HF
    initialises them to 0 and 1 and a mishandled bias or norm would go unnoticed; multiply the
    other weight matrices by ``scale`` (sharper attention, so the corrupted prompt matters),
    embeddings too with ``scale_embeddings``. Gemma-2 stores a norm's gain as an offset from 1:
    ``gemma_offset`` draws that offset, otherwise the stored value is set to 1 + N(0, std²)
    (gain about 2). Returns ``hf_model``, changed in place.

    One noise draw per (module, parameter) in module order, whatever the parameter's role, so
    a parameter's numbers do not depend on the options; tied weights are scaled once.
    """
    gen = torch.Generator().manual_seed(seed)
    offset = gemma_offset and type(hf_model).__name__ == "Gemma2ForCausalLM"
    scaled: set[int] = set()
    with torch.no_grad():
        for module_name, module in hf_model.named_modules():
            is_norm = "norm" in type(module).__name__.lower()
            is_embedding = any(e in module_name for e in ("emb", "wte", "wpe"))
            for name, p in module.named_parameters(recurse=False):
                noise = (std * torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(p.dtype)
                if name == "bias":
                    p.copy_(noise)
                elif is_norm:
                    p.copy_(noise if offset else 1 + noise)
                elif (scale_embeddings or not is_embedding) and id(p) not in scaled:
                    scaled.add(id(p))
                    p.mul_(scale)
    return hf_model


def randomized_bridge(architecture: str, seed: int = 0, *, scale: float = 1.0, **overrides):
    """A float64 bridge over a random tiny HF model with random biases and norms and 2-D
    non-embedding weights multiplied by ``scale`` (:func:`randomize_weights`)."""
    from circuits.models import load_model
    from circuits.models.random import random_hf_model

    hf = random_hf_model(architecture, seed=seed, dtype=torch.float64, **overrides)
    return load_model(randomize_weights(hf, 1000 + seed, scale=scale))


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


@pytest.fixture(scope="session")
def small_run_dir(tmp_path_factory):
    """A cheap run folder of `circuits discover` (toy-gpt2, IOI, 8 train / 16 test prompts,
    one IG step), shared by the explorer and server tests."""
    from circuits.app.discovery import DiscoverySettings, discover

    out = tmp_path_factory.mktemp("explorer") / "run"
    settings = DiscoverySettings(n_examples=8, n_eval=16, steps=1, bootstrap=200, seed=1)
    discover(settings, out, quiet=True)
    return out
