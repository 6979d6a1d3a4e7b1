"""``gt-ioi``: a name mover with duplicate-token (subject) inhibition through Q-composition
(GPT-2 format, 2 layers × 4 heads).

Task: ``<bos> X Y S to`` with ``S`` one of the two names ``X, Y`` (the repeated subject);
the answer is the other name, the indirect object ``IO``. The corrupted prompt repeats the
other name instead (``S' = IO``, so its answer is ``S``); answer ``IO``, distractor ``S``,
logit difference ``U = 5`` clean, ``-U`` corrupted.

Weights (blocks ``tok``, ``pos``, ``inhib`` = the inhibited name, ``out``):

- ``a0.h0`` (subject-inhibition head): the query of ``to`` (``tok[to]``) matches the key of
  position 3 (``pos[3]``), so at ``to`` it attends to the repeated name; value copies the
  name, output writes it to ``inhib``.
- ``a1.h0`` (name mover): key of a name ``n`` = ``1`` in head dim ``NAME`` and ``1`` in dim
  ``n``; query at ``to`` = ``M`` in ``NAME`` (from ``tok[to]``) minus ``2M`` in dim ``n`` for
  the name in ``inhib`` (Q-composition). Names score ``M``, the inhibited one ``-M``, other
  tokens 0: it attends to ``IO`` and copies it (value ``tok``, output ``out``).
- ``lm_head``: logit of ``t`` = ``U · out[t]``; all other heads and MLPs write zero.

True circuit: ``input->a0.h0<v>`` (which name is repeated), ``a0.h0->a1.h0<q>`` (the
Q-composition), ``input->a1.h0<k>`` (the corrupted key at position 3 carries the uninhibited name ``IO``, so
the mover splits its attention between positions 2 and 3, whose clean value is ``S``) and
``a1.h0->logits``. The mover's value edge has no effect: position 3 is never attended.
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
from circuits.groundtruth.task import GroundTruth, pairs, vocabulary

NAME = "gt-ioi"
NAMES = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon"]
U = 5.0


def build(*, seed: int = 0, noise: float = 1e-2, n_prompts: int = 16) -> GroundTruth:
    """Compile the model and draw its ``n_prompts`` prompt pairs with ``seed``."""
    tokenizer, vocab = vocabulary([*NAMES, "to"])
    n_pos = 5
    w, layout = gpt2_base(2, len(vocab), n_pos)
    tok, pos = layout["tok"], layout["pos"]
    inhib, out = layout.add("inhib", len(NAMES)), layout.add("out", w.vocab_size)
    names, to = [vocab[x] for x in NAMES], vocab["to"]

    fixed_attention(w, 0, 0, query_dim=tok[to], key_dim=pos[3])
    copy_head(w, 0, 0, [tok[t] for t in names], list(inhib))

    name_dim = len(NAMES)
    w.q[1, 0, tok[to], name_dim] = w.query_scale
    for i, t in enumerate(names):
        w.q[1, 0, inhib[i], i] = -2 * w.query_scale
        w.k[1, 0, tok[t], name_dim] = 1.0
        w.k[1, 0, tok[t], i] = 1.0
    copy_head(w, 1, 0, [tok[t] for t in names], [out[t] for t in names])
    unembed_from(w, out, U)
    w.add_noise(noise, seed)

    rng = random.Random(seed)
    clean, corrupted, answers, distractors = [], [], [], []
    bos = vocab["<bos>"]
    for _ in range(n_prompts):
        x, y = rng.sample(names, 2)
        s, io = (x, y) if rng.random() < 0.5 else (y, x)
        clean.append([bos, x, y, s, to])
        corrupted.append([bos, x, y, io, to])
        answers.append(io)
        distractors.append(s)
    return GroundTruth(
        name=NAME,
        description="IOI-like: a name mover whose query is inhibited by a subject head",
        model=to_gpt2(w),
        tokenizer=tokenizer,
        data=pairs(clean, corrupted, answers, distractors),
        circuit=("input->a0.h0<v>", "a0.h0->a1.h0<q>", "input->a1.h0<k>", "a1.h0->logits"),
    )
