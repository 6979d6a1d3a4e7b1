"""Your own ground truth: a model folder plus the file of its true edges.

``from_folder(folder, "edges.json")`` reads a model folder written by ``truth.save(folder)``
(or ``save_pretrained`` plus a ``task.json`` holding the prompts as token ids) and a JSON
list of edge names; :func:`circuits.groundtruth.registry.register` makes it a named model and
``circuits benchmark --model-dir FOLDER --true-edges FILE`` scores every method against it.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from circuits.groundtruth.task import GroundTruth, pairs
from graphs.errors import CircuitDiscoveryError

__all__ = ["TASK_KEYS", "GroundTruthError", "check_edges", "from_folder", "read_true_edges"]

#: What ``task.json`` must hold: token-id lists of the prompt pairs (as ``truth.save`` writes).
TASK_KEYS = ("clean", "corrupted", "answers", "distractors")

_EDGE_FORMAT = (
    'write a JSON list of edge names such as ["input->a0.h0<v>", "a0.h0->logits"] '
    "(docs/ground_truth.md#your-own-ground-truth)"
)


_BETWEEN_ITEMS = re.compile(r"[ \t\r\n,]*")  # JSON's whitespace and the list's commas


class GroundTruthError(CircuitDiscoveryError, ValueError):
    """A ground-truth model folder or true-edges file that cannot be used."""


def read_true_edges(path: str | Path) -> dict[str, str]:
    """Edge name -> ``"FILE:LINE"`` where it is written, from a JSON list of edge names;
    :class:`GroundTruthError` with the place for a missing, malformed or empty file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise GroundTruthError(f"cannot read the true-edges file {path}: {err}") from None
    try:
        edges = json.loads(text)
    except json.JSONDecodeError as err:
        raise GroundTruthError(
            f"{path}:{err.lineno}:{err.colno}: not JSON ({err.msg}); {_EDGE_FORMAT}"
        ) from None
    if not isinstance(edges, list) or not edges:
        raise GroundTruthError(f"{path}:1: expected a non-empty list of edge names; {_EDGE_FORMAT}")
    places: dict[str, str] = {}
    for i, (name, line) in enumerate(zip(edges, _item_lines(text), strict=True)):
        if not isinstance(name, str):
            raise GroundTruthError(
                f"{path}:{line}: item {i} is {name!r}, not an edge name; {_EDGE_FORMAT}"
            )
        places.setdefault(name, f"{path}:{line}")
    return places


def _item_lines(text: str) -> list[int]:
    """The 1-based line of each item of the JSON list ``text`` (already parsed once), found
    in one pass over it: each item is decoded where it starts, so its line is its own (not
    that of an earlier text that spells it the same)."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    line, counted = 1, 0
    at = text.index("[") + 1
    while True:
        at = _BETWEEN_ITEMS.match(text, at).end()
        if text[at] == "]":
            return lines
        line += text.count("\n", counted, at)
        counted = at
        lines.append(line)
        _, at = decoder.raw_decode(text, at)


def check_edges(truth: GroundTruth, graph) -> None:
    """:class:`GroundTruthError` naming (with its place) each circuit or trap edge the graph of
    ``truth``'s model does not have; run before any attribution."""
    unknown = [e for e in (*truth.circuit, *truth.trap) if not _has_edge(graph, e)]
    if not unknown:
        return
    names = list(graph.edges)
    problems = []
    for edge in unknown:
        close = difflib.get_close_matches(edge, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{truth.places.get(edge, truth.name)}: unknown edge {edge!r}{hint}")
    raise GroundTruthError(
        f"{'; '.join(problems)}; the model's graph has no such edge (its {len(names)} edges look "
        f"like {', '.join(names[:2])}): fix the name, or use the model the edges were written for"
    )


def _has_edge(graph, name: str) -> bool:
    try:
        graph.edge(name)
    except (KeyError, ValueError):
        return False
    return True


def from_folder(
    folder: str | Path, true_edges: str | Path | None = None, *, name: str | None = None
) -> GroundTruth:
    """A :class:`GroundTruth` from a model folder and (or else ``task.json``'s ``circuit``)
    a true-edges file; ``name`` defaults to the folder's name."""
    from circuits.models.loading import _load_local

    folder = Path(folder)
    task = _read_task(folder)
    places = read_true_edges(true_edges) if true_edges is not None else {}
    circuit = tuple(places) or tuple(task.get("circuit") or ())
    if not circuit:
        raise GroundTruthError(
            f"{folder / 'task.json'}: no 'circuit' list and no --true-edges file; give the true "
            "edges as a file (circuits benchmark --true-edges FILE)"
        )
    model, tokenizer = _load_local(folder, True, None)
    truth = GroundTruth(
        name=name or task.get("name") or folder.name,
        description=task.get("description", f"model saved in {folder}"),
        model=model,
        tokenizer=tokenizer,
        data=pairs(*(task[key] for key in TASK_KEYS)),
        circuit=circuit,
        trap=tuple(task.get("trap") or ()) if true_edges is None else (),
        metric=task.get("metric", "logit_diff"),
        places=places,
    )
    return truth


def _read_task(folder: Path) -> dict:
    """``folder/task.json``, checked for the prompt keys."""
    path = folder / "task.json"
    if not folder.is_dir():
        raise GroundTruthError(f"model folder {folder} does not exist (write it with truth.save)")
    if not path.is_file():
        raise GroundTruthError(
            f"{path} is missing: a benchmark model folder needs its prompts as token ids, "
            f"{{{', '.join(repr(k) + ': [...]' for k in TASK_KEYS)}}}; truth.save(folder) "
            "writes it"
        )
    try:
        task = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GroundTruthError(f"{path}:{err.lineno}:{err.colno}: not JSON ({err.msg})") from None
    missing = [key for key in TASK_KEYS if key not in task] if isinstance(task, dict) else TASK_KEYS
    if missing:
        raise GroundTruthError(
            f"{path}:1: missing {', '.join(missing)} (token-id lists of the prompt pairs, as "
            "truth.save writes them)"
        )
    return task
