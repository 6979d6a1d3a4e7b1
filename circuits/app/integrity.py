"""What a run folder's files must still be: the checksums ``circuits discover`` records and
every reader checks, and the identity of the prompt file a run was made with.

``metrics.json`` holds, in its ``integrity`` section, the SHA-256 of each graph file of the
folder (``files``) and of each tensor's bytes inside ``scores.safetensors`` (``tensors``).
:func:`load_checked_graph` is how the app reads a graph file (``evaluate``, ``export``,
``compare``, ``report``, ``serve``, the explorer): a graph file of a run folder whose bytes
differ from the record is refused (:class:`RunIntegrityError`, exit 2), naming the file and,
for safetensors, the damaged tensors, since a flipped byte inside a tensor reads back as a
valid but wrong graph (thousands of edges, scores of 1e27). A run folder written before
checksums were recorded is read as before, with a warning that it cannot be checked; a graph
file outside a run folder (no ``metrics.json`` beside it) has nothing to be checked against.

A run made with ``--data`` records the prompt file's absolute path and the SHA-256 of its
bytes (``task.data_file``, ``task.data_sha256`` and the graph files' metadata), so that
``evaluate``, ``serve`` and ``report`` find it from any folder and refuse a file that changed
since (:func:`check_prompt_file`) unless told ``--allow-changed-data``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from circuits.app.run import METRICS_FILE, RunFileError, RunRecord
from graphs import Graph, load_graph

__all__ = [
    "GRAPH_FILES",
    "PromptFileChangedError",
    "RunIntegrityError",
    "check_prompt_file",
    "file_digests",
    "load_checked_graph",
    "prompt_file_identity",
    "recorded_settings",
    "sha256_file",
    "tensor_digests",
    "verify_graph_file",
]

#: The graph files of a run folder that the run record keeps checksums of.
GRAPH_FILES = (
    "scores.safetensors", "graph.json", "graph.graphml", "position_graph.graphml",
    "position_graph.json",
)  # fmt: skip
_CHUNK = 1 << 20


class RunIntegrityError(RunFileError):
    """A run folder's graph file is not the one the run wrote (changed or damaged since)."""


class PromptFileChangedError(RunFileError):
    """The prompt file of a ``--data`` run is missing, or its bytes changed since the run."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tensor_digests(path: str | os.PathLike[str]) -> dict[str, str]:
    """The SHA-256 of each tensor's bytes in the safetensors file ``path``, read through its
    header's offsets (no tensor is built, so damaged data still hashes); ``{}`` when the
    header itself is unreadable."""
    with open(path, "rb") as handle:
        try:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
            spans = {
                name: tuple(entry["data_offsets"])
                for name, entry in header.items()
                if name != "__metadata__"
            }
        except (ValueError, TypeError, KeyError, AttributeError, MemoryError, OverflowError):
            return {}
        start = 8 + size
        out = {}
        for name, (begin, end) in sorted(spans.items()):
            handle.seek(start + begin)
            out[name] = hashlib.sha256(handle.read(max(0, end - begin))).hexdigest()
    return out


def file_digests(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``integrity`` section of a run folder's record: the checksum of each graph file
    present, and of each tensor of its safetensors files."""
    folder = Path(folder)
    present = [name for name in GRAPH_FILES if (folder / name).is_file()]
    return {
        "algorithm": "sha256",
        "files": {name: sha256_file(folder / name) for name in present},
        "tensors": {
            name: tensor_digests(folder / name) for name in present if name.endswith(".safetensors")
        },
    }


def verify_graph_file(path: str | os.PathLike[str], record: RunRecord | None = None) -> None:
    """RunIntegrityError when ``path`` is a graph file of a run folder whose checksum differs
    from the one in the folder's ``metrics.json``; warns when the record has none (a run
    folder of an older version); nothing for a graph file outside a run folder. ``record``:
    the folder's record when the caller has already read it (it is then not read again)."""
    path = Path(path)
    if record is None:
        if not (path.parent / METRICS_FILE).is_file():
            return
        try:
            record = RunRecord.load(path.parent)
        except RunFileError:
            return  # not a run record of ours: the graph file stands alone
    files = record.integrity.get("files") if isinstance(record.integrity, dict) else None
    if not files:
        warnings.warn(
            f"{path.parent / METRICS_FILE} records no checksums (written by an older "
            f"circuit-discovery), so {path} cannot be checked for damage; re-run "
            "`circuits discover` for a run folder whose files are checked",
            UserWarning,
            stacklevel=3,
        )
        return
    expected = files.get(path.name)
    if expected is None:
        return  # a file the run did not write (e.g. an export the user put there)
    actual = sha256_file(path)
    if actual != expected:
        raise RunIntegrityError(
            f"{path} is not the file the run wrote: its SHA-256 is {actual}, and "
            f"{path.parent / METRICS_FILE} records {expected}{_damaged_tensors(path, record)}; "
            "the file was changed or damaged after the run, so its scores and circuit cannot "
            "be trusted. Restore it from a copy, or re-run `circuits discover` to rebuild the "
            "run folder"
        )


def _damaged_tensors(path: Path, record: RunRecord) -> str:
    """`` (tensors ... differ)`` for a safetensors file whose record lists its tensors."""
    recorded = record.integrity.get("tensors", {}).get(path.name)
    if not recorded or path.suffix != ".safetensors":
        return ""
    now = tensor_digests(path)
    if not now:
        return " (its header is damaged)"
    bad = sorted(n for n in set(recorded) | set(now) if recorded.get(n) != now.get(n))
    return f" (tensor {', '.join(map(repr, bad))} differs)" if bad else ""


def load_checked_graph(path: str | os.PathLike[str], record: RunRecord | None = None) -> Graph:
    """``load_graph(path)`` after :func:`verify_graph_file` (``record``: the folder's record,
    when the caller has it)."""
    verify_graph_file(path, record)
    return load_graph(path)


def prompt_file_identity(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(absolute path, SHA-256 of its bytes)`` of a prompt file, as a run records it."""
    return str(Path(path).resolve()), sha256_file(path)


def check_prompt_file(
    path: str | os.PathLike[str] | None,
    recorded_sha256: str | None,
    *,
    allow_changed: bool = False,
    option: str = "--data",
) -> str | None:
    """PromptFileChangedError when the prompt file ``path`` of a run is missing or its bytes
    differ from ``recorded_sha256`` (unless ``allow_changed``); nothing when the run recorded
    no checksum (a task run, or an older version) or ``path`` is None. Returns the file's
    SHA-256 when it was computed (a recorded checksum to compare with), else None."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise PromptFileChangedError(
            f"the prompt file {path} does not exist (the run was made with it); pass "
            f"{option} FILE with the run's prompt file where it is now"
        )
    if recorded_sha256 is None:
        return None
    actual = sha256_file(path)
    if actual != recorded_sha256 and not allow_changed:
        raise PromptFileChangedError(
            f"the prompt file {Path(path).resolve()} has changed since the run: its SHA-256 is "
            f"{actual}, the run recorded {recorded_sha256}; pass the run's own file with "
            f"{option} FILE, or --allow-changed-data to use this one anyway"
        )
    return actual


#: What a graph file's metadata records of its run -> where the run record keeps the same.
_RUN_SETTINGS = {
    "model": ("model", "name"), "task": ("task", "name"), "metric": ("settings", "metric"),
    "ablation": ("settings", "ablation"), "seed": ("task", "seed"), "data": ("task", "data_file"),
    "counterfactual": ("task", "counterfactual"), "data_sha256": ("task", "data_sha256"),
}  # fmt: skip


def recorded_settings(metadata: dict[str, Any], folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``model``, ``task``, ``metric``, ``ablation``, ``seed``, prompt file
    (``data``), ``counterfactual`` and prompt file checksum (``data_sha256``): each as a graph
    file's metadata records it, else as the run record in ``folder`` does (a folder with some
    other ``metrics.json`` has none), else None (``data_sha256``: a task run or a run of an
    older version)."""
    recorded = {name: metadata.get(name) for name in _RUN_SETTINGS}
    recorded["data_sha256"] = metadata.get("data_sha256") or None  # "": none recorded
    if all(value is not None for value in recorded.values()):
        return recorded
    if not (Path(folder) / METRICS_FILE).is_file():
        return recorded
    try:
        record = RunRecord.load(folder)
    except RunFileError:
        return recorded  # some other metrics.json: not a run of ours
    for name, (section, key) in _RUN_SETTINGS.items():
        if recorded[name] is None:
            recorded[name] = getattr(record, section).get(key)
    return recorded


def check_run_prompt_file(
    run_dir: str | os.PathLike[str], data: str | os.PathLike[str], allow_changed: bool = False
) -> str:
    """``circuits report --data FILE``: check FILE against the run's recorded prompt file;
    returns the line to print, PromptFileChangedError when it differs."""
    task = RunRecord.load(run_dir).task
    recorded = task.get("data_sha256")
    if task.get("data_file") is None:
        raise PromptFileChangedError(
            f"{run_dir} was made with the task {task.get('name')!r}, not a prompt file, so "
            "there is no file to check; drop --data"
        )
    actual = check_prompt_file(data, recorded, allow_changed=allow_changed)
    if recorded is None:
        return (
            f"warning: {run_dir} records no checksum of its prompt file (an older run), so "
            f"{data} cannot be checked"
        )
    if actual != recorded:
        return f"warning: {data} differs from the run's prompt file (--allow-changed-data)"
    return f"{data}: the run's prompt file (SHA-256 {recorded})"
