"""``gt-mlp-lookup``: a key-value memory in one MLP, fed by a mover head (GPT-2, 1 × 4).

Task: ``<bos> K of`` → ``V(K)``, a fixed bijection from 8 key words to 8 value words. The
corrupted prompt has another key ``K'``; answer ``V(K)``, distractor ``V(K')``, logit
difference ``U = 5`` clean, ``-U`` corrupted.

Weights (blocks ``tok``, ``pos``, ``moved`` = the key at the last position, ``out``):

- ``a0.h0`` (mover): the query of ``of`` (``tok[of]``) matches the key of position 1
  (``pos[1]``); value copies the key word, output writes it to ``moved``.
- ``m0`` (memory): neuron ``k`` has input weight ``A = 40`` on ``moved[k]`` and bias
  ``-A/2``, so it runs GELU at ``+20`` (identity) for its key and ``-20`` (exactly zero for
  ``gelu_new``) otherwise; its output weight ``2/A`` writes ``out[V(k)]``.
- ``lm_head``: logit of ``t`` = ``U · out[t]``; other heads write zero.

True circuit: ``input->a0.h0<v>``, ``a0.h0->m0``, ``m0->logits``. The MLP does not read the
token embedding (``input->m0``) and the unembedding does not read ``moved``.
"""

from __future__ import annotations

import random

from circuits.groundtruth.builder import (
    copy_head,
    fixed_attention,
    gpt2_base,
    to_gpt2,
    unembed_from,
)
from circuits.groundtruth.task import GroundTruth, numbered_words, pairs, vocabulary

NAME = "gt-mlp-lookup"
KEYS = numbered_words("k", 8)
VALUES = numbered_words("v", 8)
#: Key ``i`` maps to value ``LOOKUP[i]`` (a fixed permutation).
LOOKUP = [3, 6, 0, 5, 7, 1, 4, 2]
U = 5.0
A = 40.0


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary([*KEYS, *VALUES, "of"])
    n_pos = 3
    w, layout = gpt2_base(1, len(vocab), n_pos)
    tok, pos = layout["tok"], layout["pos"]
    moved, out = layout.add("moved", len(KEYS)), layout.add("out", w.vocab_size)
    keys, values = [vocab[x] for x in KEYS], [vocab[x] for x in VALUES]

    fixed_attention(w, 0, 0, query_dim=tok[vocab["of"]], key_dim=pos[1])
    copy_head(w, 0, 0, [tok[t] for t in keys], list(moved))
    for i in range(len(KEYS)):
        w.mlp_in[0, moved[i], i] = A
        w.mlp_bias[0, i] = -A / 2
        w.mlp_out[0, i, out[values[LOOKUP[i]]]] = 2 / A
    w.used_mlps.add(0)
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    rng = random.Random(seed)
    clean, corrupted, answers, distractors = [], [], [], []
    bos, of = vocab["<bos>"], vocab["of"]
    for _ in range(n_prompts):
        i, j = rng.sample(range(len(KEYS)), 2)
        clean.append([bos, keys[i], of])
        corrupted.append([bos, keys[j], of])
        answers.append(values[LOOKUP[i]])
        distractors.append(values[LOOKUP[j]])
    return GroundTruth(
        name=NAME,
        description="key-value lookup in one MLP, fed by a mover head",
        model=to_gpt2(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a0.h0<v>", "a0.h0->m0", "m0->logits"),
    )
