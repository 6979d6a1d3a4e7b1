"""MIB's dataset rows read as MIB's own loader reads them, per task → :class:`Example` pairs.

Matched against ``MIB_circuit_track/dataset.py`` (``HFEAPDataset``) of hannamw/MIB-circuit-track
at commit b759df3. Only the fields that loader reads for the task are read (others are
ignored); a row lacking one is reported with ``FILE:LINE`` and the fix:

- ``ioi``: ``prompt``; answer ``" " + metadata.indirect_object``, distractor
  ``" " + metadata.subject`` (MIB adds the leading space); corrupted ``<counterfactual>.prompt``,
  default counterfactual ``s2_io_flip_counterfactual``;
- ``mcqa``, ``arc-easy``, ``arc-challenge``: ``prompt``; answer ``choices.label[answerKey]`` (no
  space added); corrupted ``<counterfactual>.prompt``, distractor the counterfactual's
  ``choices.label[answerKey]``; default counterfactual ``symbol_counterfactual``;
- ``arithmetic-addition`` / ``-subtraction``: ``prompt``; answer ``str(label)``; corrupted
  ``random_counterfactual.prompt`` (MIB always uses that counterfactual), distractor
  ``str(random_counterfactual.label)``; like MIB's loader, rows whose ``operator`` is not the
  task's (``+`` / ``-``) or whose ``random_counterfactual`` is null are left out.

MIB's loader also drops rows whose answer tokenises to another length than its distractor (IOI:
also ``metadata.random_c``); here every answer must be one token, which the encoding checks
(:func:`circuits.tasks.encode.encode_examples`) before any model work.

:data:`BUNDLED` names the row files shipped with the project, written in MIB's schema for the
bundled models' vocabulary (:func:`bundled_rows` rebuilds them).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.tasks.base import Example, TaskError

__all__ = [
    "BUNDLED",
    "MIB_ROW_TASKS",
    "MIBRowError",
    "MIBRowTask",
    "bundled_rows",
    "mib_row_examples",
    "read_mib_rows",
    "row_task",
]

_MISSING = object()


class MIBRowError(TaskError):
    """Rows that MIB's loader could not read; lists every problem with its place and fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{len(problems)} problem(s) in the MIB rows:\n  " + "\n  ".join(shown) + more
        )


@dataclass(frozen=True)
class MIBRowTask:
    """How MIB's loader reads one task's rows: the fields it reads and its counterfactual."""

    name: str
    kind: str  # "ioi", "choice" or "arithmetic"
    fields: tuple[str, ...]
    counterfactual: str
    operator: str | None = None  # arithmetic: the rows kept


#: MIB's tasks (its folder names) and how its loader reads their rows.
MIB_ROW_TASKS: dict[str, MIBRowTask] = {
    "ioi": MIBRowTask(
        "ioi", "ioi", ("prompt", "metadata.indirect_object", "metadata.subject", "CF.prompt"),
        "s2_io_flip_counterfactual",
    ),
    **{
        name: MIBRowTask(
            name, "choice",
            ("prompt", "choices.label", "answerKey", "CF.prompt", "CF.choices.label", "CF.answerKey"),
            "symbol_counterfactual",
        )
        for name in ("mcqa", "arc-easy", "arc-challenge")
    },
    **{
        f"arithmetic-{op_name}": MIBRowTask(
            f"arithmetic-{op_name}", "arithmetic",
            ("prompt", "label", "operator", "CF.prompt", "CF.label"), "random_counterfactual", op,
        )
        for op_name, op in (("addition", "+"), ("subtraction", "-"))
    },
}  # fmt: skip

#: Row files shipped with the project (MIB's schema, the bundled models' vocabulary).
BUNDLED: dict[str, Path] = {
    "ioi": Path(__file__).parent / "mib_data" / "ioi.jsonl",
    "mcqa": Path(__file__).parent / "mib_data" / "mcqa.jsonl",
}


def row_task(task: str) -> MIBRowTask:
    """The MIB task named ``task`` (``arc_easy`` and ``arc-easy`` both); TaskError otherwise."""
    key = task.strip().lower().replace("_", "-")
    if key not in MIB_ROW_TASKS:
        raise TaskError(
            f"MIB defines no task {task!r}; its tasks: {', '.join(MIB_ROW_TASKS)} (other rows: "
            "the text layout of --data, see docs/guide.md)"
        )
    return MIB_ROW_TASKS[key]


def _field(row: Any, dotted: str) -> Any:
    """``row["a"]["b"]`` for ``"a.b"``; :data:`_MISSING` when a step is absent."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _label(where: str, row: dict, prefix: str, problems: list[str]) -> str | None:
    """``choices.label[answerKey]`` of ``row`` (``prefix`` names it in messages)."""
    labels, key = _field(row, "choices.label"), row.get("answerKey")
    if not isinstance(labels, list) or isinstance(key, bool) or not isinstance(key, int):
        problems.append(
            f"{where}: {prefix}choices.label must be a list and {prefix}answerKey an index into "
            f"it (MIB reads choices.label[answerKey]), got {labels!r} and {key!r}"
        )
        return None
    if not 0 <= key < len(labels):
        problems.append(
            f"{where}: {prefix}answerKey {key} is outside {prefix}choices.label ({len(labels)} "
            "labels); give the index of the correct label"
        )
        return None
    return str(labels[key])


def _missing_fields(where: str, row: dict, spec: MIBRowTask, cf: str) -> list[str]:
    out = []
    for name in spec.fields:
        path = name.replace("CF", cf)
        if _field(row, path) is _MISSING:
            out.append(
                f"{where}: no field {path!r} (MIB's {spec.name} loader reads "
                f"{', '.join(f.replace('CF', cf) for f in spec.fields)}); add it to the row"
            )
    return out


def _counterfactual_problem(where: str, row: dict, spec: MIBRowTask, cf: str) -> str | None:
    if isinstance(row.get(cf), dict) or (spec.kind == "arithmetic" and cf in row):
        return None
    have = sorted(k for k, v in row.items() if isinstance(v, dict) and "prompt" in v)
    fix = (
        "MIB's arithmetic loader always reads random_counterfactual; add it"
        if spec.kind == "arithmetic"
        else f"pass counterfactual=NAME (--counterfactual) naming one of them, or add {cf!r}"
    )
    return f"{where}: no counterfactual {cf!r}; this row has {', '.join(have) or 'none'}; {fix}"


def _example(
    where: str, row: dict, spec: MIBRowTask, cf: str, problems: list[str]
) -> Example | None:
    """One row as MIB's loader reads it; None (with problems) or a row MIB leaves out."""
    if spec.kind == "arithmetic":
        other = row.get(cf)
        if other is None or row.get("operator") != spec.operator:
            return None  # MIB's filter leaves these rows out
        if isinstance(other, dict) and other.get("prompt") is None:
            return None
    missing = _missing_fields(where, row, spec, cf)
    if missing:
        problems.extend(missing)
        return None
    prompt, corrupted = row["prompt"], row[cf]["prompt"]
    if not isinstance(prompt, str) or not isinstance(corrupted, str):
        problems.append(f"{where}: prompt and {cf}.prompt must be text")
        return None
    if spec.kind == "ioi":
        answer = " " + str(row["metadata"]["indirect_object"])
        distractor = " " + str(row["metadata"]["subject"])
    elif spec.kind == "choice":
        answer = _label(where, row, "", problems)
        distractor = _label(where, row[cf], f"{cf}.", problems)
    else:
        answer, distractor = str(row["label"]), str(row[cf]["label"])
    if answer is None or distractor is None:
        return None
    variables = {"mib_task": spec.name, "counterfactual": cf}
    return Example(prompt, corrupted, (answer,), (distractor,), variables=variables)


def mib_row_examples(
    rows: Iterable[tuple[str, Any]], task: str, *, counterfactual: str | None = None
) -> list[Example]:
    """``rows`` (``(place, row dict)``, the place a ``FILE:LINE`` for messages) of MIB task
    ``task`` as its loader reads them; MIBRowError listing every problem."""
    spec = row_task(task)
    cf = spec.counterfactual if spec.kind == "arithmetic" else counterfactual or spec.counterfactual
    problems: list[str] = []
    examples = []
    for where, row in rows:
        if not isinstance(row, dict):
            problems.append(f"{where}: a row is a JSON object, got {type(row).__name__}")
            continue
        wrong_cf = _counterfactual_problem(where, row, spec, cf)
        if wrong_cf:
            problems.append(wrong_cf)
            continue
        example = _example(where, row, spec, cf, problems)
        if example is not None:
            examples.append(example)
    if problems:
        raise MIBRowError(problems)
    if not examples:
        raise MIBRowError([f"no row of task {spec.name} left (MIB's loader keeps none)"])
    return examples


def read_mib_rows(
    path: str | Path, task: str, *, counterfactual: str | None = None
) -> list[Example]:
    """The JSON-lines file ``path`` of MIB rows (one row per line, as MIB's Hugging Face
    datasets hold them) as :func:`mib_row_examples` reads them."""
    path = Path(path)
    row_task(task)  # an unknown task fails before the file is read
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MIBRowError(
            [f"{path}: cannot read the file ({e}); give a UTF-8 JSON-lines file"]
        ) from e
    rows, problems = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{n}: not JSON ({e.msg}); write one JSON object per line")
    if problems:
        raise MIBRowError(problems)
    return mib_row_examples(rows, task, counterfactual=counterfactual)


# ------------------------------------------------------------------ the bundled row files
def _ioi_row(example: Example) -> dict[str, Any]:
    """An IOI example of the project's task in MIB's IOI schema: its ABC corrupted prompt as
    ``abc_counterfactual`` and the S2→IO flip (MIB's default counterfactual) built from it."""
    io, s = example.variables["io"], example.variables["s"]
    at = example.clean.rindex(f" {s} ")
    flip = example.clean[:at] + f" {io} " + example.clean[at + len(s) + 2 :]
    third = example.corrupted.split()[len(example.clean[:at].split())].strip(",.")
    return {
        "prompt": example.clean,
        "metadata": {"indirect_object": io, "subject": s, "random_c": third},
        "s2_io_flip_counterfactual": {"prompt": flip},
        "abc_counterfactual": {"prompt": example.corrupted},
    }


def _mcqa_row(example: Example, rng: random.Random) -> dict[str, Any]:
    """A copying example in MIB's MCQA schema: the choices are the query, the corrupted query
    and two words of the demonstrations; the counterfactual asks for the corrupted query."""
    query, other = example.answers[0].strip(), example.distractors[0].strip()
    demos = [d for d in example.variables["demos"] if d not in (query, other)][:2]
    labels = [query, other, *demos]
    rng.shuffle(labels)
    choices = {"label": labels, "text": labels}
    return {
        "prompt": example.clean,
        "choices": choices,
        "answerKey": labels.index(query),
        "query_counterfactual": {
            "prompt": example.corrupted, "choices": choices, "answerKey": labels.index(other),
        },
    }  # fmt: skip


def bundled_rows(task: str, n: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """The rows of :data:`BUNDLED` ``task``: the project's ``ioi`` (for MIB's ``ioi``) or
    ``copying`` (for ``mcqa``, counterfactual ``query_counterfactual``) examples."""
    # the task classes themselves, not the registry: the prompt-file reader imports this module
    from circuits.tasks.copying import Copying
    from circuits.tasks.ioi import IOI

    if task == "ioi":
        return [_ioi_row(e) for e in IOI().examples(n, seed=seed, split="train")]
    if task == "mcqa":
        rng = random.Random(seed)
        examples = Copying().examples(n, seed=seed, split="train")
        return [_mcqa_row(e, rng) for e in examples]
    raise TaskError(f"no bundled MIB rows for {task!r}; bundled: {', '.join(BUNDLED)}")
