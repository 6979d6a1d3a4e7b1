"""Tests for circuits.models (load_model) and circuits.models.random (random_hf_model).

All offline: models are tiny, randomly initialised from configs, and any Hub access is
either refused by offline mode or pointed at a local address.
"""

from __future__ import annotations

import copy
import json
import socket
import threading

import pytest
import torch
from conftest import ARCH_IDS, ARCHITECTURES, randomize_weights

from circuits.models import (
    PROCESSING,
    SUPPORTED_ARCHITECTURES,
    ModelLoadError,
    UnsupportedArchitectureError,
    load_model,
)
from circuits.models import loading as models
from circuits.models.random import random_hf_model

CASES, CASE_IDS = ARCHITECTURES, ARCH_IDS
N_LAYERS, N_HEADS, D_MODEL, VOCAB = 2, 4, 32, 128


# --------------------------------------------------------------------------- helpers


def _tokens(batch: int = 2, pos: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _perturb(model, seed: int = 0):
    """Random biases and norm gains (HF initialises them to 0 and 1), so a missing bias or a
    mishandled norm cannot go unnoticed."""
    return randomize_weights(model, seed, std=0.2, gemma_offset=True)


def _hf_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits.detach().clone()


def _bridge_logits(bridge, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = bridge(tokens)
    return getattr(out, "logits", out).detach()


def _capture(bridge, tokens: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Activations at ``names``, keyed by the name registered (not ``hook.name``)."""
    store: dict[str, torch.Tensor] = {}

    def saver(name):
        def fn(activation, hook):
            store[name] = activation.detach().clone()
            return activation

        return fn

    with torch.no_grad():
        bridge.run_with_hooks(tokens, fwd_hooks=[(name, saver(name)) for name in names])
    return store


def _attn_out_bias(model, architecture: str, layer: int) -> torch.Tensor | None:
    """The attention output-projection bias of the raw HF model (None if it has none)."""
    if architecture == "GPT2LMHeadModel":
        bias = model.transformer.h[layer].attn.c_proj.bias
    elif architecture == "GPTNeoXForCausalLM":
        bias = model.gpt_neox.layers[layer].attention.dense.bias
    else:
        bias = model.model.layers[layer].self_attn.o_proj.bias
    return None if bias is None else bias.detach().clone()


def _word_level_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = "the cat sat on a mat and dog ran to house".split()
    vocab = {"[UNK]": 0, "[PAD]": 1, "[BOS]": 2, "[EOS]": 3}
    vocab.update({word: i + 4 for i, word in enumerate(words)})
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


@pytest.fixture
def online_env(monkeypatch):
    """Undo the offline settings (conftest sets them; huggingface_hub cached them at import)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return hf_constants


# --------------------------------------------------------------------------- logits parity


@pytest.mark.parametrize(("architecture", "overrides"), CASES, ids=CASE_IDS)
def test_bridge_logits_match_hf(architecture, overrides, record_property):
    model = _perturb(random_hf_model(architecture, **overrides))
    tokens = _tokens()
    reference = _hf_logits(model, tokens)  # before bridging: the bridge rewires the module

    bridge = load_model(model)
    logits = _bridge_logits(bridge, tokens)

    assert logits.shape == (2, 7, VOCAB)
    diff = (logits - reference).abs().max().item()
    print(f"{architecture} {overrides}: max |bridge - hf| = {diff:.2e}")
    record_property("max_abs_logit_diff", diff)
    assert diff < 1e-4
    assert bridge.circuit_discovery_processing == PROCESSING
    assert not any(bridge.circuit_discovery_processing.values())


#: max |bridge logit - HF logit| stated in docs/models.md, per architecture case and dtype
#: (measured on these random models: float64 at most 2e-16, GPT-NeoX 2.4e-9; float32 at most
#: 1.8e-7). GPT-NeoX's own eager attention takes its softmax in float32 whatever the model's
#: dtype, while the bridge keeps the model's dtype: that, not the bridge, is the float64 gap.
LOGIT_BOUNDS = {torch.float64: 1e-14, torch.float32: 1e-6}
NEOX_FLOAT64_BOUND = 1e-8


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("architecture", "overrides"), CASES, ids=CASE_IDS)
def test_bridge_logits_are_within_the_stated_bound(architecture, overrides, dtype):
    model = _perturb(random_hf_model(architecture, **overrides)).to(dtype)
    tokens = _tokens()
    reference = _hf_logits(model, tokens)
    diff = (_bridge_logits(load_model(model), tokens) - reference).abs().max().item()
    neox64 = architecture == "GPTNeoXForCausalLM" and dtype == torch.float64
    assert diff < (NEOX_FLOAT64_BOUND if neox64 else LOGIT_BOUNDS[dtype])


def test_neox_float64_gap_is_hf_float32_softmax(monkeypatch):
    model = _perturb(random_hf_model("GPTNeoXForCausalLM", parallel=True)).to(torch.float64)
    tokens = _tokens()
    as_is = _hf_logits(model, tokens)
    softmax = torch.nn.functional.softmax
    with monkeypatch.context() as patch:  # HF's softmax in the model's dtype, as the bridge's
        patch.setattr(torch.nn.functional, "softmax", lambda x, dim=-1, dtype=None: softmax(x, dim))
        same_dtype = _hf_logits(model, tokens)
    bridge = _bridge_logits(load_model(model), tokens)
    assert (bridge - as_is).abs().max().item() > 1e-12  # the gap exists ...
    assert (bridge - same_dtype).abs().max().item() < LOGIT_BOUNDS[torch.float64]  # ... and is it


@pytest.mark.parametrize(("architecture", "overrides"), CASES, ids=CASE_IDS)
def test_unbridged_gives_back_a_savable_model_with_the_same_weights(architecture, overrides):
    from circuits.models.loading import unbridged

    model = _perturb(random_hf_model(architecture, **overrides)).to(torch.float64)
    tokens = _tokens()
    reference = _hf_logits(model, tokens)
    assert unbridged(model) is model  # not rewired yet
    load_model(model)
    plain = unbridged(model)
    assert plain is not model and next(plain.parameters()).dtype == torch.float64
    assert not any("_original_component" in key for key in plain.state_dict())
    assert torch.equal(_hf_logits(plain, tokens), reference)


def test_device_and_dtype_are_applied_before_bridging():
    model = random_hf_model("LlamaForCausalLM")
    tokens = _tokens()
    reference = _hf_logits(copy.deepcopy(model).to(torch.float64), tokens)
    bridge = load_model(model, device="cpu", dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float64
    logits = _bridge_logits(bridge, tokens)
    assert logits.dtype == torch.float64
    assert (logits - reference).abs().max().item() < 1e-10


# --------------------------------------------------------------------------- edge-level hooks


@pytest.mark.parametrize(("architecture", "overrides"), CASES, ids=CASE_IDS)
def test_edge_level_hooks_fire_with_per_head_shapes(architecture, overrides):
    model = random_hf_model(architecture, **overrides)
    n_kv_heads = (
        model.config.num_key_value_heads
        if hasattr(model.config, "num_key_value_heads")
        else N_HEADS
    )
    bridge = load_model(model)
    names = [
        "blocks.0.attn.hook_result",
        "blocks.0.hook_q_input",
        "blocks.0.hook_k_input",
        "blocks.0.hook_v_input",
        "blocks.0.hook_mlp_in",
        "blocks.1.hook_mlp_in",
    ]
    acts = _capture(bridge, _tokens(), names)

    assert set(acts) == set(names)
    assert acts["blocks.0.attn.hook_result"].shape == (2, 7, N_HEADS, D_MODEL)
    assert acts["blocks.0.hook_q_input"].shape == (2, 7, N_HEADS, D_MODEL)
    assert acts["blocks.0.hook_k_input"].shape == (2, 7, n_kv_heads, D_MODEL)
    assert acts["blocks.0.hook_v_input"].shape == (2, 7, n_kv_heads, D_MODEL)
    assert acts["blocks.0.hook_mlp_in"].shape == (2, 7, D_MODEL)
    if architecture in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Gemma2ForCausalLM"):
        assert n_kv_heads < N_HEADS  # grouped-query attention is exercised
    else:
        assert n_kv_heads == N_HEADS


@pytest.mark.parametrize(
    ("architecture", "overrides"),
    [c for c in CASES if c[0] != "Gemma2ForCausalLM"],
    ids=[i for i, c in zip(CASE_IDS, CASES, strict=True) if c[0] != "Gemma2ForCausalLM"],
)
def test_residual_decomposition(architecture, overrides):
    """Heads' results + bias = attn_out; q/k/v inputs = resid_pre; MLP reads resid_mid/pre."""
    model = _perturb(random_hf_model(architecture, **overrides))
    biases = [_attn_out_bias(model, architecture, layer) for layer in range(N_LAYERS)]
    if architecture == "LlamaForCausalLM":
        assert all(b is None for b in biases)  # no output bias by default
    if architecture in ("GPT2LMHeadModel", "GPTNeoXForCausalLM"):
        assert all(b is not None and b.abs().max() > 0 for b in biases)
    bridge = load_model(model)
    per_layer = ["attn.hook_result", "hook_attn_out", "hook_resid_pre", "hook_mlp_in"]
    per_layer += ["hook_q_input", "hook_k_input", "hook_v_input"]
    names = [f"blocks.{layer}.{name}" for layer in range(N_LAYERS) for name in per_layer]
    acts = _capture(bridge, _tokens(), names)

    parallel = architecture == "GPTNeoXForCausalLM" and overrides["parallel"]
    for layer in range(N_LAYERS):
        a = {name: acts[f"blocks.{layer}.{name}"] for name in per_layer}
        heads_sum = a["attn.hook_result"].sum(dim=2)
        if biases[layer] is not None:
            heads_sum = heads_sum + biases[layer]
        torch.testing.assert_close(heads_sum, a["hook_attn_out"], atol=1e-5, rtol=0)
        resid_pre = a["hook_resid_pre"].unsqueeze(2)
        for port in ("q", "k", "v"):
            inputs = a[f"hook_{port}_input"]
            torch.testing.assert_close(inputs, resid_pre.expand_as(inputs), atol=1e-6, rtol=0)
        # The MLP reads its own layer's attention output unless the block is parallel.
        expected_mlp_in = a["hook_resid_pre"] + (0 if parallel else a["hook_attn_out"])
        torch.testing.assert_close(a["hook_mlp_in"], expected_mlp_in, atol=1e-5, rtol=1e-5)


def test_gemma2_head_results_sum_before_post_attention_norm():
    """Gemma-2's heads add up to the input of ln1_post, not to what the block writes."""
    bridge = load_model(_perturb(random_hf_model("Gemma2ForCausalLM")))
    names = [
        "blocks.0.attn.hook_result",
        "blocks.0.ln1_post.hook_in",
        "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_q_input",
    ]
    acts = _capture(bridge, _tokens(), names)
    heads_sum = acts["blocks.0.attn.hook_result"].sum(dim=2)
    torch.testing.assert_close(heads_sum, acts["blocks.0.ln1_post.hook_in"], atol=1e-5, rtol=0)
    assert (heads_sum - acts["blocks.0.hook_attn_out"]).abs().max() > 1e-2
    resid_pre = acts["blocks.0.hook_resid_pre"].unsqueeze(2)
    torch.testing.assert_close(
        acts["blocks.0.hook_q_input"], resid_pre.expand(-1, -1, N_HEADS, -1), atol=1e-6, rtol=0
    )


# --------------------------------------------------------------------------- local directories


@pytest.mark.parametrize("with_tokenizer", [False, True], ids=["no-tokenizer", "tokenizer"])
def test_load_from_local_directory(tmp_path, with_tokenizer):
    model = random_hf_model("GPT2LMHeadModel", seed=3)
    tokens = _tokens()
    reference = _hf_logits(model, tokens)
    model.save_pretrained(tmp_path)
    if with_tokenizer:
        _word_level_tokenizer().save_pretrained(tmp_path)

    bridge = load_model(str(tmp_path))

    diff = (_bridge_logits(bridge, tokens) - reference).abs().max().item()
    assert diff < 1e-5
    if with_tokenizer:
        assert bridge.tokenizer is not None
        ids = bridge.to_tokens("the cat sat", prepend_bos=False)
        assert ids.tolist() == [[4, 5, 6]]
    else:
        assert bridge.tokenizer is None


def test_in_memory_tokenizer_is_usable():
    """TransformerLens reloads tokenizers by name_or_path; in-memory ones must still work."""
    tokenizer = _word_level_tokenizer()
    bridge = load_model(random_hf_model("GPT2LMHeadModel"), tokenizer=tokenizer)
    assert bridge.to_tokens("the dog ran", prepend_bos=False).tolist() == [[4, 11, 12]]
    assert bridge.tokenizer.bos_token == "[BOS]"


def test_empty_directory_names_config_json(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json") as info:
        load_model(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_load_hub", _fail_if_called("the Hub was asked"))
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(missing)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(missing))


def test_directory_without_weights(tmp_path):
    random_hf_model("GPT2LMHeadModel").config.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="weights"):
        load_model(str(tmp_path))


# --------------------------------------------------------------------------- unsupported


def _tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(
        vocab_size=VOCAB,
        hidden_size=D_MODEL,
        num_hidden_layers=1,
        ffn_dim=64,
        num_attention_heads=N_HEADS,
        max_position_embeddings=64,
        word_embed_proj_dim=D_MODEL,
    )
    return OPTForCausalLM(config).eval()


def test_unsupported_in_memory_architecture():
    with pytest.raises(UnsupportedArchitectureError) as info:
        load_model(_tiny_opt())
    message = str(info.value)
    assert "OPTForCausalLM" in message
    assert "GPT2LMHeadModel" in message and "Gemma2ForCausalLM" in message
    assert isinstance(info.value, ModelLoadError)


def test_unsupported_local_architecture_is_rejected_from_config_alone(tmp_path):
    model = _tiny_opt()
    model.save_pretrained(tmp_path)
    for weights in tmp_path.glob("*.safetensors"):
        weights.unlink()  # the check must not need the weights
    with pytest.raises(UnsupportedArchitectureError, match="OPTForCausalLM"):
        load_model(str(tmp_path))


def test_base_model_without_lm_head_is_unsupported():
    from transformers import GPT2Model

    base = GPT2Model(random_hf_model("GPT2LMHeadModel").config)
    with pytest.raises(UnsupportedArchitectureError, match="GPT2Model"):
        load_model(base)


def test_non_model_source_is_a_type_error():
    with pytest.raises(TypeError):
        load_model(42)


# --------------------------------------------------------------------------- Hub names


def _fail_if_called(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what}: {args} {kwargs}")

    return fail


def test_hub_name_offline_fails_fast(monkeypatch):
    """Offline, a Hub name not in the cache fails without touching the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_hub_reachable", _fail_if_called("the Hub was probed"))
    with pytest.raises(ModelLoadError) as info:
        load_model("gpt2")
    message = str(info.value)
    assert "offline" in message
    assert "local" in message and "save_pretrained" in message


def test_hub_name_offline_is_read_at_call_time(monkeypatch, online_env):
    """HF_HUB_OFFLINE set after huggingface_hub was imported still counts."""
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    with pytest.raises(ModelLoadError, match="offline"):
        load_model("gpt2")


def test_hub_name_without_network_fails_fast(monkeypatch, online_env):
    """No offline flag: one probe of the Hub, bounded by HUB_PROBE_TIMEOUT_S, ends it (or,
    with a network, the Hub's 404 does)."""
    probes = []
    reachable = models._hub_reachable

    def probe(endpoint, timeout):
        probes.append((endpoint, timeout))
        return reachable(endpoint, timeout)

    monkeypatch.setattr(models, "_hub_reachable", probe)
    with pytest.raises(ModelLoadError) as info:
        load_model("circuit-discovery-tests/no-such-model")
    assert "local" in str(info.value)
    assert probes == [(online_env.ENDPOINT, models.HUB_PROBE_TIMEOUT_S)]
    assert models.HUB_PROBE_TIMEOUT_S <= 5


def test_hub_probe_is_bounded_by_its_timeout(monkeypatch, online_env):
    """An endpoint that accepts connections but never answers is given up on: without the
    probe's timeout this call would never return."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stall():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept_and_stall, daemon=True)
    thread.start()
    monkeypatch.setattr(online_env, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(models, "HUB_PROBE_TIMEOUT_S", 0.5)
    try:
        with pytest.raises(ModelLoadError, match="cannot reach the Hugging Face Hub") as info:
            load_model("gpt2")
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()
    assert "load_model('/path/to/dir')" in str(info.value)


def _fake_hub_cache(tmp_path, monkeypatch, repo: str, model, tokenizer=None):
    """Put ``model`` into a throwaway HF cache as ``repo`` and point huggingface_hub at it."""
    import huggingface_hub.constants as hf_constants

    commit = "0" * 40
    cache = tmp_path / "hub"
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    model.save_pretrained(snapshot)
    if tokenizer is not None:
        tokenizer.save_pretrained(snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return snapshot


def test_hub_name_loads_from_local_cache_offline(tmp_path, monkeypatch):
    """A model in the HF cache loads with offline mode on (no network needed)."""
    model = random_hf_model("GPT2LMHeadModel", seed=5)
    tokens = _tokens()
    reference = _hf_logits(model, tokens)
    snapshot = _fake_hub_cache(
        tmp_path, monkeypatch, "circuit-tests/tiny-gpt2", model, _word_level_tokenizer()
    )
    config = json.loads((snapshot / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    bridge = load_model("circuit-tests/tiny-gpt2")

    assert (_bridge_logits(bridge, tokens) - reference).abs().max().item() < 1e-5
    assert bridge.to_tokens("a mat", prepend_bos=False).tolist() == [[8, 9]]


def test_cached_unsupported_hub_model_is_rejected_without_network(
    tmp_path, monkeypatch, online_env
):
    _fake_hub_cache(tmp_path, monkeypatch, "circuit-tests/tiny-opt", _tiny_opt())
    monkeypatch.setattr(models, "_hub_reachable", lambda *a, **k: pytest.fail("probed the hub"))
    with pytest.raises(UnsupportedArchitectureError, match="OPTForCausalLM"):
        load_model("circuit-tests/tiny-opt")


def test_attention_without_fork_point_is_reported(monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    def refuse(self, value):
        raise NotImplementedError("no fork point on this attention")

    monkeypatch.setattr(TransformerBridge, "set_use_split_qkv_input", refuse)
    with pytest.raises(ModelLoadError, match="per-head fork point") as info:
        load_model(random_hf_model("LlamaForCausalLM"))
    assert "set_use_split_qkv_input" in str(info.value)


# --------------------------------------------------------------------------- random models


@pytest.mark.parametrize("architecture", SUPPORTED_ARCHITECTURES)
def test_random_hf_model_is_deterministic(architecture):
    a = random_hf_model(architecture, seed=7)
    b = random_hf_model(architecture, seed=7)
    c = random_hf_model(architecture, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training
    assert a.config.architectures == [architecture]
    assert a.config._attn_implementation == "eager"


def test_random_hf_model_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_hf_model("LlamaForCausalLM", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_random_hf_model_sizes_and_options():
    llama = random_hf_model("LlamaForCausalLM", n_layers=3, n_heads=8, d_model=64)
    assert llama.config.num_hidden_layers == 3
    assert llama.config.num_key_value_heads == 4
    assert llama.config.head_dim == 8
    mha = random_hf_model("Qwen2ForCausalLM", n_kv_heads=4)
    assert mha.config.num_key_value_heads == 4
    assert (
        random_hf_model("GPTNeoXForCausalLM", parallel=False).config.use_parallel_residual is False
    )
    gemma = random_hf_model("Gemma2ForCausalLM", max_positions=64)
    assert gemma.config.sliding_window > 64
    half = random_hf_model("GPT2LMHeadModel", dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16


def test_random_hf_model_unknown_architecture():
    with pytest.raises(ValueError, match="OPTForCausalLM") as info:
        random_hf_model("OPTForCausalLM")
    assert "GPT2LMHeadModel" in str(info.value)
    with pytest.raises(ValueError, match="grouped-query"):
        random_hf_model("GPT2LMHeadModel", n_kv_heads=2)


def test_device_map_loads_the_same_model_and_attribution(tmp_path):
    """device_map goes to from_pretrained (here everything on the CPU: no GPUs in tests); the
    bridge over it scores exactly like the plainly loaded one."""
    from attribution import PromptPairs, attribute
    from circuits.models import ModelLoadError, load_model
    from circuits.models.random import random_hf_model
    from graphs import Graph

    random_hf_model("GPT2LMHeadModel", seed=4).save_pretrained(tmp_path)
    plain = load_model(tmp_path)
    mapped = load_model(tmp_path, device_map={"": "cpu"})
    gen = torch.Generator().manual_seed(0)
    data = PromptPairs(
        clean=torch.randint(0, 128, (3, 5), generator=gen),
        corrupted=torch.randint(0, 128, (3, 5), generator=gen),
        answers=torch.randint(0, 128, (3, 1), generator=gen),
    )
    a = attribute(plain, Graph.from_model(plain), data, method="eap", quiet=True).scores
    b = attribute(mapped, Graph.from_model(mapped), data, method="eap", quiet=True).scores
    assert torch.equal(a, b) and a.abs().sum() > 0
    with pytest.raises(ModelLoadError, match="either device or device_map"):
        load_model(tmp_path, device="cpu", device_map="auto")


def test_weights_with_nan_or_inf_are_refused_at_load_naming_the_parameter(tmp_path):
    """A NaN in the weights used to surface 25 s later as a metric problem."""
    from circuits.models import NonFiniteWeightsError
    from graphs.errors import CircuitDiscoveryError

    model = random_hf_model("GPT2LMHeadModel", seed=3)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[2, 5] = float("nan")
        model.transformer.h[1].attn.c_attn.weight[0, 0] = float("inf")
    model.save_pretrained(tmp_path)
    for source in (model, str(tmp_path)):
        with pytest.raises(NonFiniteWeightsError, match=r"'transformer\.h\.0\.mlp\.c_fc\.weight'"):
            load_model(source)
    assert issubclass(NonFiniteWeightsError, CircuitDiscoveryError)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[2, 5] = 0.0
    with pytest.raises(NonFiniteWeightsError, match=r"'transformer\.h\.1\.attn\.c_attn\.weight'"):
        load_model(model)


def test_weights_fingerprint_is_stable_across_loads_and_tells_weights_apart():
    from circuits.models import zoo
    from graphs import ModelSpec
    from graphs.spec import weights_fingerprint

    first = weights_fingerprint(zoo.load("toy-gpt2")[0])
    assert len(first) == 16
    assert weights_fingerprint(zoo.load("toy-gpt2")[0]) == first
    assert weights_fingerprint(zoo.load("toy-gpt2", dtype=torch.bfloat16)[0]) == first
    bridge = zoo.load("toy-gpt2")[0]
    assert ModelSpec.from_model(bridge).weights_fingerprint == first
    with torch.no_grad():
        next(bridge.parameters()).add_(0.01)  # the first parameter is always hashed
    assert weights_fingerprint(bridge) != first
