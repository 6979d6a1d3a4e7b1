"""A compiled model together with its task and its ground-truth circuit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attribution.data import PromptPairs
from graphs import Graph, save_graph

__all__ = ["GroundTruth", "numbered_words", "pairs", "vocabulary"]


@dataclass
class GroundTruth:
    """A hand-compiled model, its task and the edges that carry the computation.

    Attributes:
        name: registry name (``gt-...``).
        description: one line: what the model computes.
        model: the Hugging Face model (``GPT2LMHeadModel`` or ``LlamaForCausalLM``), eval mode.
        tokenizer: its word-level ``PreTrainedTokenizerFast``.
        data: clean/corrupted prompt pairs with answers and distractors (token ids).
        circuit: names of the true circuit's edges (``"input->a0.h0<v>"``, ...).
        trap: edges of a path that is active under the corruption but does not change the
            metric (empty unless the model has one); they are *outside* the circuit.
        epsilon: proven bound on ``|exact score|`` of every edge outside the circuit.
        delta: proven lower bound on ``|exact score|`` of every edge inside it.
        metric: the metric the proof is stated for.
        places: edge name -> ``"FILE:LINE"`` where a true-edges file names it (for errors).
    """

    name: str
    description: str
    model: Any
    tokenizer: Any
    data: PromptPairs
    circuit: tuple[str, ...]
    trap: tuple[str, ...] = ()
    epsilon: float = 1e-4
    delta: float = 1.0
    metric: str = "logit_diff"
    places: dict[str, str] = field(default_factory=dict)

    def mask(self, graph: Graph, edges: tuple[str, ...] | None = None) -> torch.Tensor:
        """Bool ``[n_forward, n_backward]``: the circuit's edges (or ``edges``) in ``graph``."""
        mask = torch.zeros_like(graph.real_edges)
        for name in self.circuit if edges is None else edges:
            mask[graph.edge(name).index] = True
        return mask

    def truth_graph(self, bridge) -> Graph:
        """The model's graph with exactly the true circuit in it."""
        graph = Graph.from_model(bridge)
        graph.set_in_graph(self.mask(graph))
        return graph

    def save(self, folder: str | Path, bridge=None) -> Path:
        """Write the model and tokenizer (``save_pretrained``), ``circuit.json`` (the graph with
        the true circuit) and ``task.json`` (prompts, answers, circuit and trap edge names,
        epsilon, delta) to ``folder``; ``bridge`` (a loaded copy) is needed for the graph.
        Works also after ``load_model(truth.model)`` rewired the model in place."""
        from circuits.models.loading import unbridged

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        unbridged(self.model).save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        if bridge is not None:
            save_graph(self.truth_graph(bridge), folder / "circuit.json")
        task = {
            "name": self.name,
            "description": self.description,
            "metric": self.metric,
            "clean": self.data.clean.tolist(),
            "corrupted": self.data.corrupted.tolist(),
            "answers": self.data.answers.tolist(),
            "distractors": self.data.distractors.tolist(),
            "circuit": list(self.circuit),
            "trap": list(self.trap),
            "epsilon": self.epsilon,
            "delta": self.delta,
        }
        (folder / "task.json").write_text(json.dumps(task, indent=1) + "\n")
        return folder


def numbered_words(prefix: str, n: int) -> list[str]:
    """``n`` words ``prefix`` + the number spelt in letters (``wa wb ... wba``: 0 -> a, ...):
    one token each under the word pattern, which splits digits off (``w1`` would be two), and
    sorted like ``prefix0 ... prefix{n-1}``, so the vocabulary ids are those digits gave."""
    return [prefix + "".join("abcdefghij"[int(d)] for d in str(i)) for i in range(n)]


def vocabulary(words: list[str]) -> tuple[Any, dict[str, int]]:
    """A word-level tokenizer over ``words`` (after the four special tokens; ``<bos>`` is 2)
    and its ``word -> id`` mapping."""
    from circuits.models.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(words)
    return tokenizer, dict(tokenizer.get_vocab())


def pairs(clean: list[list[int]], corrupted: list[list[int]], answers, distractors) -> PromptPairs:
    """PromptPairs from nested lists of token ids."""
    return PromptPairs(
        clean=torch.tensor(clean),
        corrupted=torch.tensor(corrupted),
        answers=torch.tensor(answers),
        distractors=torch.tensor(distractors),
    )
