"""``gt-gqa``: two query heads sharing one key/value head (Llama format, grouped-query
attention: 2 layers, 4 query heads, 2 key/value heads; the circuit is in layer 1).

Task: ``<bos> c a ?`` or ``<bos> a c ?`` with a colour word ``c`` and an animal word ``a``;
the model raises the logits of both. The corrupted prompt has another colour and animal in
the swapped order (``<bos> a' c' ?``); answers ``[c, a]``, distractors ``[c', a']``, logit
difference (mean answer logit minus mean distractor logit) ``U = 5`` clean, ``-U`` corrupted.

Weights (blocks ``tok``, ``out``; no position embeddings, rotary is made inert, see
:func:`.builder.to_llama`):

- key/value head ``a1.kv0`` (shared by query heads 0 and 1): key of a colour = ``1`` in head
  dim ``COLOUR``, of an animal = ``1`` in ``ANIMAL`` (slow rotary dims 7 and 6); value copies
  the word.
- ``a1.h0``: query of ``?`` = ``M`` in ``COLOUR``; output writes colour words to ``out``.
- ``a1.h1``: query of ``?`` = ``M`` in ``ANIMAL``; output writes animal words to ``out``.
- ``lm_head``: logit of ``t`` = ``U · out[t]``; ``a1.kv1`` (heads 2, 3) and layer 0 write zero.

True circuit: ``input->a1.kv0<k>`` (which position holds which category: one edge moves both
heads), ``input->a1.kv0<v>``, ``a1.h0->logits``, ``a1.h1->logits``.
"""

from __future__ import annotations

import random

from circuits.groundtruth.builder import (
    Layout,
    Weights,
    one_hot_embedding,
    to_llama,
    unembed_from,
)
from circuits.groundtruth.task import GroundTruth, pairs, vocabulary

NAME = "gt-gqa"
COLOURS = ["red", "blue", "green", "pink", "gray", "gold"]
ANIMALS = ["cat", "dog", "owl", "fox", "elk", "yak"]
U = 5.0
COLOUR, ANIMAL = 7, 6  # head dims in the slowest rotary pairs


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary([*COLOURS, *ANIMALS, "?"])
    w = Weights(
        n_layers=2, n_heads=4, n_kv_heads=2, d_model=48, d_head=16, d_mlp=16,
        vocab_size=len(vocab), n_positions=4,
    )  # fmt: skip
    layout = Layout(w.d_model)
    tok, out = layout.add("tok", w.vocab_size), layout.add("out", w.vocab_size)
    one_hot_embedding(w, tok)
    colours, animals, ask = [vocab[x] for x in COLOURS], [vocab[x] for x in ANIMALS], vocab["?"]

    for t in colours:
        w.k[1, 0, tok[t], COLOUR] = 1.0
    for t in animals:
        w.k[1, 0, tok[t], ANIMAL] = 1.0
    w.q[1, 0, tok[ask], COLOUR] = w.query_scale
    w.q[1, 1, tok[ask], ANIMAL] = w.query_scale
    # kv0's value copies every word; each query head writes only its own category's words.
    for i, t in enumerate(colours + animals):
        w.v[1, 0, tok[t], i] = 1.0
        w.o[1, 0 if t in colours else 1, i, out[t]] = 1.0
    w.used_heads |= {(1, 0), (1, 1)}
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    rng = random.Random(seed)
    clean, corrupted, answers, distractors = [], [], [], []
    bos = vocab["<bos>"]
    for _ in range(n_prompts):
        c, c2 = rng.sample(colours, 2)
        a, a2 = rng.sample(animals, 2)
        colour_first = rng.random() < 0.5
        clean.append([bos, c, a, ask] if colour_first else [bos, a, c, ask])
        corrupted.append([bos, a2, c2, ask] if colour_first else [bos, c2, a2, ask])
        answers.append([c, a])
        distractors.append([c2, a2])
    return GroundTruth(
        name=NAME,
        description="grouped-query attention: two query heads share one key/value head",
        model=to_llama(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a1.kv0<k>", "input->a1.kv0<v>", "a1.h0->logits", "a1.h1->logits"),
    )
