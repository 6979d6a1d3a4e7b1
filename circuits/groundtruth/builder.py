"""Shared helpers for hand-set weights: residual layout, norm anchoring, HF conversion.

Every compiled model is written in "math" orientation first (:class:`Weights`: ``x @ q`` gives
a head's query, ``z @ o`` its write) and then converted to Hugging Face GPT-2 or Llama tensors.

Making LayerNorm/RMSNorm (nonlinear) harmless:

- **Anchor.** Residual dims 0 and 1 hold ``+ANCHOR`` and ``-ANCHOR`` at every position
  (position embedding on GPT-2, every token embedding on Llama), so ``|x| ≈ ANCHOR·√2``
  whatever else the stream holds; other writes have norm about 1, so a norm changes by a
  relative ``O(1/ANCHOR²)`` (about 1e-8) when an edge is patched. Every norm's weight is
  :func:`norm_gain`, which turns ``x / rms(x)`` back into ``≈ x``. Nothing reads dims 0-2.
- **Sink.** Dim 2 receives minus the sum of every written vector (:func:`balance`), so every
  write has zero mean and LayerNorm's centring is the identity on the stream.

Attention is made hard by scores that differ by :data:`MARGIN` (``exp(-40) ≈ 4e-18``), and
MLP neurons run GELU at ``±20`` or more, where it is the identity or exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from circuits.groundtruth.custom import GroundTruthError

__all__ = [
    "ANCHOR",
    "MARGIN",
    "Layout",
    "Weights",
    "balance",
    "norm_gain",
    "copy_head",
    "fixed_attention",
    "gpt2_base",
    "one_hot_embedding",
    "previous_token_attention",
    "to_gpt2",
    "to_llama",
    "unembed_from",
]

#: Size of the constant anchor component that pins every norm (see the module docstring).
ANCHOR: float = 10000.0
#: Attention-score gap, after the ``1/√d_head`` scaling, between attended and ignored keys.
MARGIN: float = 40.0
#: Reserved residual dims: anchor +, anchor -, sink.
RESERVED = 3


class Layout:
    """Named blocks of residual-stream dims, allocated after the reserved anchor/sink dims."""

    def __init__(self, d_model: int):
        self.d_model = d_model
        self.blocks: dict[str, range] = {}
        self._next = RESERVED

    def add(self, name: str, size: int) -> range:
        """Reserve ``size`` dims for block ``name``; GroundTruthError when d_model is exceeded."""
        if self._next + size > self.d_model:
            raise GroundTruthError(
                f"block {name!r} of {size} dims does not fit in d_model={self.d_model}"
            )
        self.blocks[name] = range(self._next, self._next + size)
        self._next += size
        return self.blocks[name]

    def __getitem__(self, name: str) -> range:
        return self.blocks[name]


@dataclass
class Weights:
    """All weights of a compiled model in math orientation (zeros until set).

    Shapes: ``embed``/``unembed`` ``[vocab, d]``, ``pos`` ``[n_positions, d]`` (GPT-2 only),
    ``q`` ``[L, H, d, dh]``, ``k``/``v`` ``[L, K, d, dh]``, ``o`` ``[L, H, dh, d]``,
    ``mlp_in`` ``[L, d, d_mlp]``, ``mlp_bias`` ``[L, d_mlp]``, ``mlp_out`` ``[L, d_mlp, d]``.
    ``used_heads``/``used_mlps`` name the components the circuit relies on; the rest may get
    noise in weights that cannot change any write (:meth:`add_noise`).
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    vocab_size: int
    n_positions: int
    used_heads: set[tuple[int, int]] = field(default_factory=set)
    used_mlps: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        L, H, K, d, dh, m = (
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
            self.d_model,
            self.d_head,
            self.d_mlp,
        )
        z = torch.zeros
        dt = torch.float64
        self.embed, self.unembed = z(self.vocab_size, d, dtype=dt), z(self.vocab_size, d, dtype=dt)
        self.pos = z(self.n_positions, d, dtype=dt)
        self.q, self.o = z(L, H, d, dh, dtype=dt), z(L, H, dh, d, dtype=dt)
        self.k, self.v = z(L, K, d, dh, dtype=dt), z(L, K, d, dh, dtype=dt)
        self.mlp_in, self.mlp_bias = z(L, d, m, dtype=dt), z(L, m, dtype=dt)
        self.mlp_out = z(L, m, d, dtype=dt)

    @property
    def query_scale(self) -> float:
        """Query weight that gives a score of :data:`MARGIN` against a unit key entry."""
        return MARGIN * math.sqrt(self.d_head)

    def add_noise(self, scale: float, seed: int) -> None:
        """Seeded Gaussian noise of std ``scale`` in the queries and keys of heads whose value
        and output weights are zero, and the MLP inputs of unused MLPs (whose outputs are zero).

        These weights shape attention patterns and hidden activations that never reach the
        stream, so the circuit stays exact. Key/value heads shared with a used query head
        (grouped-query attention) are left alone."""
        if scale == 0:
            return
        gen = torch.Generator().manual_seed(seed)
        group = self.n_heads // self.n_kv_heads

        def noise(*shape: int) -> torch.Tensor:
            out = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
            out[:RESERVED] = 0  # never read the anchor or the sink
            return out

        for layer in range(self.n_layers):
            for head in range(self.n_heads):
                if (layer, head) not in self.used_heads:
                    self.q[layer, head] += noise(self.d_model, self.d_head)
            for kv in range(self.n_kv_heads):
                heads = range(kv * group, (kv + 1) * group)
                if not any((layer, h) in self.used_heads for h in heads):
                    self.k[layer, kv] += noise(self.d_model, self.d_head)
            if layer not in self.used_mlps:
                self.mlp_in[layer] += noise(self.d_model, self.d_mlp)


def balance(writes: torch.Tensor) -> torch.Tensor:
    """Set the sink dim of each write (last axis = residual) to minus the sum of the others."""
    writes = writes.clone()
    writes[..., 2] = 0
    writes[..., 2] = -writes.sum(-1)
    return writes


def norm_gain(d_model: int) -> float:
    """Norm weight that maps ``x / rms(x)`` back to ``≈ x`` when the anchor dominates ``|x|``."""
    return ANCHOR * math.sqrt(2.0) / math.sqrt(d_model)


def _anchor(rows: torch.Tensor) -> torch.Tensor:
    rows = rows.clone()
    rows[:, 0], rows[:, 1] = ANCHOR, -ANCHOR
    return rows


def to_gpt2(w: Weights, *, dtype: torch.dtype = torch.float32):
    """A ``GPT2LMHeadModel`` (untied unembedding, gelu_new, eager attention) holding ``w``."""
    import transformers

    if w.n_kv_heads != w.n_heads or w.d_model != w.n_heads * w.d_head:
        raise GroundTruthError("GPT-2 needs n_kv_heads == n_heads and d_model == n_heads * d_head")
    config = transformers.GPT2Config(
        vocab_size=w.vocab_size,
        n_positions=w.n_positions,
        n_embd=w.d_model,
        n_layer=w.n_layers,
        n_head=w.n_heads,
        n_inner=w.d_mlp,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
    )
    config.architectures = ["GPT2LMHeadModel"]
    config._attn_implementation = "eager"
    model = transformers.GPT2LMHeadModel(config)
    gain = norm_gain(w.d_model)
    state = {
        "transformer.wte.weight": balance(w.embed),
        "transformer.wpe.weight": balance(_anchor(w.pos)),
        "lm_head.weight": w.unembed,
        "transformer.ln_f.weight": torch.full((w.d_model,), gain),
        "transformer.ln_f.bias": torch.zeros(w.d_model),
    }
    for layer in range(w.n_layers):
        p = f"transformer.h.{layer}."
        qkv = [t[layer].permute(1, 0, 2).reshape(w.d_model, -1) for t in (w.q, w.k, w.v)]
        state |= {
            p + "attn.c_attn.weight": torch.cat(qkv, dim=1),
            p + "attn.c_attn.bias": torch.zeros(3 * w.d_model),
            p + "attn.c_proj.weight": balance(w.o[layer].reshape(-1, w.d_model)),
            p + "attn.c_proj.bias": torch.zeros(w.d_model),
            p + "mlp.c_fc.weight": w.mlp_in[layer],
            p + "mlp.c_fc.bias": w.mlp_bias[layer],
            p + "mlp.c_proj.weight": balance(w.mlp_out[layer]),
            p + "mlp.c_proj.bias": torch.zeros(w.d_model),
        }
        for ln in ("ln_1", "ln_2"):
            state[p + f"{ln}.weight"] = torch.full((w.d_model,), gain)
            state[p + f"{ln}.bias"] = torch.zeros(w.d_model)
    _load(model, state)
    return model.to(dtype=dtype).eval()


def to_llama(w: Weights, *, rope_theta: float = 1e10, dtype: torch.dtype = torch.float32):
    """A ``LlamaForCausalLM`` (grouped-query when ``n_kv_heads < n_heads``) holding ``w``.

    Rotary embeddings rotate dim pair ``(i, i + dh/2)`` by ``position · rope_theta^(-2i/dh)``;
    with the large default ``rope_theta`` the pairs with ``i ≥ dh/4`` turn by under 1e-4 rad
    over the prompts used, so queries and keys placed there match by content alone. MLPs must
    be zero (Llama's gated SiLU MLP is not used by any compiled model)."""
    import transformers

    if w.mlp_out.abs().sum() or w.pos.abs().sum():
        raise GroundTruthError(
            "to_llama supports attention-only weights without position embeddings"
        )
    config = transformers.LlamaConfig(
        vocab_size=w.vocab_size,
        hidden_size=w.d_model,
        intermediate_size=w.d_mlp,
        num_hidden_layers=w.n_layers,
        num_attention_heads=w.n_heads,
        num_key_value_heads=w.n_kv_heads,
        head_dim=w.d_head,
        max_position_embeddings=max(w.n_positions, 16),
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=None,
    )
    config.architectures = ["LlamaForCausalLM"]
    config._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(config)
    gain = norm_gain(w.d_model)
    state = {
        "model.embed_tokens.weight": _anchor(w.embed),
        "lm_head.weight": w.unembed,
        "model.norm.weight": torch.full((w.d_model,), gain),
    }
    for layer in range(w.n_layers):
        p = f"model.layers.{layer}."
        state |= {
            p + "self_attn.q_proj.weight": w.q[layer].permute(0, 2, 1).reshape(-1, w.d_model),
            p + "self_attn.k_proj.weight": w.k[layer].permute(0, 2, 1).reshape(-1, w.d_model),
            p + "self_attn.v_proj.weight": w.v[layer].permute(0, 2, 1).reshape(-1, w.d_model),
            p + "self_attn.o_proj.weight": w.o[layer].reshape(-1, w.d_model).T,
            p + "mlp.gate_proj.weight": torch.zeros(w.d_mlp, w.d_model),
            p + "mlp.up_proj.weight": torch.zeros(w.d_mlp, w.d_model),
            p + "mlp.down_proj.weight": torch.zeros(w.d_model, w.d_mlp),
            p + "input_layernorm.weight": torch.full((w.d_model,), gain),
            p + "post_attention_layernorm.weight": torch.full((w.d_model,), gain),
        }
    _load(model, state)
    return model.to(dtype=dtype).eval()


def _load(model, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``; every parameter must be set (buffers may be omitted)."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(state))
    if missing:
        raise AssertionError(f"compiled weights miss parameters: {missing}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].dtype))


# --------------------------------------------------------------------------- circuit pieces


def one_hot_embedding(w: Weights, tok: range) -> None:
    """Token ``t`` embeds as the unit vector ``tok[t]`` (``tok`` spans the whole vocabulary)."""
    for t in range(w.vocab_size):
        w.embed[t, tok[t]] = 1.0


def unembed_from(w: Weights, out: range, scale: float) -> None:
    """The logit of token ``t`` reads ``scale`` times residual dim ``out[t]``."""
    for t in range(w.vocab_size):
        w.unembed[t, out[t]] = scale


def copy_head(
    w: Weights, layer: int, head: int, src: list[int], dst: list[int], kv: int | None = None
) -> None:
    """Value of key/value head ``kv`` (default: the head's own) reads ``src[i]`` into head
    dim ``i``; head ``head`` writes head dim ``i`` to ``dst[i]`` (a copy of the attended
    position's features). ``src`` and ``dst`` have equal length <= d_head."""
    kv = head if kv is None else kv
    for i, (s, d) in enumerate(zip(src, dst, strict=True)):
        w.v[layer, kv, s, i] = 1.0
        w.o[layer, head, i, d] = 1.0
    w.used_heads.add((layer, head))


def previous_token_attention(w: Weights, layer: int, head: int, pos: range) -> None:
    """Head attends from position ``i`` to ``i - 1`` (position 0 to itself): the query at
    ``i`` is ``query_scale · e_{i-1}``, the key at ``j`` is ``e_j`` (head dims = positions)."""
    for i in range(1, len(pos)):
        w.q[layer, head, pos[i], i - 1] = w.query_scale
    for j in range(len(pos)):
        w.k[layer, head, pos[j], j] = 1.0


def fixed_attention(
    w: Weights, layer: int, head: int, query_dim: int, key_dim: int, dim: int = 0
) -> None:
    """Positions whose stream has ``query_dim`` set attend to those with ``key_dim`` set."""
    w.q[layer, head, query_dim, dim] = w.query_scale
    w.k[layer, head, key_dim, dim] = 1.0


def gpt2_base(
    n_layers: int, vocab_size: int, n_positions: int, d_mlp: int = 16
) -> tuple[Weights, Layout]:
    """Weights of a GPT-2 model with 4 heads of 16 dims (``d_model`` 64) whose layout starts
    with the one-hot blocks ``tok`` (token embedding) and ``pos`` (position embedding)."""
    w = Weights(
        n_layers=n_layers, n_heads=4, n_kv_heads=4, d_model=64, d_head=16, d_mlp=d_mlp,
        vocab_size=vocab_size, n_positions=n_positions,
    )  # fmt: skip
    layout = Layout(w.d_model)
    one_hot_embedding(w, layout.add("tok", vocab_size))
    pos = layout.add("pos", n_positions)
    for p in range(n_positions):
        w.pos[p, pos[p]] = 1.0
    return w, layout
