"""``gt-trap``: a faithful copy path beside an active path that cannot move the metric
(GPT-2 format, 2 layers × 4 heads).

Task: as ``gt-prev-token``: ``<bos> w1 w2 w3 w4`` → ``w3``; the corrupted prompt replaces
``w3`` by ``w3'``; answer ``w3``, distractor ``w3'``, logit difference ``U = 5`` clean, ``-U``
corrupted.

Weights (blocks ``tok``, ``pos``, ``decoy``, ``out``):

- ``a0.h0`` (the circuit): previous-token attention; copies the word to ``out``.
- ``a0.h1`` (the decoy): the same attention; copies the word to ``decoy``. Its write changes
  under the corruption (``decoy[w3]`` → ``decoy[w3']``).
- ``m1`` (the trap reader): for each word ``w`` two neurons compute
  ``f(x) = gelu(B(x - 3/4)) - 2·gelu(B(x - 7/8))`` of ``x = decoy[w]`` (``B = 120``) and write
  ``f(x)/30`` to ``out[w]``. ``f(0) = f(1) = 0`` exactly (GELU at ``-90``/``-105`` is zero, at
  ``30``/``15`` the identity), so the MLP writes nothing on clean and corrupted prompts alike,
  but ``f'(1) = -B``: the metric's gradient with respect to the decoy is large.
- ``lm_head``: logit of ``t`` = ``U · out[t]``; other heads and ``m0`` write zero.

True circuit: ``input->a0.h0<v>``, ``a0.h0->logits``. The trap path ``input->a0.h1<v>``,
``a0.h1->m1`` is active (its write changes and is read downstream) but patching it changes
the metric by nothing; ``m1->logits`` carries no change at all. Linear attribution at the
clean point scores the trap edges at ``B · U / 30 = 20``, twice the circuit's edges.
"""

from __future__ import annotations

from circuits.groundtruth.builder import (
    copy_head,
    gpt2_base,
    previous_token_attention,
    to_gpt2,
    unembed_from,
)
from circuits.groundtruth.prev_token import previous_token_prompts
from circuits.groundtruth.task import GroundTruth, numbered_words, pairs, vocabulary

NAME = "gt-trap"
WORDS = numbered_words("w", 10)
U = 5.0
B = 120.0


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary(WORDS)
    n_pos = 5
    w, layout = gpt2_base(2, len(vocab), n_pos, d_mlp=2 * len(WORDS))
    tok, pos = layout["tok"], layout["pos"]
    decoy, out = layout.add("decoy", len(WORDS)), layout.add("out", w.vocab_size)
    words = [vocab[x] for x in WORDS]

    previous_token_attention(w, 0, 0, pos)
    copy_head(w, 0, 0, [tok[t] for t in words], [out[t] for t in words])
    previous_token_attention(w, 0, 1, pos)
    copy_head(w, 0, 1, [tok[t] for t in words], list(decoy))
    for i, t in enumerate(words):
        for neuron, (offset, weight) in enumerate(((3 / 4, 1.0), (7 / 8, -2.0))):
            n = 2 * i + neuron
            w.mlp_in[1, decoy[i], n] = B
            w.mlp_bias[1, n] = -B * offset
            w.mlp_out[1, n, out[t]] = weight / 30
    w.used_mlps.add(1)
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    clean, corrupted, answers, distractors = previous_token_prompts(vocab, words, seed, n_prompts)
    return GroundTruth(
        name=NAME,
        description="a copy path beside an active decoy path that cannot move the metric",
        model=to_gpt2(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a0.h0<v>", "a0.h0->logits"),
        trap=("input->a0.h1<v>", "a0.h1->m1"),
    )
