"""The report's frame: its title, the summary paragraph, the run's warnings, the timings and
the footer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circuits.app.checks import run_warnings, verdict_text
from circuits.app.curve_text import fixed, mean_pm, spread_decimals
from circuits.app.report.doc import (
    Block,
    Code,
    Heading,
    Inline,
    Paragraph,
    Strong,
    Table,
    fmt_ci,
    fmt_num,
    fmt_pct,
    fmt_seconds,
    fmt_value,
    is_number,
    section_of,
)

__all__ = ["footer", "summary", "timing_blocks", "title", "warning_blocks"]


def title(metrics: Mapping[str, Any]) -> str:
    """ "Circuit report: TASK on MODEL", with what the record names of the two."""
    task = section_of(metrics, "task").get("name")
    model = section_of(metrics, "model").get("name")
    if task is not None and model is not None:
        return f"Circuit report: {fmt_value(task)} on {fmt_value(model)}"
    if task is not None or model is not None:
        return f"Circuit report: {fmt_value(task if task is not None else model)}"
    return "Circuit report"


def summary(metrics: Mapping[str, Any]) -> list[str]:
    """The opening paragraph: the circuit's size, its held-out f and the verdict."""
    pieces = _size_text(metrics) + _held_out_f_text(metrics)
    reached = section_of(metrics, "circuit").get("reached_target")
    if reached is not None:
        text = verdict_text(metrics)
        if not reached:  # the search's own words, kept for readers who grep for them
            text = text.replace("target not reached", "did not reach the target")
        pieces += [Strong(text), "."]
    if not pieces:
        pieces.append("This run folder records no circuit.")
    return pieces


def _size_text(metrics: Mapping[str, Any]) -> list[str]:
    circuit = section_of(metrics, "circuit")
    graph = section_of(metrics, "graph")
    n_edges, total = circuit.get("n_edges"), graph.get("n_edges")
    if n_edges is None:
        return []
    fraction = circuit.get("edge_fraction")
    if fraction is None and is_number(n_edges) and is_number(total) and total > 0:
        fraction = n_edges / total
    pieces: list[str] = ["The circuit has ", Strong(f"{fmt_num(n_edges)} edges")]
    if fraction is not None or total is not None:
        share = f"{fmt_pct(fraction)} of " if fraction is not None else ""
        of = f"the graph's {fmt_num(total)} edges" if total is not None else "the graph"
        pieces.append(f" ({share}{of})")
    n_nodes = circuit.get("n_nodes")
    if n_nodes is not None:
        of_nodes = f" of {fmt_num(graph['n_nodes'])}" if graph.get("n_nodes") is not None else ""
        pieces.append(f" and {fmt_num(n_nodes)}{of_nodes} nodes")
    return pieces + [". "]


def _held_out_f_text(metrics: Mapping[str, Any]) -> list[str]:
    task = section_of(metrics, "task")
    faith = section_of(metrics, "faithfulness")
    f = faith.get("f")
    if f is None:
        return []
    split = task.get("evaluation_split")
    if split is not None:
        held_out = split != task.get("attribution_split")
        pieces = ["On the ", "held-out " if held_out else "", Code(fmt_value(split)), " split"]
    else:
        pieces = ["On the evaluation examples"]
    n = faith.get("n_examples", task.get("n_evaluation"))
    if n is not None:
        pieces.append(f" ({fmt_num(n)} examples)")
    pieces += [" its faithfulness is ", Strong(f"f = {fmt_num(f)}")]
    ci = fmt_ci(faith.get("ci"))
    if ci is not None:
        level = faith.get("ci_level")
        label = f"{fmt_pct(level)} CI" if level is not None else "CI"
        pieces.append(f" ({label} {ci})")
    return pieces + [". "] + _random_text(faith)


def _random_text(faith: Mapping[str, Any]) -> list[str]:
    """The random baseline: mean and spread over its draws (one draw alone is noise)."""
    random_f = faith.get("random_f")
    if random_f is None:
        return []
    draws, std = faith.get("random_draws"), faith.get("random_f_std")
    if is_number(draws) and draws > 1 and is_number(std):
        fs = [x for x in faith.get("random_fs") or [] if is_number(x)]
        d = spread_decimals(std)
        spread = f", range {fixed(min(fs), d)} to {fixed(max(fs), d)}" if fs else ""
        return [
            f"Random circuits of the same size reach f = {mean_pm(random_f, std)} "
            f"(mean ± standard deviation over {fmt_num(draws)} draws{spread}). "
        ]
    return [f"A random circuit of the same size reaches f = {fmt_num(random_f)}. "]


def _warnings_of(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's recorded warnings; for records written before warnings existed, derived
    from the numbers (the same pure function discover uses)."""
    if "warnings" in metrics:
        listed = metrics.get("warnings")
        return [w for w in listed if isinstance(w, Mapping)] if isinstance(listed, list) else []
    return run_warnings(metrics)


def warning_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """A "Warnings" section, one paragraph per warning with its fix; none without warnings."""
    found = _warnings_of(metrics)
    if not found:
        return []
    blocks: list[Block] = [Heading(2, "Warnings", "warnings")]
    for w in found:
        message, fix = fmt_value(w.get("message", "")), w.get("fix")
        text = [Strong("Warning: "), message + "."]
        if fix:
            text += [" Fix: ", fmt_value(fix) + "."]
        blocks.append(Paragraph(text, "warning"))
    return blocks


def timing_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    """Each stage's time and share of the total."""
    timings = section_of(metrics, "timings")
    if not timings:
        return []
    total = timings.get("total_s")
    rows: list[list[Inline]] = []
    for key, value in timings.items():
        label = key[:-2] if key.endswith("_s") else key
        label = label.replace("_", " ")
        share = (
            fmt_pct(value / total)
            if key != "total_s" and is_number(value) and is_number(total) and total > 0
            else ""
        )
        rows.append([label, fmt_seconds(value), share])
    return [
        Heading(2, "Timings", "timings"),
        Table(["Stage", "Time", "Share of total"], rows, "lrr"),
    ]


def footer(metrics: Mapping[str, Any]) -> list[str]:
    """The package version, the run's creation time and command, and how to rebuild."""
    pieces: list[str] = ["Generated by circuit-discovery"]
    version = metrics.get("package_version")
    pieces.append(f" {fmt_value(version)}" if version is not None else "")
    created = metrics.get("created")
    if created is not None:
        pieces.append(f"; run created {fmt_value(created)}")
    command = metrics.get("command")
    if command is not None:
        pieces += ["; command: ", Code(fmt_value(command))]
    pieces += [". Rebuild this report with ", Code("circuits report DIR"), "."]
    return pieces
