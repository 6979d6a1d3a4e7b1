"""Intervention sites: where in a run an alignment intervention reads and writes.

A :class:`Site` names one hook of a ``TransformerBridge`` (``blocks.{l}.hook_resid_pre``,
``blocks.{l}.hook_mlp_out``, ``blocks.{l}.attn.hook_result`` with a head index, ...) and the
token positions the intervention acts on. Positions are

- an ``int`` (``>= 0``: an index into the tokens as the tokenizer encodes them, the leading
  ``<bos>`` included; ``< 0``: counted from each row's own last real token, so ``-1`` is the
  last token of every prompt whatever the padding),
- a list of such ints (the same intervention is applied at each position independently),
- ``"last"`` (= ``-1``), or
- the name of a position the counterfactual data carries per example (``"entity"`` for the
  entity-attribute pairs of :func:`circuits.alignment.data.entity_pairs`, where the entity
  sits at a different index in each template).

Everything that can be checked before training is checked by :func:`validate_site`: the hook
exists (otherwise the closest names are listed), the head index is in range, and the
subspace fits in the hidden size.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from circuits.hook_names import writer_hook, writer_node
from graphs.errors import CircuitDiscoveryError

__all__ = [
    "AlignmentError",
    "Site",
    "hidden_size",
    "resolve_positions",
    "site_from_node",
    "validate_site",
]


class AlignmentError(CircuitDiscoveryError, ValueError):
    """Bad alignment input (unknown hook, subspace larger than the hidden size, mismatched
    base/source batches, a saved intervention for another model); the message names the fix."""


Positions = int | str | tuple[int, ...]


@dataclass(frozen=True)
class Site:
    """One hook and the token positions an intervention acts on.

    Attributes:
        hook: a name in ``model.hook_dict``.
        positions: ``int``, tuple of ints, ``"last"`` or a named per-example position
            (see the module docstring).
        head: for hooks with a head axis (``blocks.{l}.attn.hook_result``
            ``[batch, pos, n_heads, d_model]``, ``hook_z``, ...), the head whose vector is
            intervened on; ``None`` for ``[batch, pos, d]`` hooks.
    """

    hook: str
    positions: Positions = "last"
    head: int | None = None

    def __post_init__(self) -> None:
        positions = self.positions
        if isinstance(positions, list):
            positions = tuple(positions)
        if isinstance(positions, tuple):
            if not positions or not all(isinstance(p, int) for p in positions):
                raise AlignmentError(f"site positions must be ints, got {self.positions!r}")
            if len(set(positions)) != len(positions):
                raise AlignmentError(f"site positions repeat: {self.positions!r}")
        elif not isinstance(positions, int | str) or isinstance(positions, bool):
            raise AlignmentError(
                f"site positions must be an int, a list of ints, 'last' or a named position, "
                f"got {self.positions!r}"
            )
        object.__setattr__(self, "positions", positions)

    @property
    def n_positions(self) -> int | None:
        """How many positions per example, when known without the data (``None`` for a
        named position)."""
        if isinstance(self.positions, tuple):
            return len(self.positions)
        if isinstance(self.positions, int) or self.positions == "last":
            return 1
        return None

    @property
    def label(self) -> str:
        """A short readable name: ``blocks.2.hook_resid_pre@last``, ``...hook_result[h3]@[5, 6]``."""
        head = f"[h{self.head}]" if self.head is not None else ""
        pos = self.positions
        pos = list(pos) if isinstance(pos, tuple) else pos
        return f"{self.hook}{head}@{pos}"

    @property
    def layer(self) -> int | None:
        """The block index in the hook name, if any."""
        found = re.match(r"blocks\.(\d+)\.", self.hook)
        return int(found.group(1)) if found else None

    def to_dict(self) -> dict[str, Any]:
        pos = self.positions
        return {
            "hook": self.hook,
            "positions": list(pos) if isinstance(pos, tuple) else pos,
            "head": self.head,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Site:
        pos = data.get("positions", "last")
        return cls(
            hook=str(data["hook"]),
            positions=tuple(pos) if isinstance(pos, list) else pos,
            head=data.get("head"),
        )


def site_from_node(graph_or_model: Any, node: str, positions: Positions = "last") -> Site:
    """The site of a circuit-graph node's write into the residual stream.

    ``input`` is the embedding (``blocks.0.hook_resid_pre``), ``a{l}.h{h}`` head ``h``'s result
    (``blocks.{l}.attn.hook_result``, head ``h``; the bridge must have per-head results on, as
    :func:`circuits.load_model` sets it) and ``m{l}`` the MLP output (``blocks.{l}.hook_mlp_out``).
    ``graph_or_model`` is a :class:`graphs.Graph` or a model (a graph is built from it).
    """
    from graphs import Graph

    graph = (
        graph_or_model if isinstance(graph_or_model, Graph) else Graph.from_model(graph_or_model)
    )
    hook, head = writer_hook(writer_node(graph, node, AlignmentError))
    return Site(hook, positions, head=head)


def _probe_shape(model: Any, hook: str) -> tuple[int, ...]:
    """The shape of ``hook``'s output on a 2-token input (cached per model and hook)."""
    cache = model.__dict__.setdefault("_alignment_hook_shapes", {})
    if hook in cache:
        return cache[hook]
    seen: dict[str, tuple[int, ...]] = {}

    def record(t, hook):  # key by closure: hook.name may differ from the registered name
        seen["shape"] = tuple(t.shape)
        return t

    device = next(model.parameters()).device
    tokens = torch.zeros((1, 2), dtype=torch.long, device=device)
    with torch.no_grad(), model.hooks(fwd_hooks=[(hook, record)]):
        model(tokens)
    if "shape" not in seen:
        raise AlignmentError(
            f"hook {hook!r} did not fire on a forward pass; per-head and q/k/v-input hooks need "
            "the bridge's flags on (circuits.load_model sets them)"
        )
    cache[hook] = seen["shape"]
    return seen["shape"]


def hidden_size(model: Any, site: Site) -> int:
    """Width of the vectors the site intervenes on (``d_model`` for residual sites)."""
    validate_site(model, site)
    return _probe_shape(model, site.hook)[-1]


def validate_site(model: Any, site: Site, k: int | None = None) -> int:
    """Check ``site`` against ``model`` and return its hidden size.

    Raises:
        AlignmentError: the hook does not exist (closest names listed), a head index is given
            for a hook without a head axis or is out of range, a head hook is used without a
            head, or ``k`` (subspace dimension) is not in ``1..hidden size``.
    """
    if not isinstance(site, Site):
        raise AlignmentError(f"expected a Site, got {type(site).__name__}")
    names = list(model.hook_dict)
    if site.hook not in model.hook_dict:
        close = difflib.get_close_matches(site.hook, names, n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise AlignmentError(
            f"no hook named {site.hook!r} in this model{hint} ({len(names)} hooks, e.g. "
            "'blocks.0.hook_resid_pre', 'blocks.0.hook_mlp_out', 'blocks.0.attn.hook_result')"
        )
    shape = _probe_shape(model, site.hook)
    if len(shape) == 4:
        n_heads = shape[2]
        if site.head is None:
            raise AlignmentError(
                f"hook {site.hook!r} has a head axis ({n_heads} heads); give the site a head index"
            )
        if not 0 <= site.head < n_heads:
            raise AlignmentError(
                f"head {site.head} out of range for {site.hook!r} (0..{n_heads - 1})"
            )
    elif site.head is not None:
        raise AlignmentError(
            f"hook {site.hook!r} has no head axis (shape {list(shape)}); drop head={site.head}"
        )
    elif len(shape) != 3:
        raise AlignmentError(
            f"hook {site.hook!r} has shape {list(shape)}; expected [batch, pos, d]"
        )
    d = shape[-1]
    if k is not None and not 1 <= int(k) <= d:
        raise AlignmentError(
            f"subspace dimension {k} does not fit the hidden size {d} of {site.label}; "
            f"choose 1..{d}"
        )
    return d


def resolve_positions(
    site: Site,
    mask: torch.Tensor,
    named: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``[n, k]`` token indices of the site's positions for each row of a right-padded batch
    (``mask`` ``[n, pos]``; a row's real tokens are its first ``mask.sum()`` ones).

    ``named`` maps position names to ``[n, k]`` index tensors (from the data).
    """
    n, width = mask.shape
    lengths = mask.long().sum(-1)
    pos = site.positions
    if isinstance(pos, str) and pos != "last":
        if not named or pos not in named:
            have = ", ".join(sorted(named)) if named else "none"
            raise AlignmentError(
                f"site position {pos!r} is not an int, a list of ints or 'last', and the data "
                f"carries no such named position (it has: {have})"
            )
        out = named[pos].long()
        if out.dim() == 1:
            out = out[:, None]
        if out.shape[0] != n:
            raise AlignmentError(f"named position {pos!r} has {out.shape[0]} rows for {n} examples")
    else:
        items: Sequence[int] = (-1,) if pos == "last" else (pos,) if isinstance(pos, int) else pos
        cols = []
        for p in items:
            col = torch.full((n,), p, dtype=torch.long) if p >= 0 else lengths.cpu() + p
            cols.append(col)
        out = torch.stack(cols, dim=1)
    bad = (out < 0) | (out >= lengths.cpu()[:, None])
    if bool(bad.any()):
        row = int(torch.nonzero(bad)[0, 0])
        raise AlignmentError(
            f"site {site.label}: position {out[row].tolist()} is outside example {row}'s "
            f"{int(lengths[row])} tokens"
        )
    return out
