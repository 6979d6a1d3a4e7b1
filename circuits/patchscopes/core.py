"""Patchscopes (Ghandeharioun et al. 2024) on TransformerLens 4 ``TransformerBridge`` models.

A Patchscope takes the hidden state at a *source* (prompt, layer, position), transforms it
with a *mapping*, writes it into a *target* (prompt, layer, position), possibly of another
model, and reads what the target run then predicts after its prompt.

Layer convention (used everywhere in :mod:`circuits.patchscopes`): the hidden state at layer
``ℓ`` ∈ ``[0, n_layers]`` is the residual stream *before* block ``ℓ``
(``blocks.{ℓ}.hook_resid_pre``). ``ℓ = 0`` is the embedding output (token + position
embeddings, Gemma's scaling included) and ``ℓ = n_layers`` is the final residual
``blocks.{n_layers-1}.hook_resid_post``, *before* the final norm. For ``ℓ < n_layers`` this is
Hugging Face's ``output_hidden_states[ℓ]``; Hugging Face's last entry is taken after the final
norm, this one before it. Patching at target layer ``ℓ`` replaces the residual stream at that
point at the target position, so the patched state is what block ``ℓ`` (or, for
``ℓ = n_layers``, the final norm and unembedding) reads there; earlier blocks, and the other
positions' states at layers before ``ℓ``, are those of the unpatched target prompt.

Positions index the prompt's tokens *as the tokenizer encodes them*, special tokens included
(the bundled models' tokenizer starts every encoding with ``<bos>``, so the first word is at
position 1); negative positions count from the end (``-1`` is the last token). The target run's
output is read after the last token of the target prompt: ``logits`` are its next-token logits
and, with ``max_new_tokens > 1``, tokens are generated greedily with the patch kept in place.

Everything that can be checked without running the model (layers, positions, hidden sizes,
mappings that declare their sizes, node names) is checked before any forward pass, and a
:class:`PatchscopeError` names the valid range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from circuits.hook_names import residual_hook, writer_node
from circuits.patchscopes.errors import PatchscopeError
from circuits.patchscopes.mappings import as_mapping

__all__ = [
    "PatchscopeError",
    "PatchscopeResult",
    "Site",
    "encode_prompt",
    "hidden_states",
    "hook_name",
    "node_output",
    "patchscope",
    "patchscope_batch",
    "residual_stream",
    "run_patched",
]


Prompt = str | Sequence[int] | torch.Tensor


@dataclass(frozen=True)
class Site:
    """A place in a run: ``prompt`` (text, or token ids including any BOS), ``layer`` in
    ``[0, n_layers]`` (the residual stream before block ``layer``, see the module docstring)
    and token ``position`` (negative counts from the end)."""

    prompt: Any
    layer: int
    position: int = -1


SourceLike = Site | tuple | torch.Tensor
TargetLike = Site | tuple


@dataclass
class PatchscopeResult:
    """What the target run produced with the patch in place.

    Attributes:
        logits: ``[vocab]`` float32 next-token logits after the last token of the target prompt.
        tokens: greedily generated token ids (``max_new_tokens`` of them; the first is
            ``logits.argmax()``).
        text: ``tokens`` decoded with the target tokenizer (``None`` without a tokenizer).
        source: the source :class:`Site` (``None`` when a vector was patched in).
        target: the target :class:`Site`, with its position made non-negative.
        vector: the ``[d_model_target]`` state that was written (after the mapping).
    """

    logits: torch.Tensor
    tokens: list[int]
    text: str | None
    source: Site | None
    target: Site
    vector: torch.Tensor = field(repr=False)

    @property
    def top_token(self) -> int:
        """The arg-max next token (= ``tokens[0]``)."""
        return int(self.tokens[0])

    def log_probs(self) -> torch.Tensor:
        """``[vocab]`` next-token log-probabilities."""
        return torch.log_softmax(self.logits.float(), dim=-1)

    def top(self, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` most likely next tokens as ``(token id, probability)``."""
        probs = self.log_probs().exp()
        values, ids = probs.topk(min(k, probs.numel()))
        return [(int(i), float(v)) for i, v in zip(ids, values, strict=True)]


# --------------------------------------------------------------------------- model helpers


def n_layers_of(model: Any) -> int:
    return int(model.cfg.n_layers)


def d_model_of(model: Any) -> int:
    return int(model.cfg.d_model)


def _device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _dtype(model: Any) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def hook_name(model: Any, layer: int) -> str:
    """The bridge hook whose output is the hidden state at ``layer`` (see the module
    docstring): ``blocks.{layer}.hook_resid_pre``, or the last block's ``hook_resid_post`` for
    ``layer == n_layers``."""
    check_layer(model, layer)
    return residual_hook(layer, n_layers_of(model))


def check_layer(model: Any, layer: Any, what: str = "layer") -> int:
    n = n_layers_of(model)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise PatchscopeError(f"{what} must be an int in 0..{n}, got {layer!r}")
    if not 0 <= layer <= n:
        raise PatchscopeError(
            f"{what} {layer} is out of range: this model has {n} layers, so valid layers are "
            f"0..{n} (0 = embeddings, {n} = final residual before the last norm)"
        )
    return layer


def check_position(position: Any, length: int, what: str = "position") -> int:
    """``position`` made non-negative for a prompt of ``length`` tokens."""
    if isinstance(position, bool) or not isinstance(position, int):
        raise PatchscopeError(f"{what} must be an int, got {position!r}")
    if not -length <= position < length:
        raise PatchscopeError(
            f"{what} {position} is beyond the prompt: it has {length} tokens, so valid "
            f"positions are 0..{length - 1} (or -{length}..-1 from the end)"
        )
    return position % length


def _tokenizer_of(model: Any, tokenizer: Any) -> Any:
    return tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)


def encode_prompt(model: Any, prompt: Prompt, tokenizer: Any = None) -> list[int]:
    """Token ids of ``prompt``: text is encoded with ``tokenizer`` (default: the bridge's)
    with its special tokens; ids (a list or a 1-D / ``[1, pos]`` tensor) are used as given."""
    if isinstance(prompt, str):
        tok = _tokenizer_of(model, tokenizer)
        if tok is None:
            raise PatchscopeError(
                "a text prompt needs a tokenizer: pass tokenizer=... or token ids instead"
            )
        from circuits.tasks.encode import token_ids

        ids = token_ids(tok, [prompt])[0]
    elif isinstance(prompt, torch.Tensor):
        t = prompt.detach()
        if t.dim() == 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 1 or t.is_floating_point():
            raise PatchscopeError(
                f"a token prompt must be a 1-D integer tensor, got shape {tuple(prompt.shape)} "
                f"of {prompt.dtype}"
            )
        ids = [int(i) for i in t.tolist()]
    elif isinstance(prompt, Sequence) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in prompt
    ):
        ids = [int(i) for i in prompt]
    else:
        raise PatchscopeError(
            f"a prompt is text, a list of token ids or a 1-D tensor, got {type(prompt).__name__}"
        )
    if not ids:
        raise PatchscopeError(f"prompt {prompt!r} has no tokens")
    vocab = int(model.cfg.d_vocab)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise PatchscopeError(f"token ids {bad[:5]} are outside the vocabulary 0..{vocab - 1}")
    return ids


def _pad(rows: Sequence[Sequence[int]], pad: int, device: torch.device):
    from circuits.tasks.encode import pad_rows

    tokens, mask = pad_rows(rows, pad)
    return tokens.to(device), mask.to(device)


def _pad_id(model: Any, tokenizer: Any = None) -> int:
    from circuits.tasks.encode import pad_id

    return pad_id(_tokenizer_of(model, tokenizer))


# --------------------------------------------------------------------------- reading states


def residual_stream(
    model: Any,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """One no-grad run of ``tokens`` ``[batch, pos]``: ``({layer: [batch, pos, d_model]},
    logits [batch, pos, vocab])`` with the hidden states of ``layers`` (default all,
    ``0..n_layers``)."""
    if layers is None:
        layers = range(n_layers_of(model) + 1)
    names = {layer: hook_name(model, layer) for layer in layers}
    store: dict[int, torch.Tensor] = {}

    def saver(layer: int) -> Callable:
        def save(t, hook):  # keyed by closure: hook.name may differ from the registered name
            store[layer] = t.detach()
            return t

        return save

    hooks = [(name, saver(layer)) for layer, name in names.items()]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, attention_mask=attention_mask)
    return store, logits


def _is_site_like(obj: Any) -> bool:
    """A :class:`Site`, or a ``(prompt, layer[, position])`` tuple (not a tuple of sites)."""
    return isinstance(obj, Site) or (
        isinstance(obj, tuple) and len(obj) in (2, 3) and not isinstance(obj[1], (Site, tuple))
    )


def _as_site(obj: Any, what: str) -> Site:
    if isinstance(obj, Site):
        return obj
    if _is_site_like(obj):
        return Site(*obj)
    raise PatchscopeError(
        f"{what} must be a Site or a (prompt, layer, position) tuple, got {type(obj).__name__}"
    )


def _resolve_sites(
    model: Any, sites: Sequence[Site], tokenizer: Any, what: str
) -> tuple[list[list[int]], list[Site]]:
    """Encode and validate sites: ids per site and sites with non-negative positions."""
    ids_out, sites_out = [], []
    for i, site in enumerate(sites):
        label = what if len(sites) == 1 else f"{what} {i}"
        check_layer(model, site.layer, f"{label} layer")
        ids = encode_prompt(model, site.prompt, tokenizer)
        pos = check_position(site.position, len(ids), f"{label} position")
        ids_out.append(ids)
        sites_out.append(Site(site.prompt, site.layer, pos))
    return ids_out, sites_out


def _gather_states(
    model: Any,
    ids: Sequence[list[int]],
    sites: Sequence[Site],
    tokenizer: Any = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """``[n, d_model]`` hidden states of validated sites (one forward per batch of prompts)."""
    out = torch.empty(len(sites), d_model_of(model), dtype=_dtype(model), device=_device(model))
    unique: dict[tuple[int, ...], int] = {}
    row_of = [unique.setdefault(tuple(r), len(unique)) for r in ids]
    prompts = list(unique)
    pad = _pad_id(model, tokenizer)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        members = [i for i, r in enumerate(row_of) if start <= r < start + len(chunk)]
        layers = sorted({sites[i].layer for i in members})
        tokens, mask = _pad(chunk, pad, _device(model))
        states, _ = residual_stream(model, tokens, mask, layers)
        for i in members:
            out[i] = states[sites[i].layer][row_of[i] - start, sites[i].position]
    return out


def hidden_states(
    model: Any, sites: Sequence[SourceLike] | SourceLike, *, tokenizer: Any = None
) -> torch.Tensor:
    """The hidden state at each site: ``[n, d_model]`` for a list, ``[d_model]`` for one
    :class:`Site` or ``(prompt, layer, position)`` tuple."""
    single = _is_site_like(sites)
    resolved = [_as_site(s, "site") for s in ([sites] if single else sites)]
    ids, resolved = _resolve_sites(model, resolved, tokenizer, "site")
    states = _gather_states(model, ids, resolved, tokenizer)
    return states[0] if single else states


# --------------------------------------------------------------------------- patched runs


def _patch_hooks(
    model: Any,
    layers: Sequence[int],
    rows: Sequence[int],
    positions: Sequence[int],
    vectors: torch.Tensor,
) -> list:
    """Hooks that write ``vectors[i]`` into the residual stream at ``layers[i]``, batch row
    ``rows[i]``, position ``positions[i]``."""
    by_layer: dict[int, list[int]] = {}
    for i, layer in enumerate(layers):
        by_layer.setdefault(int(layer), []).append(i)
    hooks = []
    for layer, idx in sorted(by_layer.items()):
        sel = torch.tensor(idx, dtype=torch.long, device=vectors.device)
        r = torch.tensor([rows[i] for i in idx], dtype=torch.long)
        p = torch.tensor([positions[i] for i in idx], dtype=torch.long)
        v = vectors.index_select(0, sel)

        def patch(t, hook, r=r, p=p, v=v):
            t = t.clone()
            t[r.to(t.device), p.to(t.device)] = v.to(device=t.device, dtype=t.dtype)
            return t

        hooks.append((hook_name(model, layer), patch))
    return hooks


def run_patched(
    model: Any,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    layers: Sequence[int],
    rows: Sequence[int],
    positions: Sequence[int],
    vectors: torch.Tensor,
) -> torch.Tensor:
    """No-grad logits ``[batch, pos, vocab]`` of ``tokens`` with ``vectors[i]`` written into the
    hidden state at ``layers[i]`` (see the module docstring), row ``rows[i]``, position
    ``positions[i]`` (``0 ≤ positions[i] < tokens.shape[1]``). Several patches may share a row
    (at other layers or positions)."""
    n = len(layers)
    if not (len(rows) == len(positions) == n == vectors.shape[0]):
        raise PatchscopeError(
            f"layers, rows, positions and vectors must have one entry per patch, got "
            f"{n}, {len(rows)}, {len(positions)}, {vectors.shape[0]}"
        )
    batch, width = tokens.shape
    for layer in layers:
        check_layer(model, int(layer))
    for r, p in zip(rows, positions, strict=True):
        if not 0 <= r < batch:
            raise PatchscopeError(f"row {r} is out of range for a batch of {batch}")
        if not 0 <= p < width:  # negative positions would count from the padded end
            raise PatchscopeError(
                f"position {p} is beyond the prompt: the batch has {width} token positions, so "
                f"valid positions are 0..{width - 1} (run_patched takes no negative positions)"
            )
    d = d_model_of(model)
    if vectors.dim() != 2 or vectors.shape[1] != d:
        raise PatchscopeError(
            f"patch vectors must be [n, {d}] for this model (hidden size {d}), got "
            f"{tuple(vectors.shape)}"
        )
    hooks = _patch_hooks(model, layers, rows, positions, vectors)
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return model(tokens, attention_mask=attention_mask)


# --------------------------------------------------------------------------- Patchscope


def _is_vector(obj: Any) -> bool:
    return isinstance(obj, torch.Tensor) and obj.is_floating_point()


def patchscope_batch(
    model: Any,
    sources: Sequence[SourceLike] | torch.Tensor,
    targets: Sequence[TargetLike] | TargetLike,
    *,
    mapping: Any = None,
    target_model: Any = None,
    max_new_tokens: int = 1,
    tokenizer: Any = None,
    target_tokenizer: Any = None,
    batch_size: int = 64,
) -> list[PatchscopeResult]:
    """Many Patchscopes at once: source ``i`` is patched into target ``i``.

    The sources' hidden states come from one forward pass per ``batch_size`` distinct source
    prompts, and every (source, target) pair is one row of the target runs (right-padded,
    so pairs with different prompts, layers and positions share a forward pass).

    Args:
        model: the source ``TransformerBridge``.
        sources: :class:`Site` objects or ``(prompt, layer, position)`` tuples, or vectors
            (a ``[n, d]`` tensor or a list of ``[d]`` tensors, e.g. from :func:`node_output`).
        targets: one target per source, or a single target used for all of them.
        mapping: applied to the source states before patching: ``None`` (identity; the hidden
            sizes must match), a :class:`~circuits.patchscopes.mappings.Mapping`, a fitted
            :class:`~circuits.patchscopes.mappings.Affine`, or a callable ``[n, d_in] ->
            [n, d_out]``.
        target_model: the model patched into (default ``model``): cross-model patching.
        max_new_tokens: greedy tokens generated after each target prompt, the patch kept.
        tokenizer / target_tokenizer: for text prompts (default: each bridge's own).
        batch_size: rows per forward pass.

    Raises:
        PatchscopeError: before any forward pass, for layers or positions out of range,
            hidden sizes that do not match without a mapping, or a mapping whose declared
            sizes do not fit the models.
    """
    target_model = model if target_model is None else target_model
    if target_model is not model and target_tokenizer is None:
        target_tokenizer = getattr(target_model, "tokenizer", None)
    elif target_tokenizer is None:
        target_tokenizer = tokenizer
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise PatchscopeError(f"max_new_tokens must be an int ≥ 1, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise PatchscopeError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    sources, targets = _paired(sources, targets)
    d_tgt = d_model_of(target_model)
    src = _Sources.resolve(model, sources, tokenizer)
    mapper = as_mapping(mapping, d_in=src.d_in, d_out=d_tgt)
    tgt_ids, targets = _resolve_sites(target_model, targets, target_tokenizer, "target")
    vectors = _mapped_states(model, target_model, src, mapper, tokenizer, batch_size)
    return _run_targets(
        target_model, target_tokenizer, tgt_ids, targets, vectors, src.site_of_row(),
        max_new_tokens, batch_size,
    )  # fmt: skip


def _paired(
    sources: Sequence[SourceLike] | torch.Tensor, targets: Sequence[TargetLike] | TargetLike
) -> tuple[list, list[Site]]:
    """The sources as a list (sites or ``[d]`` vectors) and one target :class:`Site` each."""
    if isinstance(sources, torch.Tensor):
        if not sources.is_floating_point() or sources.dim() not in (1, 2):
            raise PatchscopeError(
                "sources given as a tensor must be float vectors [n, d] (or one [d]); give "
                "token prompts as Site(prompt, layer, position)"
            )
        sources = list(sources[None] if sources.dim() == 1 else sources)
    sources = [sources] if _is_site_like(sources) else list(sources)
    if not sources:
        raise PatchscopeError("no sources given")
    if _is_site_like(targets):
        targets = [targets] * len(sources)
    targets = [_as_site(t, "target") for t in targets]
    if len(targets) != len(sources):
        raise PatchscopeError(f"{len(sources)} sources but {len(targets)} targets")
    return sources, targets


@dataclass
class _Sources:
    """A batch's sources, checked: which rows are sites (resolved to token ids) and which
    are given vectors, and the hidden size ``d_in`` they share."""

    items: list
    site_idx: list[int]
    vec_idx: list[int]
    ids: list
    sites: list[Site]
    d_in: int

    @classmethod
    def resolve(cls, model: Any, sources: list, tokenizer: Any) -> _Sources:
        """``sources`` checked: sites resolved against ``model``, vectors 1-D, one width."""
        site_idx = [i for i, s in enumerate(sources) if not _is_vector(s)]
        vec_idx = [i for i, s in enumerate(sources) if _is_vector(s)]
        src_sites = [_as_site(sources[i], "source") for i in site_idx]
        src_ids, src_sites = _resolve_sites(model, src_sites, tokenizer, "source")
        for i in vec_idx:
            v = sources[i]
            if v.dim() != 1:
                raise PatchscopeError(f"source vector {i} must be 1-D [d], got {tuple(v.shape)}")
        width = {sources[i].shape[0] for i in vec_idx} | (
            {d_model_of(model)} if site_idx else set()
        )
        if len(width) > 1:
            raise PatchscopeError(f"source vectors have different sizes {sorted(width)}")
        (d_in,) = width
        return cls(sources, site_idx, vec_idx, src_ids, src_sites, d_in)

    def site_of_row(self) -> dict[int, Site]:
        """The source :class:`Site` of each row given as one (vector rows have none)."""
        return {i: self.sites[j] for j, i in enumerate(self.site_idx)}


def _mapped_states(
    model: Any, target_model: Any, src: _Sources, mapper: Any, tokenizer: Any, batch_size: int
) -> torch.Tensor:
    """``[n, d_target]``: each source's hidden state (read from ``model``, or the vector
    given), passed through the mapping, on the target model's device and dtype."""
    n, d_tgt = len(src.items), d_model_of(target_model)
    states: list[torch.Tensor | None] = [None] * n
    if src.site_idx:
        gathered = _gather_states(model, src.ids, src.sites, tokenizer, batch_size)
        for j, i in enumerate(src.site_idx):
            states[i] = gathered[j]
    for i in src.vec_idx:
        states[i] = src.items[i].detach()
    stacked = torch.stack(
        [s.to(device=_device(model), dtype=_dtype(model)) for s in states]  # type: ignore[union-attr]
    )
    vectors = mapper(stacked)
    if vectors.dim() != 2 or vectors.shape != (n, d_tgt):
        raise PatchscopeError(
            f"the mapping returned shape {tuple(vectors.shape)}; the target model needs "
            f"[{n}, {d_tgt}] (its hidden size is {d_tgt})"
        )
    return vectors.to(device=_device(target_model), dtype=_dtype(target_model))


def _run_targets(
    target_model: Any,
    target_tokenizer: Any,
    tgt_ids: list,
    targets: list[Site],
    vectors: torch.Tensor,
    sites_by_row: dict[int, Site],
    max_new_tokens: int,
    batch_size: int,
) -> list[PatchscopeResult]:
    """The target runs, ``batch_size`` pairs per forward pass, each with its vector patched
    in, and a result per pair."""
    pad = _pad_id(target_model, target_tokenizer)
    results: list[PatchscopeResult] = []
    for start in range(0, len(targets), batch_size):
        stop = min(start + batch_size, len(targets))
        first_logits, generated = _generate(
            target_model, pad, tgt_ids, targets, vectors, start, stop, max_new_tokens
        )
        tok = _tokenizer_of(target_model, target_tokenizer)
        for row in range(stop - start):
            i = start + row
            text = tok.decode(generated[row]) if tok is not None else None
            results.append(
                PatchscopeResult(
                    logits=first_logits[row],
                    tokens=generated[row],
                    text=text,
                    source=sites_by_row.get(i),
                    target=targets[i],
                    vector=vectors[i].detach().cpu(),
                )
            )
    return results


def _generate(
    target_model: Any,
    pad: int,
    tgt_ids: list,
    targets: list[Site],
    vectors: torch.Tensor,
    start: int,
    stop: int,
    max_new_tokens: int,
) -> tuple[torch.Tensor, list[list[int]]]:
    """``(first step's logits [rows, vocab], generated tokens per row)`` for targets
    ``start:stop``: greedy generation with the patch kept and no cache (every step reruns the
    whole sequence)."""
    seqs = [list(tgt_ids[i]) for i in range(start, stop)]
    first_logits = None
    generated: list[list[int]] = [[] for _ in seqs]
    for _ in range(max_new_tokens):
        tokens, mask = _pad(seqs, pad, _device(target_model))
        logits = run_patched(
            target_model,
            tokens,
            mask,
            layers=[targets[i].layer for i in range(start, stop)],
            rows=list(range(stop - start)),
            positions=[targets[i].position for i in range(start, stop)],
            vectors=vectors[start:stop],
        )
        last = torch.tensor([len(s) - 1 for s in seqs], device=logits.device)
        step = logits[torch.arange(len(seqs), device=logits.device), last]
        if first_logits is None:
            first_logits = step.float().cpu()
        nxt = step.argmax(dim=-1).tolist()
        for row, token in enumerate(nxt):
            seqs[row].append(int(token))
            generated[row].append(int(token))
    return first_logits, generated


def patchscope(
    model: Any,
    source: SourceLike,
    target: TargetLike,
    *,
    mapping: Any = None,
    target_model: Any = None,
    max_new_tokens: int = 1,
    tokenizer: Any = None,
    target_tokenizer: Any = None,
) -> PatchscopeResult:
    """One Patchscope: the hidden state at ``source`` (a :class:`Site`, a ``(prompt, layer,
    position)`` tuple, or a ``[d]`` vector such as :func:`node_output`'s), passed through
    ``mapping``, written into ``target`` (a :class:`Site` or tuple) of ``target_model``
    (default ``model``); returns what the target run predicts after its prompt.

    See :func:`patchscope_batch` for the arguments and the errors, and the module docstring
    for the layer convention."""
    if _is_vector(source) and source.dim() != 1:
        raise PatchscopeError(
            f"a source vector must be 1-D [d], got {tuple(source.shape)}; use patchscope_batch "
            "for several"
        )
    return patchscope_batch(
        model,
        [source],
        target,
        mapping=mapping,
        target_model=target_model,
        max_new_tokens=max_new_tokens,
        tokenizer=tokenizer,
        target_tokenizer=target_tokenizer,
    )[0]


# --------------------------------------------------------------------------- circuit nodes


def node_output(
    model: Any,
    node: str | Sequence[str],
    prompt: Prompt,
    position: int = -1,
    *,
    tokenizer: Any = None,
    graph: Any = None,
) -> torch.Tensor:
    """The write of circuit-graph node ``node`` into the residual stream at ``position`` of
    ``prompt``, a ``[d_model]`` vector (``[k, d_model]`` for a list of ``k`` nodes, all from
    one forward pass): ``input`` (the embeddings, = the layer-0 hidden state), ``a{l}.h{h}``
    (head ``h``'s result, ``blocks.{l}.attn.hook_result``; on Gemma-2 passed through the
    post-attention norm as :mod:`attribution.sites` defines it) or ``m{l}`` (the MLP output).
    Node names are those of :mod:`graphs.layout`. Use it as a Patchscope source:
    ``patchscope(model, node_output(model, "a1.h2", prompt, 5), target)``.

    ``graph`` (optional): a :class:`graphs.Graph` of this model (e.g. a discovered circuit);
    it is checked against the model and its layout is used.
    """
    from attribution.passes import collect_writes
    from graphs import Graph

    if graph is None:
        graph = Graph.from_model(model)
    else:
        graph.check_compatible(model)
    names = [node] if isinstance(node, str) else list(node)
    if not names:
        raise PatchscopeError("no node names given")
    rows = [writer_node(graph, name, PatchscopeError).forward_index for name in names]
    ids = encode_prompt(model, prompt, tokenizer)
    pos = check_position(position, len(ids))
    tokens, mask = _pad([ids], _pad_id(model, tokenizer), _device(model))
    writes, _ = collect_writes(model, graph, tokens, mask, _dtype(model))
    out = writes[0, pos, rows]
    return out[0] if isinstance(node, str) else out
