"""Your own prompts from a file: JSONL or CSV rows → :class:`attribution.PromptPairs`.

Three row layouts, recognised from the columns (all rows of a file share one):

- **text**: ``clean``, ``corrupted``, ``answer`` or ``answers`` (a list), optional
  ``distractor`` / ``distractors``, ``split`` (``train``/``test``) and ``id``. Answers are
  continuations of the clean prompt, tokenised in context exactly as the bundled tasks do
  (:func:`circuits.tasks.encode.encode_examples`), so write the leading space: ``" Mary"``.
- **eap-ig** (the reference EAP-IG CSV): ``clean``, ``corrupted``, ``correct_idx`` and
  optional ``incorrect_idx``, token ids used as they are.
- **mib** (MIB's Hugging Face rows): ``prompt``, ``choices`` (a list, or
  ``{"label": [...], "text": [...]}`` whose labels are the answers), ``answerKey`` (index of
  the correct choice) and one or more counterfactuals ``NAME`` = ``{"prompt": ...}``, picked
  with ``counterfactual=NAME``. The distractor is the counterfactual's own correct choice when
  it has one and it differs, else every other choice. MIB's IOI rows (``prompt``,
  ``metadata.indirect_object`` / ``subject``, default counterfactual
  ``s2_io_flip_counterfactual``) and arithmetic rows (``prompt``, ``label``, ``operator``,
  ``random_counterfactual``) are read with only the fields MIB's loader reads for the task
  (:mod:`circuits.tasks.mib_rows`).

In CSV, a list cell is JSON (``["a", "b"]``). Without a ``split`` column the rows are split
80/20 into train/test with a seeded shuffle (:data:`TEST_FRACTION`). Repeated rows are dropped
first, and no prompt of one split occurs in the other (:mod:`circuits.tasks.file_splits`).

Any layout may give each row's spans for position-aware circuits: ``spans`` (and optionally
``corrupted_spans``), a JSON object of span names in prompt order, see
:mod:`circuits.tasks.file_spans`. Every row or none has them, all with the same names;
:attr:`PromptFile.schema` holds the names.

Every problem is reported with ``FILE:LINE``, what is wrong and the fix, all of them at once
(:class:`PromptFileError`), before any model work: :func:`read_prompt_file` checks the
structure, :func:`token_problems` what depends on the tokenizer (and the model's context
length), :func:`load_prompt_file` is the one pass over both that ``circuits data check`` and
``discover --data`` share.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attribution.data import PromptPairs
from attribution.positions import with_positions
from circuits.tasks.base import SPLITS, TEST_FRACTION, Example, TaskError
from circuits.tasks.encode import (
    encode_examples,
    extended_ids,
    measured_tokens,
    pad_id,
    pad_rows,
    span_tensor,
    token_ids,
    unknown_id,
    unknown_problem,
)
from circuits.tasks.file_spans import DuplicateKey, read_span_cells, strict_object
from circuits.tasks.file_splits import (
    drop_duplicates,
    leak_problems,
    seeded_split,
    split_problems,
)
from circuits.tasks.spans import char_problems, token_offsets, token_starts
from graphs.positions import PositionError, SpanSchema

__all__ = [
    "FORMATS",
    "PromptFile",
    "PromptFileError",
    "PromptRow",
    "load_prompt_file",
    "read_prompt_file",
    "read_rows",
    "span_token_problems",
    "token_problems",
]

#: Row layouts a prompt file may use.
FORMATS: tuple[str, ...] = ("text", "eap-ig", "mib")
#: The most problems one error message lists (the count of the rest follows).
MAX_LISTED = 20


class PromptFileError(TaskError):
    """A prompt file that cannot be used; ``problems`` holds one ``FILE:LINE: ...`` each."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        head = f"{len(self.problems)} problem(s) in the prompt file:\n  "
        super().__init__(head + "\n  ".join(shown) + tail)


@dataclass(frozen=True)
class PromptRow:
    """One row of a prompt file: text answers (``text``, ``mib``) or ids (``eap-ig``)."""

    line: int
    clean: str
    corrupted: str
    answers: tuple[str, ...] = ()
    distractors: tuple[str, ...] = ()
    answer_ids: tuple[int, ...] = ()
    distractor_ids: tuple[int, ...] = ()
    split: str | None = None
    id: str | None = None
    kind: str | None = None  # counterfactual files: "cause" or "isolate"
    span_names: tuple[str, ...] = ()  # the row's spans (file_spans), () without
    span_starts: tuple[int, ...] = ()
    corrupted_span_starts: tuple[int, ...] = ()

    def example(self) -> Example:
        return Example(
            self.clean,
            self.corrupted,
            self.answers,
            self.distractors,
            span_starts=self.span_starts,
            corrupted_span_starts=self.corrupted_span_starts,
        )


@dataclass
class PromptFile:
    """The validated rows of a prompt file with their train/test split."""

    path: Path
    format: str
    rows: list[PromptRow]
    split_source: str  # "file" (a split column) or "seeded" (an 80/20 shuffle)
    seed: int
    counterfactual: str | None = None
    splits: dict[str, list[PromptRow]] = field(default_factory=dict)
    #: The rows' span names when they give spans (``spans`` cells), else None.
    schema: SpanSchema | None = None
    #: ``(line, line of its first occurrence)`` of each duplicate row dropped before the
    #: split (:func:`circuits.tasks.file_splits.drop_duplicates`).
    duplicates: list[tuple[int, int]] = field(default_factory=list)
    #: Each row's clean prompt length in tokens, by line (filled by :func:`token_problems`).
    token_lengths: dict[int, int] = field(default_factory=dict)

    def rows_of(self, split: str) -> list[PromptRow]:
        if split not in SPLITS:
            raise PromptFileError([f"{self.path}: unknown split {split!r}; use train or test"])
        return self.splits[split]

    def encode(
        self,
        tokenizer: Any,
        split: str | None = None,
        *,
        limit: int | None = None,
        spans: bool = False,
    ) -> PromptPairs:
        """Prompt pairs of ``split`` (every row when None), the first ``limit`` rows.

        Text answers go through :func:`encode_examples`, so a row gives the same tensors as
        the equivalent bundled-task example. With ``spans`` the pairs have the file's position
        axis (``spans`` long ``[n, pos]``, ``span_names`` the :attr:`schema`); PositionError
        when the file gives no spans.
        """
        schema = self.schema if spans else None
        if spans and schema is None:
            raise PositionError(
                f"{self.path} gives no spans, so its pairs have no position axis; add a spans "
                'cell to every row ({"name": start, ...}, see docs/guide.md) or use '
                "positions='tokens'"
            )
        rows = self.rows if split is None else self.rows_of(split)
        rows = rows[:limit] if limit is not None else rows
        if not rows:
            raise PromptFileError(
                [
                    f"{self.path}: no {split} rows; add rows with split={split} or drop the split column"
                ]
            )
        if self.format != "eap-ig":
            return encode_examples([r.example() for r in rows], tokenizer, schema=schema)
        clean = token_ids(tokenizer, [r.clean for r in rows])
        corrupted = token_ids(tokenizer, [r.corrupted for r in rows])
        clean_t, mask = pad_rows(clean, pad_id(tokenizer))
        corrupted_t, _ = pad_rows(corrupted, pad_id(tokenizer))
        pairs = PromptPairs(
            clean=clean_t,
            corrupted=corrupted_t,
            answers=_id_rows([r.answer_ids for r in rows]),
            distractors=_id_rows([r.distractor_ids for r in rows]),
            attention_mask=mask,
        )
        if schema is None:
            return pairs
        span_t = span_tensor(
            tokenizer,
            [r.clean for r in rows],
            [r.span_starts for r in rows],
            schema,
            [f"{self.path}:{r.line}: the clean prompt" for r in rows],
        )
        corrupted_spans = span_tensor(
            tokenizer,
            [r.corrupted for r in rows],
            [r.corrupted_span_starts for r in rows],
            schema,
            [f"{self.path}:{r.line}: the corrupted prompt" for r in rows],
        )
        return with_positions(pairs, schema, span_t, corrupted_spans)

    def describe(self) -> dict[str, Any]:
        """What ``metrics.json`` and the report state about the data."""
        split = (
            "split column of the file"
            if self.split_source == "file"
            else f"seeded {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} shuffle (seed {self.seed})"
        )
        spans = {"file_spans": list(self.schema.names)} if self.schema is not None else {}
        return {
            "data_file": str(self.path),
            "data_format": self.format,
            "counterfactual": self.counterfactual,
            "n_rows": len(self.rows),
            "n_duplicate_rows_dropped": len(self.duplicates),
            "n_train_rows": len(self.splits["train"]),
            "n_test_rows": len(self.splits["test"]),
            "split": split,
            **spans,  # the span names the rows give, only when they do
        }


def _id_rows(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


# ---------------------------------------------------------------- reading the file


def _decode_lines(path: Path, raw: bytes, problems: list[str]) -> str | None:
    """The file as text; one problem per line that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                f"{path}:{n}: not UTF-8 text (byte {line[err.start]:#04x} at column {err.start + 1}); "
                "save the file as UTF-8"
            )
    return None


def _records(path: Path, text: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """``(line, row)`` pairs of a JSONL or CSV file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = _STRICT_JSON.decode(line)
            except DuplicateKey as err:
                problems.append(f"{path}:{n}: {err}")
                continue
            except json.JSONDecodeError as err:
                problems.append(
                    f"{path}:{n}: not valid JSON ({err.msg}); write one JSON object a line"
                )
                continue
            if not isinstance(row, dict):
                problems.append(
                    f"{path}:{n}: a JSON {type(row).__name__}, not an object; write one object a line"
                )
                continue
            out.append((n, row))
        return out
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        out = []
        for row in reader:
            if None in row:  # more cells than header columns
                problems.append(
                    f"{path}:{reader.line_num}: {len(row[None])} more cell(s) than the header's columns; "
                    "quote cells that contain commas"
                )
                continue
            out.append((reader.line_num, dict(row)))
        return out
    problems.append(f"{path}: unknown file type {suffix or '(none)'!r}; name it .jsonl or .csv")
    return []


def _layout(columns: set[str]) -> str:
    if "prompt" in columns and columns & {"choices", "metadata", "operator"}:
        return "mib"  # MCQA / ARC, IOI and arithmetic rows of MIB's datasets
    if "correct_idx" in columns:
        return "eap-ig"
    return "text"


REQUIRED = {
    "das": ("base", "source", "label", "base_label"),
    "text": ("clean", "corrupted", "answer|answers"),
    "eap-ig": ("clean", "corrupted", "correct_idx"),
    "mib": ("prompt",),  # and what MIB's loader reads for the row's task (_mib_row)
}


#: ``REQUIRED`` with each need's alternatives, split once rather than once a row.
_ALTERNATIVES = {k: [(need, need.split("|")) for need in v] for k, v in REQUIRED.items()}
#: One decoder for every line (``json.loads`` with a hook builds one a call).
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=strict_object)


def _missing(layout: str, columns: set[str]) -> list[str]:
    return [need for need, alts in _ALTERNATIVES[layout] if not any(c in columns for c in alts)]


def _cell_list(value: Any, csv_cell: bool) -> list[Any] | None:
    """A list cell: a JSON list (a JSON string in CSV), or one scalar as a one-item list."""
    if value is None or value == "":
        return []
    if csv_cell and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return list(value) if isinstance(value, list) else [value]


def _int_ids(values: list[Any]) -> list[int] | None:
    out = []
    for v in values:
        if isinstance(v, bool):
            return None
        try:
            out.append(int(str(v).strip()) if not isinstance(v, int) else v)
        except ValueError:
            return None
    return out


def _text_row(
    where: str, n: int, row: dict, csv_cell: bool, problems: list[str]
) -> PromptRow | None:
    answers = _cell_list(row.get("answers", row.get("answer")), csv_cell)
    distractors = _cell_list(row.get("distractors", row.get("distractor")), csv_cell)
    if answers is None or distractors is None:
        problems.append(
            f'{where}: a list cell is not valid JSON; write lists as [" Mary", " Anna"]'
        )
        return None
    if not answers:
        problems.append(f"{where}: no answer; give the correct continuation in answer")
        return None
    if not all(isinstance(a, str) for a in answers + distractors):
        problems.append(f"{where}: answers and distractors must be text; write them in quotes")
        return None
    return PromptRow(n, row["clean"], row["corrupted"], tuple(answers), tuple(distractors))


def _eap_row(
    where: str, n: int, row: dict, csv_cell: bool, problems: list[str]
) -> PromptRow | None:
    correct = _int_ids(_cell_list(row.get("correct_idx"), csv_cell) or [])
    incorrect = _int_ids(_cell_list(row.get("incorrect_idx"), csv_cell) or [])
    if not correct or incorrect is None:
        problems.append(
            f"{where}: correct_idx / incorrect_idx must be token ids (integers), got "
            f"{row.get('correct_idx')!r} / {row.get('incorrect_idx')!r}; write the ids, or use "
            "answer/distractor columns for text"
        )
        return None
    return PromptRow(n, row["clean"], row["corrupted"], answer_ids=tuple(correct),
                     distractor_ids=tuple(incorrect))  # fmt: skip


def _counterfactuals(row: dict) -> list[str]:
    return sorted(k for k, v in row.items() if isinstance(v, dict) and "prompt" in v)


def _choice_texts(choices: Any) -> list[str] | None:
    if isinstance(choices, dict):  # MCQA / ARC: the answer is the label ("A", "B", ...)
        choices = choices.get("label")
    if isinstance(choices, list) and all(isinstance(c, str) for c in choices):
        return choices
    return None


def _das_row(where: str, n: int, row: dict, problems: list[str]) -> PromptRow | None:
    """A counterfactual pair for DAS: base/source prompts, the intervened run's label and the
    base's own (equal labels are allowed: an uninformative pair)."""
    kind = row.get("kind") or None
    if kind not in (None, "cause", "isolate"):
        problems.append(f"{where}: kind {kind!r} is not cause or isolate")
        return None
    if not all(isinstance(row[c], str) for c in ("label", "base_label")):
        problems.append(f"{where}: label and base_label must be text continuations")
        return None
    return PromptRow(n, row["base"], row["source"], (row["label"],), (row["base_label"],),
                     kind=kind)  # fmt: skip


def _named_counterfactual(name: str, present: Any) -> str | None:
    """``name``, or ``name + "_counterfactual"`` (MIB's own spelling), whichever ``present``
    holds; None when neither."""
    return next((c for c in (name, name + "_counterfactual") if c in present), None)


def _mib_task_row(
    where: str, n: int, row: dict, counterfactual: str | None, problems: list[str]
) -> PromptRow | None:
    """A MIB IOI (``metadata``) or arithmetic (``operator``) row, read with only the fields
    MIB's loader reads for that task (:mod:`circuits.tasks.mib_rows`)."""
    from circuits.tasks.mib_rows import MIBRowError, mib_row_examples

    if "metadata" in row:
        task = "ioi"
    else:
        task = "arithmetic-subtraction" if row.get("operator") == "-" else "arithmetic-addition"
    if counterfactual is not None:
        counterfactual = _named_counterfactual(counterfactual, row) or counterfactual
    try:
        (example,) = mib_row_examples([(where, row)], task, counterfactual=counterfactual)
    except MIBRowError as err:
        problems.extend(err.problems)
        return None
    return PromptRow(n, example.clean, example.corrupted, example.answers, example.distractors)


def _mib_row(
    where: str, n: int, row: dict, counterfactual: str | None, problems: list[str]
) -> PromptRow | None:
    if "choices" not in row:
        return _mib_task_row(where, n, row, counterfactual, problems)
    names = _counterfactuals(row)
    if counterfactual is None:
        if len(names) != 1:
            problems.append(
                f"{where}: {len(names)} counterfactual prompts ({', '.join(names) or 'none'}); "
                "pick one with --counterfactual NAME"
                if names
                else f'{where}: no counterfactual prompt (a column {{"prompt": ...}}); add one'
            )
            return None
        counterfactual = names[0]
    name = _named_counterfactual(counterfactual, names)
    if name is None:
        problems.append(
            f"{where}: no counterfactual {counterfactual!r}; this row has {', '.join(names) or 'none'}"
        )
        return None
    choices, key = _choice_texts(row["choices"]), row["answerKey"]
    if (
        choices is None
        or isinstance(key, bool)
        or not isinstance(key, int)
        or not 0 <= key < len(choices)
    ):
        problems.append(
            f"{where}: choices must be a list of strings and answerKey an index into it, got "
            f"{row['choices']!r} and {key!r}"
        )
        return None
    answer = choices[key]
    cf = row[name]
    cf_choices = _choice_texts(cf.get("choices"))
    cf_key = cf.get("answerKey")
    if (
        cf_choices is not None
        and isinstance(cf_key, int)
        and 0 <= cf_key < len(cf_choices)
        and cf_choices[cf_key] != answer
    ):
        distractors = (cf_choices[cf_key],)
    else:
        distractors = tuple(c for i, c in enumerate(choices) if i != key)
    prompt, corrupted = row["prompt"], cf["prompt"]
    if not isinstance(prompt, str) or not isinstance(corrupted, str):
        problems.append(f"{where}: prompt and {name}.prompt must be text")
        return None
    return PromptRow(n, prompt, corrupted, (answer,), distractors)


def read_prompt_file(
    path: str | Path, *, counterfactual: str | None = None, seed: int = 0
) -> PromptFile:
    """Read and check a prompt file without a tokenizer (columns, text, answers, ids, splits).

    Raises:
        PromptFileError: every problem found, each naming ``FILE:LINE`` and the fix.
    """
    with _no_collection():
        prompts, problems = read_rows(Path(path), counterfactual, seed)
    if problems:
        raise PromptFileError(problems)
    return prompts


@contextmanager
def _no_collection() -> Iterator[None]:
    """No cyclic garbage collection while a file's rows are read and checked: they hold no
    cycles, and the collector's passes over the hundreds of thousands of objects a large file
    makes took as long as making them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_rows(
    path: Path, counterfactual: str | None, seed: int, layout: str | None = None
) -> tuple[PromptFile | None, list[str]]:
    """The file's valid rows (None when nothing could be read) and every problem found."""
    if not path.is_file():
        return None, [f"{path}: no such file; give the path of a .jsonl or .csv file"]
    problems: list[str] = []
    text = _decode_lines(path, path.read_bytes(), problems)
    records = _records(path, text, problems) if text is not None else []
    if text is not None and not records and not problems:
        problems.append(
            f"{path}: the file has no rows; add one row per prompt pair (see docs/guide.md)"
        )
    if problems:
        return None, problems
    csv_cells = path.suffix.lower() == ".csv"
    layout = layout or _layout(set(records[0][1]))
    if counterfactual is not None and layout != "mib":
        problems.append(
            f"{path}: --counterfactual {counterfactual!r} applies to MIB-style rows (a prompt "
            "and counterfactual prompts); this file has clean/corrupted columns, drop "
            "--counterfactual"
        )
    rows: list[PromptRow] = []
    seen_ids: dict[str, int] = {}
    quick = layout == "text" and not csv_cells
    for n, record in records:
        row = _plain_text_row(n, record) if quick else None
        if row is None:  # anything but the plain case: every check, with its messages
            row = _read_row(f"{path}:{n}", n, record, layout, counterfactual, csv_cells, problems)
            if row is None or not _unique_id(f"{path}:{n}", row, seen_ids, problems):
                continue
        rows.append(row)
    return _prompt_file(path, layout, rows, seed, counterfactual, problems), problems


#: The columns of a plain JSONL text row (see :func:`_plain_text_row`).
_ROW_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PromptRow)}
_NEW, _SET = object.__new__, object.__setattr__
_PLAIN_COLUMNS = ({"clean", "corrupted", "answer", "distractor"}, {"clean", "corrupted", "answer"})


def _plain_text_row(n: int, record: dict) -> PromptRow | None:
    """The row :func:`_read_row` makes of a JSONL text record of non-empty texts in the
    columns ``clean``, ``corrupted``, ``answer`` and optionally a ``distractor`` other than the
    answer (a large file's usual row, which can have no problem); None for any other record.
    Its checks, in one pass, are what makes reading 200,000 rows take a second, not four."""
    if record.keys() not in _PLAIN_COLUMNS:
        return None
    clean, corrupted, answer = record["clean"], record["corrupted"], record["answer"]
    distractor = record.get("distractor")
    if not (type(clean) is str and type(corrupted) is str and type(answer) is str):
        return None
    if not (clean and corrupted and answer) or answer == distractor:
        return None
    if distractor is None:
        distractors = ()
    elif type(distractor) is str and distractor:
        distractors = (distractor,)
    else:
        return None
    # the fields set at once: the frozen dataclass's __init__ sets all 13 one call at a
    # time, which was half the time of reading a large file
    row = _NEW(PromptRow)
    _SET(row, "__dict__", {**_ROW_DEFAULTS, "line": n, "clean": clean, "corrupted": corrupted,
                           "answers": (answer,), "distractors": distractors})  # fmt: skip
    return row


def _read_row(
    where: str,
    n: int,
    record: dict,
    layout: str,
    counterfactual: str | None,
    csv_cells: bool,
    problems: list[str],
) -> PromptRow | None:
    """One record as a row of ``layout`` (with its split, id and spans), or None with its
    problems added."""
    columns = {k for k, v in record.items() if v not in (None, "")}
    missing = _missing(layout, columns)
    if missing:
        problems.append(
            f"{where}: missing column(s) {', '.join(missing)}; a {layout} row needs "
            f"{', '.join(REQUIRED[layout])}"
        )
        return None
    if layout == "das":
        row = _das_row(where, n, record, problems)
    elif layout == "mib":
        row = _mib_row(where, n, record, counterfactual, problems)
    elif layout == "eap-ig":
        row = _eap_row(where, n, record, csv_cells, problems)
    else:
        row = _text_row(where, n, record, csv_cells, problems)
    if row is None:
        return None
    if not isinstance(row.clean, str) or not isinstance(row.corrupted, str):
        problems.append(f"{where}: clean and corrupted must be text")
        return None
    split = record.get("split")
    if split not in (None, "") and split not in SPLITS:
        problems.append(f"{where}: split {split!r} is not train or test")
        return None
    same = set(row.answers) & set(row.distractors) or set(row.answer_ids) & set(row.distractor_ids)
    if same and layout != "das":
        problems.append(
            f"{where}: answer {sorted(same)[0]!r} is also a distractor; the metric would compare it "
            "with itself, so remove it from one of the two"
        )
        return None
    rid = record.get("id")
    rid = None if rid in (None, "") else str(rid)
    spans = read_span_cells(record, row.clean, row.corrupted, csv_cells, where, problems)
    if spans is None:
        return None
    if split or rid is not None or spans[0]:  # replace is slow: only when it changes
        names, starts, corrupted_starts = spans
        row = dataclasses.replace(row, split=split or None, id=rid, span_names=names,
                                  span_starts=starts, corrupted_span_starts=corrupted_starts)  # fmt: skip
    return row


def _unique_id(where: str, row: PromptRow, seen: dict[str, int], problems: list[str]) -> bool:
    """False (with a problem) when ``row``'s id is one an earlier row used."""
    if row.id is not None and row.id in seen:
        problems.append(
            f"{where}: id {row.id!r} already used on line {seen[row.id]}; ids must be unique"
        )
        return False
    if row.id is not None:
        seen[row.id] = row.line
    return True


def _prompt_file(
    path: Path,
    layout: str,
    rows: list[PromptRow],
    seed: int,
    counterfactual: str | None,
    problems: list[str],
) -> PromptFile:
    """The file of ``rows``: span schema, duplicates dropped, train/test split."""
    with_split = [r for r in rows if r.split is not None]
    if with_split and len(with_split) != len(rows):
        first = next(r for r in rows if r.split is None)
        problems.append(
            f"{path}:{first.line}: no split, but other rows have one; give every row train or test, "
            "or drop the split column for a seeded 80/20 split"
        )
    schema = _schema(path, rows, problems)
    rows, duplicates = drop_duplicates(rows)  # before the split, so no pair is in both
    out = PromptFile(path, layout, rows, "file" if with_split else "seeded", seed, counterfactual)
    out.schema, out.duplicates = schema, duplicates
    held_out = layout != "das"  # DAS pairs share base prompts by design (file_splits)
    if with_split:
        out.splits = {s: [r for r in rows if r.split == s] for s in SPLITS}
        problems += leak_problems(path, out.splits) if held_out else []
    else:
        out.splits = seeded_split(rows, seed, grouped=held_out)
    return out


def _schema(path: Path, rows: list[PromptRow], problems: list[str]) -> SpanSchema | None:
    """The span names all rows share (None when no row has spans); a problem for each row
    whose names differ from the first row's, or that has none when others have."""
    first = next((r for r in rows if r.span_names), None)
    if first is None:
        return None
    for r in rows:
        if not r.span_names:
            problems.append(
                f"{path}:{r.line}: no spans, but line {first.line} has spans; give every row "
                "spans, or none"
            )
        elif r.span_names != first.span_names:
            problems.append(
                f"{path}:{r.line}: spans named {', '.join(r.span_names)}, but line {first.line} "
                f"names {', '.join(first.span_names)}; every row must name the same spans in "
                "the same order"
            )
    return SpanSchema(first.span_names)


# ---------------------------------------------------------------- checks that need a tokenizer


def _pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    convert = getattr(tokenizer, "convert_ids_to_tokens", None) or getattr(
        tokenizer, "id_to_token", None
    )
    if convert is None:
        return [str(i) for i in ids]
    out = (
        convert(list(ids))
        if hasattr(tokenizer, "convert_ids_to_tokens")
        else [convert(i) for i in ids]
    )
    return [str(p) for p in out]


def token_problems(
    prompts: PromptFile,
    tokenizer: Any,
    vocab_size: int | None = None,
    *,
    distinct: bool = True,
    sides: tuple[str, str] = ("clean", "corrupted"),
    context: int | None = None,
    positions: str | None = None,
) -> list[str]:
    """Every problem that depends on the tokenizer: words it does not know, clean/corrupted
    lengths, prompts longer than the model's ``context``, answers that are not one token
    after their prompt, answers that tokenise like a distractor, ids out of the vocabulary
    (``vocab_size``, default ``len(tokenizer)``), and with ``positions="tokens"`` rows of
    another token length than the rest (train and test together)."""
    vocab = vocab_size if vocab_size is not None else len(tokenizer)
    rows, path = prompts.rows, prompts.path
    unk = unknown_id(tokenizer)
    screened = _screen(rows, tokenizer, unk, context, distinct)
    # rows the screen passes have no problem: only the others are tokenised in full
    suspects = rows if screened is None else [rows[i] for i in screened[1]]
    clean, problems = _row_problems(path, suspects, tokenizer, vocab, unk, distinct, sides, context)
    lengths = [len(ids) for ids in clean] if screened is None else screened[0]
    prompts.token_lengths = dict(zip([r.line for r in rows], lengths, strict=True))
    if positions == "tokens":
        problems += _one_length_problems(path, rows, lengths)
    if prompts.schema is not None:
        problems += span_token_problems(prompts, tokenizer, sides)
    return problems


def _screen(
    rows: Sequence[PromptRow],
    tokenizer: Any,
    unk: int | None,
    context: int | None,
    distinct: bool,
) -> tuple[list[int], list[int]] | None:
    """``(each row's clean token length, indices of the rows that may have a problem)``,
    measured a piece at a time (:func:`measured_tokens`): a row passes when neither prompt
    holds ``unk``, their lengths are equal and within ``context``, each answer and distractor
    adds one known token and (``distinct``) no answer's token is a distractor's; rows with
    token ids go the full way. None when the tokenizer cannot be measured so."""
    n = len(rows)
    texts = [r.clean for r in rows] + [r.corrupted for r in rows]
    pairs = [(i, c) for i, r in enumerate(rows) for c in (*r.answers, *r.distractors)]
    measured = measured_tokens(tokenizer, texts, pairs, unk)
    if measured is None:
        return None
    lengths, unknown, tails = measured
    one = {c: t[0] for c, t in tails.items() if len(t) == 1 and t[0] != unk}
    fine: dict[tuple, bool] = {}  # (answers, distractors): rows share a few of these
    suspects = []
    for i, r in enumerate(rows):
        a, b = lengths[i], lengths[n + i]
        if unknown[i] or unknown[n + i] or a != b or (context is not None and a > context):
            suspects.append(i)
        elif r.answer_ids or r.distractor_ids:
            suspects.append(i)
        else:
            key = (r.answers, r.distractors)
            ok = fine.get(key)
            if ok is None:
                ok = fine[key] = _one_token_each(key, one, distinct)
            if not ok:
                suspects.append(i)
    return lengths[:n], suspects


def _one_token_each(
    key: tuple[tuple[str, ...], tuple[str, ...]], one: dict, distinct: bool
) -> bool:
    """Whether every answer and distractor of ``key`` is one known token (``one``) and, with
    ``distinct``, no answer's token is a distractor's."""
    answers, distractors = key
    if not all(c in one for c in (*answers, *distractors)):
        return False
    return not distinct or not {one[c] for c in answers} & {one[c] for c in distractors}


def _row_problems(
    path: Path,
    rows: Sequence[PromptRow],
    tokenizer: Any,
    vocab: int,
    unk: int | None,
    distinct: bool,
    sides: tuple[str, str],
    context: int | None,
) -> tuple[list[list[int]], list[str]]:
    """The clean prompts' ids of ``rows`` and the problems :func:`token_problems` finds in
    them with every row tokenised in full."""
    clean = token_ids(tokenizer, [r.clean for r in rows])
    corrupted = token_ids(tokenizer, [r.corrupted for r in rows])
    problems: list[str] = []
    ids_of = _continuation_ids(path, rows, tokenizer, clean, unk, problems)
    for i, r in enumerate(rows):
        where = f"{path}:{r.line}"
        problems += _prompt_problems(
            where, tokenizer, r, clean[i], corrupted[i], sides, context, unk
        )
        answer_ids = {ids_of[(i, a)] for a in r.answers if (i, a) in ids_of} | set(r.answer_ids)
        distractor_ids = {ids_of[(i, d)] for d in r.distractors if (i, d) in ids_of} | set(
            r.distractor_ids
        )
        if distinct and answer_ids & distractor_ids:
            problems.append(
                f"{where}: an answer and a distractor are the same token ({sorted(answer_ids & distractor_ids)[0]}) "
                "under this tokenizer; make them differ"
            )
        bad = [t for t in (*r.answer_ids, *r.distractor_ids) if not 0 <= t < vocab]
        if bad:
            problems.append(
                f"{where}: token id {bad[0]} is outside the vocabulary (0..{vocab - 1}); "
                "were the ids made with this model's tokenizer?"
            )
    return clean, problems


def _unknown(
    tokenizer: Any, unk: int | None, where: str, what: str, text: str, ids: Sequence[int]
) -> list[str]:
    problem = unknown_problem(tokenizer, unk, text, ids, f"{where}: {what}")
    return [] if problem is None else [problem]


def _prompt_problems(
    where: str,
    tokenizer: Any,
    r: PromptRow,
    clean: list[int],
    corrupted: list[int],
    sides: tuple[str, str],
    context: int | None,
    unk: int | None,
) -> list[str]:
    """Unknown words (``unk``: :func:`unknown_id`), unequal token lengths and prompts beyond
    ``context`` of one row."""
    a, b = sides  # how the two prompts are called in messages
    problems = _unknown(tokenizer, unk, where, f"the {a} prompt", r.clean, clean)
    problems += _unknown(tokenizer, unk, where, f"the {b} prompt", r.corrupted, corrupted)
    if len(clean) != len(corrupted):
        problems.append(
            f"{where}: {a} has {len(clean)} tokens but {b} has {len(corrupted)} under "
            f"this tokenizer ({a} {_pieces(tokenizer, clean)}, {b} "
            f"{_pieces(tokenizer, corrupted)}); make them the same length"
        )
    longest = max(len(clean), len(corrupted))
    if context is not None and longest > context:
        problems.append(
            f"{where}: the prompt has {longest} tokens, more than the model's context of "
            f"{context} tokens; shorten it or drop the row, or use a model with a longer context"
        )
    return problems


def _continuation_ids(
    path: Path,
    rows: Sequence[PromptRow],
    tokenizer: Any,
    clean: list[list[int]],
    unk: int | None,
    problems: list[str],
) -> dict[tuple[int, str], int]:
    """``{(row index, answer or distractor): its token id}`` of the text continuations that
    are one known token after their prompt; a problem for each other one."""
    conts = [(i, c) for i, r in enumerate(rows) for c in r.answers + r.distractors]
    full = extended_ids(tokenizer, [r.clean for r in rows], clean, conts)
    ids_of: dict[tuple[int, str], int] = {}
    for (i, c), ext in zip(conts, full, strict=True):
        ids, where = clean[i], f"{path}:{rows[i].line}"
        if unk is None or unk not in ids:  # else the prompt's problem
            found = _unknown(
                tokenizer, unk, where, f"the continuation {c!r}", rows[i].clean + c, ext
            )
            if found:
                problems += found
                continue
        if ext[: len(ids)] != ids or len(ext) != len(ids) + 1:
            extra = ext[len(ids) :] if ext[: len(ids)] == ids else ext
            problems.append(
                f"{where}: {c!r} is not one token after its prompt under this tokenizer "
                f"(it tokenises as {_pieces(tokenizer, extra)}); use a one-token answer (mind the leading space)"
            )
        else:
            ids_of[(i, c)] = ext[-1]
    return ids_of


def _one_length_problems(path: Path, rows: Sequence[PromptRow], lengths: list[int]) -> list[str]:
    """For ``--positions tokens``: a problem for each row whose token ``lengths`` is not the
    most common one (every row of the file: train and test share the position axis)."""
    if len(set(lengths)) < 2:
        return []
    usual = max(dict.fromkeys(lengths), key=lengths.count)  # ties: the first row's
    example, count = rows[lengths.index(usual)].line, lengths.count(usual)  # once, not a row
    return [
        f"{path}:{r.line}: {n} tokens, but {count} of the {len(rows)} rows "
        f"(e.g. line {example}) have {usual}; --positions tokens needs every prompt, train "
        "and test, of one length: make them one length, or give spans and use --positions schema"
        for r, n in zip(rows, lengths, strict=True)
        if n != usual
    ]


def span_token_problems(
    prompts: PromptFile, tokenizer: Any, sides: tuple[str, str] = ("clean", "corrupted")
) -> list[str]:
    """A problem for each row whose spans do not fit its tokens: a span starting inside a
    token, or spans of other token lengths in the corrupted prompt than in the clean one."""
    rows, schema = prompts.rows, prompts.schema
    if schema is None or not rows:
        return []
    try:
        clean = token_offsets(tokenizer, [r.clean for r in rows])
        corrupted = token_offsets(tokenizer, [r.corrupted for r in rows])
    except PositionError as err:  # a tokenizer without character offsets
        return [f"{prompts.path}: {err}"]
    problems = []
    for r, c_tokens, k_tokens in zip(rows, clean, corrupted, strict=True):
        where = f"{prompts.path}:{r.line}"
        found = char_problems(r.span_starts, r.clean, schema, f"{where}: the {sides[0]} prompt")
        found += char_problems(
            r.corrupted_span_starts, r.corrupted, schema, f"{where}: the {sides[1]} prompt"
        )
        if found:  # rows not read from a file (a user task's examples) come here unchecked
            problems += found
            continue
        try:
            a = token_starts(
                c_tokens, r.span_starts, r.clean, schema, f"{where}: the {sides[0]} prompt"
            )
            b = token_starts(
                k_tokens,
                r.corrupted_span_starts,
                r.corrupted,
                schema,
                f"{where}: the {sides[1]} prompt",
            )
        except PositionError as err:
            problems.append(str(err))
            continue
        if len(c_tokens) != len(k_tokens):
            continue  # reported with the token lengths
        if a != b:
            problems.append(
                f"{where}: the spans have other token lengths in the {sides[1]} prompt "
                f"({_span_lengths(b, len(k_tokens), schema)}) than in the {sides[0]} prompt "
                f"({_span_lengths(a, len(c_tokens), schema)}) under this tokenizer; choose "
                f"{sides[1]} words of the same token length"
            )
    return problems


def _span_lengths(starts: list[int], n: int, schema: SpanSchema) -> str:
    ends = [*starts[1:], n]
    return ", ".join(
        f"{name} {e - s}" for name, s, e in zip(schema.names, starts, ends, strict=True)
    )


def load_prompt_file(
    path: str | Path,
    tokenizer: Any,
    *,
    counterfactual: str | None = None,
    seed: int = 0,
    vocab_size: int | None = None,
    context: int | None = None,
    positions: str | None = None,
    run: bool = False,
) -> PromptFile:
    """The one validation pass of a prompt file: :func:`read_prompt_file`'s checks plus
    :func:`token_problems` (on the rows that passed the first checks, against the model's
    ``context`` when given, and ``positions`` as ``--positions`` takes it); with ``run``
    also what a discovery run needs (train and test rows). Raises with every problem."""
    with _no_collection():
        prompts, problems = read_rows(Path(path), counterfactual, seed)
        if prompts is not None and run:
            problems += split_problems(prompts.path, prompts.splits, prompts.split_source,
                                       len(prompts.rows))  # fmt: skip
        if prompts is not None and positions == "schema" and prompts.schema is None:
            problems.append(
                f"{prompts.path}: --positions schema needs each row's spans, and this file has "
                "none; add a spans field to every row (docs/guide.md, Spans in a prompt file), "
                "or use --positions tokens"
            )
        if prompts is not None and prompts.rows:
            problems += token_problems(
                prompts, tokenizer, vocab_size, context=context, positions=positions
            )
        if problems:
            raise PromptFileError(problems)
    return prompts
