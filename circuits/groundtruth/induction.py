"""``gt-induction``: a previous-token head K-composing with an induction head (GPT-2, 2 × 4).

Task: ``<bos> A B C D A`` → ``B``. The corrupted prompt replaces ``A`` and ``B`` at positions
1-2 by two other words ``E F`` (``<bos> E F C D A``, where the induction head finds no match);
answer ``B``, distractor ``F``, logit difference ``U = 5`` clean, ``0`` corrupted.

Weights (blocks ``tok``, ``pos``, ``prev`` = previous token, ``out``; ``X`` = a head dim):

- ``a0.h0`` (previous-token head): attends ``i → i-1`` by position; value copies the word in
  ``tok`` (``<bos>`` has none), output writes it to ``prev``.
- ``a1.h0`` (induction head): query = ``2M·tok[w]`` in dim ``w`` plus ``M`` in ``X`` for every
  word ``w``; key = ``prev[w]`` in dim ``w`` plus ``tok[<bos>]`` in ``X`` (``M`` = the margin).
  It attends, with margin ``M``, to the position whose previous token equals the current one,
  else to ``<bos>``; value copies the word in ``tok``, output writes ``out``.
- ``lm_head``: logit of ``t`` = ``U · out[t]``; all other heads and MLPs write zero.

True circuit: ``input->a0.h0<v>`` and ``a0.h0->a1.h0<k>`` (K-composition: moving ``A`` into
the key of position 2), ``input->a1.h0<v>`` (the copied ``B``) and ``a1.h0->logits``. The
induction query reads the last token, which the corruption keeps, so its edges do nothing.
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

NAME = "gt-induction"
WORDS = numbered_words("w", 12)
U = 5.0


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary(WORDS)
    n_pos = 6
    w, layout = gpt2_base(2, len(vocab), n_pos)
    tok, pos = layout["tok"], layout["pos"]
    prev, out = layout.add("prev", len(WORDS)), layout.add("out", w.vocab_size)
    words = [vocab[x] for x in WORDS]

    previous_token_attention(w, 0, 0, pos)
    copy_head(w, 0, 0, [tok[t] for t in words], list(prev))

    x_dim = len(WORDS)  # head dim of the <bos> fallback
    for i, t in enumerate(words):
        w.q[1, 0, tok[t], i] = 2 * w.query_scale
        w.q[1, 0, tok[t], x_dim] = w.query_scale
        w.k[1, 0, prev[i], i] = 1.0
    w.k[1, 0, tok[vocab["<bos>"]], x_dim] = 1.0
    copy_head(w, 1, 0, [tok[t] for t in words], [out[t] for t in words])
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    rng = random.Random(seed)
    clean, corrupted, answers, distractors = [], [], [], []
    bos = vocab["<bos>"]
    for _ in range(n_prompts):
        a, b, c, d, e, f = rng.sample(words, 6)
        clean.append([bos, a, b, c, d, a])
        corrupted.append([bos, e, f, c, d, a])
        answers.append(b)
        distractors.append(f)
    return GroundTruth(
        name=NAME,
        description="induction: previous-token head K-composes with an induction head",
        model=to_gpt2(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a0.h0<v>", "a0.h0->a1.h0<k>", "input->a1.h0<v>", "a1.h0->logits"),
    )
