"""Clean/corrupted prompt pairs with answers, validated before any model work starts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch

from graphs.errors import CircuitDiscoveryError
from graphs.positions import check_spans


class DataError(CircuitDiscoveryError, ValueError):
    """Attribution data that cannot be used; the message names the example and the fix."""


@dataclass
class PromptPairs:
    """A batch of clean/corrupted prompt pairs.

    Attributes:
        clean: long ``[n, pos]`` clean token ids.
        corrupted: long ``[n, pos]`` corrupted token ids, same shape as ``clean``; ``None``
            for data without counterfactuals, which only methods and ablations that need no
            corrupted prompts accept (``ifr``; ``ablation="mean"`` or ``"zero"``).
        answers: long ``[n, a]`` correct answer token ids (``-1`` pads ragged rows).
        distractors: long ``[n, d]`` wrong answer ids (``-1`` pads); may have ``d == 0``.
        attention_mask: ``[n, pos]``, 1 for real tokens. Padding must be on the right, so that
            padded examples compute exactly what they would unpadded (causal attention never
            looks right). Defaults to all ones.
        positions: long ``[n]`` where the metric reads the logits; defaults to each example's
            last real token.
        spans, span_names: for position-aware attribution (see :mod:`graphs.positions`), long
            ``[n, pos]`` span index of every token (``-1`` at padding) and the spans' names;
            both None (the default) for position-agnostic scores. Set them with
            :func:`attribution.positions.with_positions`.
    """

    clean: torch.Tensor
    corrupted: torch.Tensor | None
    answers: torch.Tensor
    distractors: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    spans: torch.Tensor | None = None
    span_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.clean = _as_long(self.clean, "clean")
        if self.corrupted is not None:
            self.corrupted = _as_long(self.corrupted, "corrupted")
        n = self.clean.shape[0] if self.clean.dim() == 2 else 0
        self.answers = _as_rows(self.answers, "answers", n)
        self.distractors = (
            torch.empty(n, 0, dtype=torch.long)
            if self.distractors is None
            else _as_rows(self.distractors, "distractors", n)
        )
        if self.attention_mask is None:
            self.attention_mask = torch.ones_like(self.clean)
        self.attention_mask = torch.as_tensor(self.attention_mask).long()
        if self.positions is None and self.attention_mask.shape == self.clean.shape:
            self.positions = self.attention_mask.sum(dim=1) - 1
        self.positions = (
            _as_long(self.positions, "positions") if self.positions is not None else None
        )

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    @property
    def n_pos(self) -> int:
        return int(self.clean.shape[1])

    def validate(self, vocab_size: int | None = None) -> None:
        """Raise DataError naming the first bad example; cheap, run before any model work."""
        if self.clean.dim() != 2 or self.clean.shape[0] == 0 or self.clean.shape[1] == 0:
            raise DataError(
                f"clean tokens must be a non-empty [n, pos] tensor, got shape {tuple(self.clean.shape)}"
            )
        if self.corrupted is not None and self.corrupted.shape != self.clean.shape:
            raise DataError(
                f"clean tokens have shape {tuple(self.clean.shape)} but corrupted have {tuple(self.corrupted.shape)}: "
                "each corrupted prompt must have as many tokens as its clean prompt (pad both to one length)"
            )
        n = len(self)
        if self.attention_mask.shape != self.clean.shape:
            raise DataError(
                f"attention_mask has shape {tuple(self.attention_mask.shape)}, expected {tuple(self.clean.shape)}"
            )
        mask = self.attention_mask
        if not torch.all((mask == 0) | (mask == 1)):
            raise DataError("attention_mask must hold only 0 and 1")
        bad = torch.nonzero(mask[:, 1:] > mask[:, :-1]).flatten()
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"example {i}: padding must be on the right (mask {mask[i].tolist()}); pad with padding_side='right'"
            )
        empty = torch.nonzero(mask[:, 0] == 0).flatten()
        if len(empty):
            raise DataError(
                f"example {int(empty[0])} has no tokens (its attention mask is all zeros)"
            )
        if self.positions.shape != (n,):
            raise DataError(f"positions must have shape [{n}], got {tuple(self.positions.shape)}")
        lengths = mask.sum(dim=1)
        out_of_range = torch.nonzero((self.positions < 0) | (self.positions >= lengths)).flatten()
        if len(out_of_range):
            i = int(out_of_range[0])
            raise DataError(
                f"example {i}: metric position {int(self.positions[i])} is outside its {int(lengths[i])} real tokens"
            )
        if (self.spans is None) != (self.span_names is None):
            raise DataError(
                "spans and span_names go together: set both with "
                "attribution.positions.with_positions(data, ...)"
            )
        if self.spans is not None:
            check_spans(self.spans, mask, len(self.span_names))
        if self.answers.shape[1] == 0 or torch.any((self.answers < 0).all(dim=1)):
            i = (
                int(torch.nonzero((self.answers < 0).all(dim=1)).flatten()[0])
                if self.answers.shape[1]
                else 0
            )
            raise DataError(f"example {i} has no answer token; every example needs at least one")
        if vocab_size is not None:
            for name in ("clean", "corrupted", "answers", "distractors"):
                ids = getattr(self, name)
                if ids is None:
                    continue
                valid = (
                    ids >= 0
                    if name in ("answers", "distractors")
                    else torch.ones_like(ids, dtype=torch.bool)
                )
                bad_ids = torch.nonzero(valid & (ids >= vocab_size))
                if name in ("clean", "corrupted"):
                    bad_ids = torch.nonzero((ids < 0) | (ids >= vocab_size))
                if len(bad_ids):
                    i, j = (int(x) for x in bad_ids[0])
                    raise DataError(
                        f"example {i}: {name} token id {int(ids[i, j])} is out of the model's vocabulary "
                        f"(size {vocab_size}); were the prompts tokenized with this model's tokenizer?"
                    )

    def batches(self, batch_size: int) -> Iterator[tuple[int, PromptPairs]]:
        """Consecutive slices ``(start, batch)`` of at most ``batch_size`` examples."""
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield start, self.select(slice(start, start + batch_size))

    @property
    def has_corrupted(self) -> bool:
        """Whether the data holds corrupted (counterfactual) prompts."""
        return self.corrupted is not None

    @property
    def n_spans(self) -> int | None:
        """Spans of the position axis (None: position-agnostic)."""
        return None if self.span_names is None else len(self.span_names)

    def select(self, index) -> PromptPairs:
        return PromptPairs(
            **{f.name: _apply(getattr(self, f.name), lambda t: t[index]) for f in fields(self)}
        )

    def to(self, device) -> PromptPairs:
        return PromptPairs(
            **{f.name: _apply(getattr(self, f.name), lambda t: t.to(device)) for f in fields(self)}
        )


def _apply(value, fn):
    """``fn`` on tensor fields; the optional fields (corrupted prompts, spans) pass through
    when unset or names."""
    return fn(value) if isinstance(value, torch.Tensor) else value


def _as_long(value, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tensor.is_floating_point():
        raise DataError(f"{name} must hold integer token ids, got dtype {tensor.dtype}")
    return tensor.long()


def _as_rows(value, name: str, n: int) -> torch.Tensor:
    tensor = _as_long(value, name)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 2 or tensor.shape[0] != n:
        raise DataError(
            f"{name} must have one row per example ([{n}] or [{n}, k]), got shape {tuple(tensor.shape)}"
        )
    return tensor
