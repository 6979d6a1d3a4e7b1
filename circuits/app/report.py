"""Human-readable reports of a discovery run: ``report.md`` and a self-contained ``report.html``.

A run folder (written by ``circuits discover``) holds ``metrics.json`` and the PNG figures. A
report is rendered from those files alone, so ``circuits report DIR`` can rebuild it at any
time. The rendering is a pure function of ``metrics.json`` and the figure bytes (no timestamps
of its own), so rebuilding an unchanged folder gives byte-identical reports.

Both formats are produced from one intermediate list of blocks (headings, paragraphs, tables,
figures), so they always state the same things:

* ``report.md`` references the figures by relative file name (``![circuit](circuit.png)``);
  edge names and identifiers sit in code spans so port suffixes such as ``<q>`` show literally.
* ``report.html`` inlines every figure as a ``data:image/png;base64,…`` URI and styles itself
  with inline CSS: it has no external references and no JavaScript, and opens offline (its one
  link goes to ``explorer.html`` beside it, :mod:`circuits.app.explorer`). Every piece of text
  is HTML-escaped.

A missing figure renders as a "figure not available" note; a missing or invalid
``metrics.json`` raises :class:`ReportError`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from circuits.app.checks import IG_GAP_THRESHOLD, run_warnings, verdict_text
from circuits.app.curve_text import (
    AREA_LABELS,
    AREA_SHORT,
    fixed,
    mean_pm,
    recorded_areas,
    repeated_sizes,
    spread_decimals,
)
from circuits.app.report_doc import (
    NA,
    Block,
    Code,
    Contents,
    Figure,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
    Table,
    flatten,
    fmt_num,
    fmt_pct,
    fmt_seconds,
    fmt_target,
    fmt_value,
    is_number,
    section_of,
)
from circuits.app.run import METRICS_FILE, RUN_FORMAT, RUN_SCHEMA_VERSION, RunFileError, RunRecord
from graphs.atomic_files import atomic_write

__all__ = [
    "FIGURES",
    "METRICS_FILE",
    "EDGES_CSV",
    "REPORT_HTML",
    "REPORT_MD",
    "ReportError",
    "load_metrics",
    "render_html",
    "render_markdown",
    "write_report",
]

FORMAT, SCHEMA_VERSION = RUN_FORMAT, RUN_SCHEMA_VERSION
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
EDGES_CSV = "circuit_edges.csv"
# The figures every run folder should have, in report order.
FIGURES = ("circuit", "faithfulness_curve", "score_histogram")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


#: ``metrics.json`` is missing or invalid, so no report can be rendered.
ReportError = RunFileError


# --------------------------------------------------------------------------------------------
# Loading and writing


def load_metrics(run_dir: str | os.PathLike[str]) -> dict:
    """Read and check ``run_dir/metrics.json`` (a :class:`~circuits.app.run.RunRecord`);
    raise :class:`ReportError` if it is unusable."""
    return RunRecord.load(run_dir).to_dict()


def _figure_names(metrics: Mapping[str, Any]) -> dict[str, str | None]:
    """Figure key -> file name inside the run folder (``None`` when the name is unusable)."""
    listed = metrics.get("figures")
    listed = listed if isinstance(listed, Mapping) else {}
    names: dict[str, str | None] = {}
    extra = (
        k
        for k, v in listed.items()
        if k not in FIGURES and isinstance(v, str) and v.lower().endswith(".png")
    )
    for key in (*FIGURES, *extra):
        name = listed.get(key, f"{key}.png")
        names[str(key)] = name if _is_plain_file_name(name) else None
    return names


def _is_plain_file_name(name: object) -> bool:
    """A bare file name: the report may only refer to files inside the run folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not name.startswith(".")
    )


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # missing, a directory, unreadable
        return None


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Render ``report.md`` and ``report.html`` into ``run_dir`` from its ``metrics.json`` and
    PNG figures; return their paths.

    Both reports are rendered before either is written, and each is written atomically (a
    temporary file beside it, then ``os.replace``), so a failure leaves earlier reports intact.
    """
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    figures: dict[str, str | None] = {}
    images: dict[str, bytes | None] = {}
    for key, name in _figure_names(metrics).items():
        data = _read_file(run_dir / name) if name is not None else None
        is_png = data is not None and data.startswith(PNG_SIGNATURE)
        figures[key] = name if is_png else None
        images[key] = data  # render_html notes a file that is not a PNG as such
    markdown = render_markdown(metrics, figures)
    page = render_html(metrics, images)
    md_path, html_path = run_dir / REPORT_MD, run_dir / REPORT_HTML
    outputs = [(md_path, markdown), (html_path, page)]
    if metrics.get("circuit_edges"):  # written with the report: a pure function of metrics.json
        outputs.append((run_dir / EDGES_CSV, edges_csv(metrics)))
    for path, text in outputs:
        with atomic_write(path) as handle:
            handle.write(text.encode("utf-8"))
    return md_path, html_path


def _kv_table(rows: Iterable[tuple[str, object]], header: str = "Field") -> Table:
    body: list[list[Inline]] = []
    for key, value in rows:
        text = fmt_value(value)
        if key.split(".")[-1] == "target" and isinstance(value, (list, tuple)):
            bounds = fmt_target(value)
            text = f"{text} ({bounds})" if bounds else text
        body.append([Code(key), text])
    return Table([header, "Value"], body, "ll")


def _summary(metrics: Mapping[str, Any]) -> list[str]:
    circuit = section_of(metrics, "circuit")
    graph = section_of(metrics, "graph")
    task = section_of(metrics, "task")
    faith = section_of(metrics, "faithfulness")
    pieces: list[str] = []

    n_edges, total = circuit.get("n_edges"), graph.get("n_edges")
    fraction = circuit.get("edge_fraction")
    if fraction is None and is_number(n_edges) and is_number(total) and total > 0:
        fraction = n_edges / total
    if n_edges is not None:
        pieces += ["The circuit has ", Strong(f"{fmt_num(n_edges)} edges")]
        if fraction is not None or total is not None:
            share = f"{fmt_pct(fraction)} of " if fraction is not None else ""
            of = f"the graph's {fmt_num(total)} edges" if total is not None else "the graph"
            pieces.append(f" ({share}{of})")
        n_nodes = circuit.get("n_nodes")
        if n_nodes is not None:
            of_nodes = (
                f" of {fmt_num(graph['n_nodes'])}" if graph.get("n_nodes") is not None else ""
            )
            pieces.append(f" and {fmt_num(n_nodes)}{of_nodes} nodes")
        pieces.append(". ")

    f = faith.get("f")
    if f is not None:
        split = task.get("evaluation_split")
        if split is not None:
            held_out = split != task.get("attribution_split")
            where = ["On the ", "held-out " if held_out else "", Code(fmt_value(split)), " split"]
        else:
            where = ["On the evaluation examples"]
        n = faith.get("n_examples", task.get("n_evaluation"))
        pieces += where
        if n is not None:
            pieces.append(f" ({fmt_num(n)} examples)")
        pieces += [" its faithfulness is ", Strong(f"f = {fmt_num(f)}")]
        ci = faith.get("ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            level = faith.get("ci_level")
            label = f"{fmt_pct(level)} CI" if level is not None else "CI"
            pieces.append(f" ({label} [{fmt_num(ci[0])}, {fmt_num(ci[1])}])")
        pieces.append(". ")
        pieces += _random_text(faith)

    reached = circuit.get("reached_target")
    if reached is not None:
        text = verdict_text(metrics)
        if not reached:  # the search's own words, kept for readers who grep for them
            text = text.replace("target not reached", "did not reach the target")
        pieces += [Strong(text), "."]
    if not pieces:
        pieces.append("This run folder records no circuit.")
    return pieces


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


def _faithfulness_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    faith = section_of(metrics, "faithfulness")
    task = section_of(metrics, "task")
    settings = section_of(metrics, "settings")
    curve = section_of(metrics, "curve")
    attribution = section_of(metrics, "attribution")
    metric = task.get("metric")
    ablation = settings.get("ablation")
    n_boot = settings.get("bootstrap")

    explain: list[str] = [
        "Faithfulness measures how much of the model's behaviour the circuit recovers: ",
        Strong("f = (m(C) − m(∅)) / (m(M) − m(∅))"),
        ", where m is the task metric",
    ]
    if metric is not None:
        explain += [" (", Code(fmt_value(metric)), ")"]
    explain += [
        " averaged over the evaluation examples, M is the full model, C is the model with every "
        "edge outside the circuit ablated at once",
    ]
    if ablation is not None:
        explain += [" (ablation: ", Code(fmt_value(ablation)), ")"]
    explain.append(
        ", and ∅ is the model with every edge ablated. f = 1 means the circuit alone reproduces "
        "the full model's metric; f = 0 means it does no better than ablating everything. "
        "The confidence interval is a bootstrap over examples"
    )
    explain.append(f" ({fmt_num(n_boot)} resamples). " if n_boot is not None else ". ")
    explain.append(
        "CPR and CMD are MIB's: the areas under f and under |1 − f| over the fraction of edges "
        "kept, by the trapezoid rule on a linear axis (higher CPR and lower CMD are better). "
        "CPR_log and CMD_log are the same areas over log10 of that fraction rescaled to [0, 1], "
        "which weighs small circuits as much as large ones: different numbers, not MIB's."
    )

    ci = faith.get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        ci_text = f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
    else:
        ci_text = NA
    level = faith.get("ci_level")
    ci_label = f"{fmt_pct(level)} confidence interval of f" if level is not None else "CI of f"
    std = faith.get("random_f_std")
    areas = recorded_areas(curve)
    rows: list[list[Inline]] = [
        ["m(M), full model", fmt_num(faith.get("m_full"))],
        ["m(C), circuit", fmt_num(faith.get("m_circuit"))],
        ["m(∅), everything ablated", fmt_num(faith.get("m_empty"))],
        [[Strong("faithfulness f")], [Strong(fmt_num(faith.get("f")))]],
        [ci_label, ci_text],
        ["f of random circuits of the same size (mean)", _rounded(faith.get("random_f"), std)],
        ["  standard deviation over the draws", _rounded(std, std)],
        *([AREA_LABELS[k], fmt_num(v)] for k, v in areas.items()),
    ]
    ig_gap = attribution.get("ig_gap")
    if ig_gap is not None:
        rows.append(["integrated-gradients convergence gap (relative)", fmt_num(ig_gap)])
    rows.append(["evaluation examples", fmt_num(faith.get("n_examples"))])
    blocks: list[Block] = [
        Heading(2, "Faithfulness", "faithfulness"),
        Paragraph(explain),
        Table(["Quantity", "Value"], rows, "lr"),
    ]

    blocks += _curve_table(curve)
    if attribution:
        known = {
            "metric_clean": "m(clean run)",
            "metric_ablated": "m(every edge ablated)",
            "input_edge_sum": "Σ scores of the edges leaving the inputs",
            "site_ablation_sum": "Σ over writer sites of |m(site alone ablated) − m(clean)|",
            "ig_gap": "integrated-gradients convergence gap (relative)",
            "ig_gap_definition": "definition of the gap",
        }
        check_rows: list[list[Inline]] = [
            [known.get(k, Code(k)), fmt_value(v)] for k, v in flatten(attribution)
        ]
        blocks += [
            Heading(3, "Attribution check"),
            Paragraph(_gap_text(attribution)),
            Table(["Quantity", "Value"], check_rows, "lr"),
        ]
    return blocks


def _rounded(x: object, std: object) -> str:
    """An f value of a random baseline at the precision its spread ``std`` supports (4
    significant digits when the spread is unknown)."""
    if not is_number(x) or not is_number(std):
        return fmt_num(x)
    return fixed(x, spread_decimals(std))


def _f_text(x: object) -> str:
    """An f value: 4 significant digits, but 0.0000 rather than e.g. -3.01e-8 (f is a share
    of the model's behaviour; such digits are rounding noise)."""
    if is_number(x) and math.isfinite(x) and abs(x) < 5e-5:
        return fixed(x, 4)
    return fmt_num(x)


def _curve_table(curve: Mapping[str, Any]) -> list[Block]:
    """f per size against the random baseline; a size whose circuit is a smaller size's again
    says so instead of repeating its numbers."""
    fractions = curve.get("fractions")
    if not isinstance(fractions, list) or not fractions:
        return []
    columns = {k: curve.get(k) for k in ("n_edges", "f", "random_f", "random_f_std")}
    columns = {k: v if isinstance(v, list) else [] for k, v in columns.items()}

    def at(name: str, i: int) -> object:
        return columns[name][i] if i < len(columns[name]) else None

    repeats = repeated_sizes([at("n_edges", i) for i in range(len(fractions))])
    rows: list[list[Inline]] = []
    for i, fraction in enumerate(fractions):
        same = repeats[i] if at("n_edges", i) is not None else None
        if same is not None:
            note = f"same circuit as {fmt_pct(fractions[same])}"
            rows.append([fmt_pct(fraction), fmt_num(at("n_edges", i)), note, "", ""])
            continue
        std = at("random_f_std", i)
        rows.append([
            fmt_pct(fraction), fmt_num(at("n_edges", i)), _f_text(at("f", i)),
            _rounded(at("random_f", i), std), _rounded(std, std),
        ])  # fmt: skip
    return [
        Heading(3, "Faithfulness over circuit size"),
        Paragraph(
            "Circuits made of the top-scoring edges, by share of the graph's edges, "
            "against random circuits of the same size, on the held-out split. A share that "
            "rounds to the same number of edges as a smaller one is the same circuit."
        ),
        Table(["Edges kept", "Edges", "f", "f (random, mean)", "± std"], rows, "rrrrr"),
    ]


def _gap_text(attribution: Mapping[str, Any]) -> str:
    """What the integrated-gradients gap of this run is (its definition comes with the run)."""
    definition = attribution.get("ig_gap_definition")
    if attribution.get("ig_gap") is None:
        return (
            "This method does not integrate, so there is no integrated-gradients completeness "
            "check; the scores of the edges leaving the inputs need not sum to "
            "m(ablated) − m(clean)."
        )
    text = (
        "Integrated gradients are complete when the integral is exact: for input "
        "interpolation the edges leaving the inputs sum to m(ablated) − m(clean); for "
        "activation interpolation, per writer site, the edges leaving the site sum to the "
        "metric change of ablating that site alone. The gap shown is the relative error of "
        "that sum"
    )
    text += f" ({definition}). " if isinstance(definition, str) else ". "
    return text + (
        f"Above {fmt_num(IG_GAP_THRESHOLD)} the scores are not converged: use more steps or "
        "Gauss–Legendre quadrature."
    )


_CAPTIONS = {
    "circuit": "The circuit: the kept edges between model components "
    "(inputs, attention heads, MLPs, logits).",
    "faithfulness_curve": "Faithfulness f of circuits made of the top-scoring edges, "
    "over circuit size, on the held-out (test) split, against random circuits of the same "
    "size; grey points are the search's evaluations on the train split.",
    "score_histogram": "Distribution of the edge attribution scores over all edges of the graph.",
}


def _figure_blocks(
    metrics: Mapping[str, Any], keys: Iterable[str], first: int = 1, heading: bool = True
) -> list[Block]:
    names = _figure_names(metrics)
    circuit = section_of(metrics, "circuit")
    curve = section_of(metrics, "curve")
    blocks: list[Block] = [Heading(2, "Figures", "figures")] if heading else []
    for number, key in enumerate(keys, start=first):
        caption = _CAPTIONS.get(key, key.replace("_", " ").capitalize() + ".")
        if key == "circuit" and circuit.get("n_edges") is not None:
            caption += f" {fmt_num(circuit.get('n_edges'))} edges, {fmt_num(circuit.get('n_nodes'))} nodes."
        areas = recorded_areas(curve) if key == "faithfulness_curve" else {}
        if any(v is not None for v in areas.values()):
            caption += (
                " ("
                + ", ".join(
                    f"{AREA_SHORT[k]} {fmt_num(v)}" for k, v in areas.items() if v is not None
                )
                + "; CPR and CMD are MIB's, over the edge fraction; the _log pair over log10 of it)"
            )
        expected = names.get(key) or f"{key}.png"
        blocks.append(Figure(key, number, caption, expected))
    return blocks


def _search_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    search = section_of(metrics, "search")
    evaluations = search.get("evaluations")
    if not search:
        return []
    target = fmt_target(search.get("target"))
    intro = [
        "The circuit is the smallest prefix of the edges ranked by score that meets the target",
        f" {target}" if target else "",
        ": sizes grow exponentially until one meets it, a binary search then finds the "
        "smallest passing size, and an optional refinement drops single edges while the target "
        "still holds. ",
        f"{fmt_num(search.get('n_evaluations'))} evaluations, in order:"
        if search.get("n_evaluations") is not None
        else "Evaluations, in order:",
    ]
    blocks: list[Block] = [Heading(2, "Search", "search"), Paragraph(intro)]
    if not isinstance(evaluations, list) or not evaluations:
        blocks.append(Paragraph("No evaluations recorded.", "note"))
        return blocks
    columns: list[str] = []
    for row in evaluations:
        if isinstance(row, Mapping):
            columns += [k for k in row if k not in columns]
    labels = {"n_edges": "Edges", "f": "f", "phase": "Phase", "meets_target": "Meets target"}
    rows: list[list[Inline]] = []
    for i, row in enumerate(evaluations, start=1):
        row = row if isinstance(row, Mapping) else {}
        rows.append([str(i)] + [fmt_value(row.get(c)) for c in columns])
    align = "r" + "".join("l" if c in ("phase", "meets_target") else "r" for c in columns)
    return blocks + [Table(["#"] + [labels.get(c, c) for c in columns], rows, align)]


def _top_edge_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    top = metrics.get("top_edges")
    if not isinstance(top, list):
        return []
    settings = section_of(metrics, "settings")
    ranked = "|score|" if settings.get("absolute", True) else "score"
    blocks: list[Block] = [
        Heading(2, "Top edges", "top-edges"),
        Paragraph(
            [
                "The score of an edge is m(run with that edge patched to its ablated value) − "
                "m(clean run), averaged over the attribution examples: a negative score means "
                "ablating the edge lowers the metric. Edges are ranked by ",
                Code(ranked),
                ".",
            ]
        ),
    ]
    if not top:
        return blocks + [Paragraph("No edges recorded.", "note")]
    rows: list[list[Inline]] = []
    for rank, item in enumerate(top, start=1):
        item = item if isinstance(item, Mapping) else {}
        edge = item.get("edge")
        rows.append(
            [
                str(rank),
                [Code(fmt_value(edge))] if edge is not None else NA,
                fmt_num(item.get("score"), signed=True),
                fmt_num(item.get("in_circuit")),
            ]
        )
    return blocks + [Table(["Rank", "Edge", "Score", "In circuit"], rows, "rlrl")]


def _timing_blocks(metrics: Mapping[str, Any]) -> list[Block]:
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


_KNOWN = {
    "verdict",
    "warnings",
    "circuit_edges",
    "examples",
    "behaviour",
    "format",
    "schema_version",
    "package_version",
    "created",
    "command",
    "model",
    "task",
    "settings",
    "graph",
    "circuit",
    "faithfulness",
    "curve",
    "search",
    "attribution",
    "timings",
    "top_edges",
    "figures",
    "positions",
}


def _title(metrics: Mapping[str, Any]) -> str:
    task = section_of(metrics, "task").get("name")
    model = section_of(metrics, "model").get("name")
    if task is not None and model is not None:
        return f"Circuit report: {fmt_value(task)} on {fmt_value(model)}"
    if task is not None or model is not None:
        return f"Circuit report: {fmt_value(task if task is not None else model)}"
    return "Circuit report"


def _document(metrics: Mapping[str, Any], figure_keys: Iterable[str]) -> list[Block]:
    model = section_of(metrics, "model")
    task = section_of(metrics, "task")
    settings = section_of(metrics, "settings")
    graph = section_of(metrics, "graph")
    keys = list(figure_keys)
    blocks: list[Block] = [Heading(2, "Circuit", "circuit")]
    blocks += _figure_blocks(metrics, [k for k in keys if k == "circuit"], heading=False)
    blocks.append(
        Paragraph(
            ["Explore the whole graph (circuit size, edge details, supernodes): ",
             Link("explorer.html", "explorer.html"), "; ", Code("circuits serve RUN"),
             " adds live ablation."]
        )
    )  # fmt: skip
    if model or graph:
        rows = flatten(model) + [(f"graph.{k}", v) for k, v in flatten(graph)]
        blocks += [Heading(2, "Model", "model"), _kv_table(rows)]
    if task:
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
        blocks.append(Heading(2, "Task and data", "task"))
        if intro:
            blocks.append(Paragraph(intro + _distinct_text(task)))
        blocks.append(_kv_table(flatten(task)))
        blocks += _example_blocks(metrics) + _behaviour_blocks(metrics)
    if settings:
        blocks += [
            Heading(2, "Settings", "settings"),
            _kv_table(flatten(settings), "Setting"),
        ]
    blocks += _faithfulness_blocks(metrics)
    from circuits.app.report_positions import POSITION_FIGURE, position_blocks

    first = 2 if "circuit" in keys else 1
    others = [k for k in keys if k not in ("circuit", POSITION_FIGURE)]
    blocks += _figure_blocks(metrics, others, first)
    blocks += _search_blocks(metrics)
    blocks += _circuit_edge_blocks(metrics)
    blocks += _top_edge_blocks(metrics)
    blocks += position_blocks(metrics, first + len(others))
    blocks += _timing_blocks(metrics)
    extra = {k: v for k, v in metrics.items() if k not in _KNOWN}
    if extra:
        blocks += [Heading(2, "Other fields", "other"), _kv_table(flatten(extra))]
    contents = [(b.anchor, b.text) for b in blocks if isinstance(b, Heading) and b.anchor]
    head: list[Block] = [Heading(1, _title(metrics)), Paragraph(_summary(metrics), "summary")]
    head += _warning_blocks(metrics)
    return head + [Contents(contents)] + blocks


def _warnings_of(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's recorded warnings; for records written before warnings existed, derived
    from the numbers (the same pure function discover uses)."""
    if "warnings" in metrics:
        listed = metrics.get("warnings")
        return [w for w in listed if isinstance(w, Mapping)] if isinstance(listed, list) else []
    return run_warnings(metrics)


def _warning_blocks(metrics: Mapping[str, Any]) -> list[Block]:
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


def _circuit_edge_blocks(metrics: Mapping[str, Any]) -> list[Block]:
    edges = metrics.get("circuit_edges")
    if not isinstance(edges, list):
        return []
    blocks: list[Block] = [
        Heading(2, "Circuit edges", "circuit-edges"),
        Paragraph(
            [
                f"All {fmt_num(len(edges))} edges of the circuit, by |score| (also in ",
                Code(EDGES_CSV),
                ").",
            ]
        ),
    ]
    if not edges:
        return blocks + [Paragraph("The circuit has no edges.", "note")]
    rows: list[list[Inline]] = []
    for rank, item in enumerate(edges, start=1):
        item = item if isinstance(item, Mapping) else {}
        rows.append(
            [
                str(rank),
                [Code(fmt_value(item.get("edge", NA)))],
                fmt_num(item.get("score"), signed=True),
            ]
        )
    return blocks + [Table(["Rank", "Edge", "Score"], rows, "rlr")]


def edges_csv(metrics: Mapping[str, Any]) -> str:
    """The circuit's edges as CSV text (``rank,edge,upstream,port,score``), best first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "edge", "upstream", "port", "score"])
    edges = metrics.get("circuit_edges")
    for rank, item in enumerate(edges if isinstance(edges, list) else [], start=1):
        item = item if isinstance(item, Mapping) else {}
        name = str(item.get("edge", ""))
        upstream, _, port = name.partition("->")
        score = item.get("score")
        writer.writerow(
            [rank, name, upstream, port, repr(float(score)) if is_number(score) else ""]
        )
    return out.getvalue()


def _footer(metrics: Mapping[str, Any]) -> list[str]:
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


def _figure_order(keys: Iterable[str]) -> list[str]:
    keys = list(keys)
    return [*FIGURES, *(k for k in keys if k not in FIGURES)]


# --------------------------------------------------------------------------------------------
# Markdown

_MD_ALWAYS = set("\\`*<|&~")  # characters that are markup wherever they stand


def _md_text(text: str) -> str:
    """Escape text for Markdown, leaving harmless characters (``riemann_left``, ``[0.9, 1]``,
    ``a->b``) unescaped so the raw file stays readable."""
    text = " ".join(str(text).split("\n"))
    out = []
    for i, c in enumerate(text):
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        escape = (
            c in _MD_ALWAYS
            or (c == "_" and not (before.isalnum() and after.isalnum()))  # emphasis
            or (c == "]" and after == "(")  # inline link
            or (c == ">" and i == 0)  # block quote
        )
        out.append("\\" + c if escape else c)
    return "".join(out)


def _md_code(text: str) -> str:
    text = " ".join(str(text).split("\n"))
    longest = run = 0
    for c in text:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_inline(content: Inline, *, in_table: bool = False) -> str:
    pieces = [content] if isinstance(content, str) else list(content)
    out = []
    for piece in pieces:
        if isinstance(piece, Code):
            text = _md_code(piece)
            if in_table:  # GFM splits cells on '|' even inside code spans
                text = text.replace("|", "\\|")
        elif isinstance(piece, Strong):
            text = f"**{_md_text(piece)}**"
        elif isinstance(piece, Link):
            text = f"[{_md_text(piece)}]({quote(piece.href)})"
        else:
            text = _md_text(piece)
        out.append(text)
    return "".join(out)


def render_markdown(metrics: dict, figures: dict[str, str | None]) -> str:
    """The report as Markdown. ``figures`` maps a figure key (``"circuit"``, …) to its file name
    relative to the report, or to ``None`` when the figure is not available."""
    figures = dict(figures)
    lines: list[str] = []
    for block in _document(metrics, _figure_order(figures)):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, Paragraph):
            text = _md_inline(block.content)
            if block.css == "warning":
                text = f"> ⚠ {text}"
            lines += [f"*{text}*" if block.css == "note" else text, ""]
        elif isinstance(block, Contents):
            lines += ["**Contents**", ""]
            lines += [f"- [{_md_text(text)}](#{anchor})" for anchor, text in block.entries] + [""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(_md_text(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---:" if a == "r" else "---" for a in block.align) + "|")
            for row in block.rows:
                cells = [_md_inline(cell, in_table=True) or " " for cell in row]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(block, Figure):
            name = figures.get(block.key)
            if name:
                lines.append(f"![{_md_text(block.key)}]({quote(name)})")
            else:
                lines.append(
                    f"*(figure not available: {_md_code(block.expected)} "
                    "is missing from the run folder or is not a PNG image)*"
                )
            lines += ["", f"*Figure {block.number}: {_md_inline(block.caption)}*", ""]
    lines += ["---", "", _md_inline(_footer(metrics)), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5;
  color: #1a1a1a; background: #fff; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.5rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
p.summary { font-size: 1.08rem; background: #f4f7fb; border-left: 4px solid #3b6ea5;
  padding: 0.7rem 1rem; }
p.warning { background: #fff4e5; border-left: 4px solid #d9822b; padding: 0.5rem 1rem; }
nav.contents { font-size: 0.93rem; } nav.contents ul { margin: 0.2rem 0; }
p.note, p.missing { color: #8a5a00; font-style: italic; }
p.missing { border: 1px dashed #c9a040; padding: 1.5rem; text-align: center; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.93rem; }
th, td { border: 1px solid #d6d6d6; padding: 0.25rem 0.6rem; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em;
  background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; word-break: break-all; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { color: #444; font-size: 0.92rem; margin-top: 0.3rem; }
footer { margin-top: 3rem; border-top: 1px solid #ddd; padding-top: 0.6rem; color: #555;
  font-size: 0.88rem; }
@media print { main { max-width: none; } figure { break-inside: avoid; } }
""".strip()


_NUM_CLASS = ' class="num"'


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_inline(content: Inline) -> str:
    pieces = [content] if isinstance(content, str) else list(content)
    out = []
    for piece in pieces:
        if isinstance(piece, Code):
            out.append(f"<code>{_h(piece)}</code>")
        elif isinstance(piece, Strong):
            out.append(f"<strong>{_h(piece)}</strong>")
        elif isinstance(piece, Link):
            out.append(f'<a href="{_h(quote(piece.href))}">{_h(piece)}</a>')
        else:
            out.append(_h(piece))
    return "".join(out)


def render_html(metrics: dict, images: dict[str, bytes | None]) -> str:
    """The report as one self-contained HTML page. ``images`` maps a figure key to the PNG
    file's bytes, which are inlined as ``data:`` URIs, or to ``None`` when not available."""
    images = dict(images)
    title = _title(metrics)
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    for block in _document(metrics, _figure_order(images)):
        if isinstance(block, Heading):
            anchor = f' id="{_h(block.anchor)}"' if block.anchor else ""
            out.append(f"<h{block.level}{anchor}>{_h(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = f' class="{_h(block.css)}"' if block.css else ""
            out.append(f"<p{css}>{_html_inline(block.content)}</p>")
        elif isinstance(block, Contents):
            out.append('<nav class="contents"><strong>Contents</strong><ul>')
            out += [
                f'<li><a href="#{_h(anchor)}">{_h(text)}</a></li>' for anchor, text in block.entries
            ]
            out.append("</ul></nav>")
        elif isinstance(block, Table):
            out.append("<table>")
            out.append("<thead><tr>")
            for header, align in zip(block.headers, block.align, strict=True):
                css = _NUM_CLASS if align == "r" else ""
                out.append(f"<th{css}>{_h(header)}</th>")
            out.append("</tr></thead>")
            out.append("<tbody>")
            for row in block.rows:
                cells = "".join(
                    f"<td{_NUM_CLASS if align == 'r' else ''}>{_html_inline(cell)}</td>"
                    for cell, align in zip(row, block.align, strict=True)
                )
                out.append(f"<tr>{cells}</tr>")
            out.append("</tbody>")
            out.append("</table>")
        elif isinstance(block, Figure):
            data = images.get(block.key)
            caption = f"Figure {block.number}: {_html_inline(block.caption)}"
            out.append(f'<figure id="figure-{_h(block.key)}">')
            if data is not None and bytes(data).startswith(PNG_SIGNATURE):
                encoded = base64.b64encode(bytes(data)).decode("ascii")
                out.append(f'<img src="data:image/png;base64,{encoded}" alt="{_h(block.key)}">')
            else:
                reason = "is missing from the run folder" if data is None else "is not a PNG image"
                out.append(
                    f'<p class="missing">figure not available '
                    f"(<code>{_h(block.expected)}</code> {reason})</p>"
                )
            out.append(f"<figcaption>{caption}</figcaption>")
            out.append("</figure>")
    out += [
        f"<footer><p>{_html_inline(_footer(metrics))}</p></footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(out)
