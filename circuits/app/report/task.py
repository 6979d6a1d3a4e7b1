"""The report's "Task and data" section: the splits and their overlap, example prompt pairs
and how the model does on the task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circuits.app.report.doc import (
    NA,
    Block,
    Code,
    Heading,
    Inline,
    Paragraph,
    Table,
    flatten,
    fmt_num,
    fmt_pct,
    fmt_value,
    kv_table,
    section_of,
)

__all__ = ["task_blocks"]


def task_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """The section: the splits, every task field, example pairs and the model's behaviour;
    none for a record without a task."""
    task = section_of(metrics, "task")
    if not task:
        return []
    intro: list[str] = []
    if task.get("n_attribution") is not None or task.get("n_evaluation") is not None:
        intro = [
            f"Edges are scored on {fmt_num(task.get('n_attribution'))} examples of the ",
            Code(fmt_value(task.get("attribution_split"))),
            f" split; circuits are evaluated on {fmt_num(task.get('n_evaluation'))} examples "
            "of the ",
            Code(fmt_value(task.get("evaluation_split"))),
            " split.",
        ]
    blocks: list[Block] = [Heading(2, "Task and data", "task")]
    if intro:
        blocks.append(Paragraph(intro + _distinct_text(task)))
    blocks.append(kv_table(flatten(task)))
    return blocks + _example_blocks(metrics) + _behaviour_blocks(metrics)


def _distinct_text(task: Mapping[str, Any]) -> list[str]:
    pieces = []
    for role, split in (("attribution", "attribution_split"), ("evaluation", "evaluation_split")):
        clean = task.get(f"n_{role}_distinct_clean")
        corrupted = task.get(f"n_{role}_distinct_corrupted")
        if clean is not None:
            pieces.append(
                f" The {fmt_value(task.get(split))} examples hold {fmt_num(clean)} distinct clean and "
                f"{fmt_num(corrupted)} distinct corrupted prompts."
            )
    return pieces + _held_out_text(task) if pieces else pieces


def _held_out_text(task: Mapping[str, Any]) -> list[str]:
    """What the run measured about its splits (``n_prompts_in_both_splits``, counted from
    the token ids it used); records without the count make no claim."""
    pieces = []
    dropped = task.get("n_duplicate_rows_dropped")
    if dropped:
        pieces.append(
            f" {fmt_num(dropped)} duplicate rows of the prompt file (the same prompts, answers, "
            "distractors and spans as an earlier row) were dropped before the split."
        )
    shared = task.get("n_prompts_in_both_splits")
    if shared == 0:
        pieces.append(" No prompt, clean or corrupted, of one split occurs in the other.")
    elif shared is not None:
        pieces.append(
            f" {fmt_num(shared)} distinct prompts (clean or corrupted) of the evaluation split also "
            "occur in the attribution split, so the held-out numbers are not fully held out."
        )
    if task.get("data_file") is None and shared is not None:  # the bundled tasks' sampler
        pieces.append(
            " Test examples repeat a clean prompt only when the split has no unused one left."
        )
    return pieces


def _example_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    examples = metrics.get("examples")
    if not isinstance(examples, list) or not examples:
        return []
    rows: list[list[Inline]] = []
    for e in examples:
        e = e if isinstance(e, Mapping) else {}
        rows.append(
            [
                [Code(fmt_value(e.get(k, NA)))]
                for k in ("clean", "corrupted", "answer", "distractor")
            ]
        )
    return [
        Heading(3, "Example prompt pairs"),
        Paragraph("The first held-out pairs, decoded from the tokens the model was given."),
        Table(["Clean prompt", "Corrupted prompt", "Answer", "Distractor"], rows, "llll"),
    ]


def _behaviour_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    b = section_of(metrics, "behaviour")
    if not b:
        return []
    blocks: list[Block] = [
        Heading(3, "The model on the task"),
        Paragraph(
            [
                "Accuracy is the share of held-out prompts whose arg-max next token is a correct "
                "(clean) answer; the metric is ",
                Code(fmt_value(section_of(metrics, "task").get("metric"))),
                " against the clean run. A model that does the task is accurate on clean "
                "prompts and scores a much lower metric on corrupted ones.",
            ]
        ),
        Table(
            ["Prompts", "Accuracy", "Mean metric"],
            [
                ["clean", fmt_pct(b.get("accuracy_clean")), fmt_num(b.get("metric_clean"))],
                [
                    "corrupted",
                    fmt_pct(b.get("accuracy_corrupted")),
                    fmt_num(b.get("metric_corrupted")),
                ],
            ],
            "lrr",
        ),
    ]
    quantiles = b.get("quantiles")
    if isinstance(quantiles, list) and quantiles:
        columns = [("m(M), full model", "m_full_quantiles"), ("m(C), circuit", "m_circuit_quantiles"),
                   ("m(∅), everything ablated", "m_empty_quantiles")]  # fmt: skip
        rows: list[list[Inline]] = []
        for label, key in columns:
            values = b.get(key) if isinstance(b.get(key), list) else []
            rows.append(
                [label]
                + [fmt_num(values[i] if i < len(values) else None) for i in range(len(quantiles))]
            )
        blocks += [
            Heading(3, "Per-example metric"),
            Paragraph(
                "Quantiles over the held-out examples of the metric of the full model, the "
                "circuit and the fully ablated model: how evenly the circuit keeps the behaviour."
            ),
            Table(
                ["Run"] + [f"q{fmt_num(q * 100)}" for q in quantiles],
                rows,
                "l" + "r" * len(quantiles),
            ),
        ]
    return blocks
