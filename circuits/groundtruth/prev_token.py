"""``gt-prev-token``: copy the previous token (GPT-2 format, 1 layer, 4 heads).

Task: ``<bos> w1 w2 w3 w4`` → ``w3`` (the token before the last). The corrupted prompt
replaces ``w3`` by another word ``w3'``; answer ``w3``, distractor ``w3'``, metric logit
difference (``U = 5`` clean, ``-U`` corrupted).

Weights (residual blocks ``tok`` = one-hot token, ``pos`` = one-hot position, ``out``):

- ``wte``/``wpe``: one-hot token and position (plus the anchor, :mod:`.builder`).
- head ``a0.h0``: query at position ``i`` reads ``pos[i]`` → head dim ``i-1``; key at ``j``
  reads ``pos[j]`` → head dim ``j`` (attends to ``i-1``); value copies ``tok``, output writes
  it to ``out``.
- ``lm_head``: logit of ``t`` = ``U · out[t]``.
- heads ``a0.h1-3`` and ``m0``: zero writes (noise in their queries, keys and MLP input).

True circuit (under this corruption): ``input->a0.h0<v>`` (the copied token) and
``a0.h0->logits``. Query and key read positions only, which the corruption does not change,
so their edges have exactly zero effect.
"""

from __future__ import annotations

import random

from circuits.groundtruth.builder import (
    copy_head,
    gpt2_base,
    previous_token_attention,
    to_gpt2,
    unembed_from,
)
from circuits.groundtruth.task import GroundTruth, numbered_words, pairs, vocabulary

NAME = "gt-prev-token"
WORDS = numbered_words("w", 10)
U = 5.0


def previous_token_prompts(vocab: dict[str, int], words: list[int], seed: int, n_prompts: int):
    """``(clean, corrupted, answers, distractors)`` lists: ``<bos> w1 w2 w3 w4`` with
    distinct words, ``w3`` replaced by an unused word ``w3'`` in the corrupted prompt."""
    rng = random.Random(seed)
    clean, corrupted, answers, distractors = [], [], [], []
    for _ in range(n_prompts):
        *prompt, other = rng.sample(words, 5)
        clean.append([vocab["<bos>"], *prompt])
        corrupted.append([vocab["<bos>"], *prompt[:2], other, prompt[3]])
        answers.append(prompt[2])
        distractors.append(other)
    return clean, corrupted, answers, distractors


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary(WORDS)
    n_pos = 5
    w, layout = gpt2_base(1, len(vocab), n_pos)
    tok, pos = layout["tok"], layout["pos"]
    out = layout.add("out", w.vocab_size)
    words = [vocab[x] for x in WORDS]
    previous_token_attention(w, 0, 0, pos)
    copy_head(w, 0, 0, [tok[t] for t in words], [out[t] for t in words])
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    clean, corrupted, answers, distractors = previous_token_prompts(vocab, words, seed, n_prompts)
    return GroundTruth(
        name=NAME,
        description="copies the previous token (one head, one path)",
        model=to_gpt2(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a0.h0<v>", "a0.h0->logits"),
    )
