"""The main job: score a model's edges on a task, find the minimal faithful circuit, evaluate
it on held-out prompts and write a run folder with graphs, metrics, figures and a report.

Data use: edges are scored and the circuit size is chosen on the task's *train* split; the
faithfulness, its confidence interval and the faithfulness curve are measured on the *test*
split, so the reported f is not the number the search optimised.

Under ``torchrun`` every rank scores and evaluates its shard of the prompts (see
:mod:`attribution.distributed`) and rank 0 writes the run folder.

Run folder (written to a temporary sibling folder and renamed into place at the end, so an
interrupted run leaves nothing half-written): ``graph.graphml``, ``graph.json``,
``scores.safetensors`` (the same graph: scores and circuit), ``metrics.json``, the figures
``circuit``, ``faithfulness_curve`` and ``score_histogram`` as PNG and SVG,
``report.md`` / ``report.html`` and the interactive ``explorer.html``
(:mod:`circuits.app.explorer`). The output folder is checked and locked for the whole run
(:mod:`circuits.app.output`), and ``metrics.json`` records the checksums of the graph files
(:mod:`circuits.app.integrity`).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from attribution import METRICS, RULES, RunSetup, ablations, attribute, get_method
from attribution.ablations import Ablation, AblationError, build_ablation
from attribution.data import PromptPairs
from attribution.distributed import is_main_process
from circuits.app.checks import run_warnings, target_warnings, verdict
from circuits.app.errors import RunError
from circuits.app.output import check_output_folder, output_lock
from circuits.app.position_discovery import (
    POSITION_GRAPHML,
    POSITION_JSON,
    PositionRun,
    check_positions,
    find_position_circuit,
)
from circuits.app.prompts import (
    FILE_METRIC,
    check_data_file,
    check_user_examples,
    held_out_prompts,
    prompt_pairs,
)
from circuits.app.run import RUN_FORMAT, RunRecord, strict_json
from circuits.search.faithfulness import (
    DEFAULT_FRACTIONS,
    CircuitEvaluator,
    FaithfulnessCurve,
    evaluate,
    faithfulness_curve,
)
from circuits.search.minimal import MinimalCircuit, minimal_circuit, parse_target
from circuits.tasks import get_task
from circuits.tasks.accuracy import prompt_behaviour
from graphs import Graph, ModelSpec

__all__ = [
    "RUN_FORMAT",
    "Discovery",
    "DiscoverySettings",
    "RunError",
    "discover",
    "find_circuit",
    "load_for_task",
    "version",
]

# --dtype choices: the dtypes the bridges and attribution support.
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# device_map values that are placement strategies rather than one device (Hugging Face's).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
TOP_EDGES = 25
N_EXAMPLE_PAIRS = 3  # prompt pairs shown in the report
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # of the per-example metrics


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("circuit-discovery")
    except PackageNotFoundError:  # run from a source tree without installing
        return "0+unknown"


@dataclass
class DiscoverySettings:
    """Every choice of a discovery run (the command line's options)."""

    model: str = "toy-gpt2"
    task: str = "ioi"
    method: str = "eap-ig-inputs"
    steps: int = 5
    quadrature_rule: str = "riemann_left"
    metric: str | None = None  # None: the task's own metric
    ablation: str = "patching"
    target: tuple[float, float | None] = (0.9, None)
    n_examples: int = 100
    n_eval: int = 100
    seed: int = 0
    batch_size: int = 16
    absolute: bool = True
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    bootstrap: int = 1000
    device: str | None = None
    dtype: str | None = None  # a DTYPES name; None: the dtype the checkpoint is stored in
    device_map: str | None = None  # Hugging Face device_map ("auto", "balanced", "cuda:1", ...)
    memory_budget_gb: float = 4.0  # attribution's budget besides the weights
    data: str | None = None  # a prompt file (circuits.tasks.files) instead of the task
    counterfactual: str | None = None  # the counterfactual of a MIB-style prompt file
    #: "tokens" or "schema": also a position-aware circuit (circuits.search.select)
    positions: str | None = None
    #: the method's own keyword settings (e.g. mask: train_steps, target_edges, lr, warm_start)
    method_options: dict = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        """Raise RunError for any bad setting (cheap; runs before loading the model)."""
        from circuits.tasks import TaskError

        if self.data is not None:  # the whole file, with the model's tokenizer, before loading it
            check_data_file(self.data, self.model, self.counterfactual, self.seed, self.positions)
        else:
            try:
                get_task(self.task)
            except TaskError as err:
                raise RunError(str(err)) from None
            check_user_examples(self)  # a user's module:factory task, like a prompt file
        try:  # builds the method: a registered name or "ensemble:NAME,NAME"; a misspelt or
            # impossible option fails before the model loads
            method = get_method(self.method, steps=self.steps, options=self.method_options)
        except ValueError as err:
            raise RunError(str(err)) from None
        if self.positions is not None:
            check_positions(self, method)
        try:  # the registry as it is now: ablations registered after import count too
            ablations.get(self.ablation)
        except AblationError as err:
            raise RunError(str(err)) from None
        metric = self.task_metric
        if metric not in METRICS:
            raise RunError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if self.quadrature_rule not in RULES:
            raise RunError(
                f"unknown quadrature rule {self.quadrature_rule!r}; choose one of {', '.join(RULES)}"
            )
        if self.dtype is not None and self.dtype not in DTYPES:
            raise RunError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.device is not None and self.device_map is not None:
            raise RunError(
                "pass either a device (the whole model on one device) or a device map "
                "(layers spread over devices), not both"
            )
        if self.device is not None:
            _check_device(self.device, "device")
        if self.device_map is not None and self.device_map not in DEVICE_MAP_STRATEGIES:
            _check_device(self.device_map, "device-map")
        if not self.memory_budget_gb > 0:
            raise RunError(f"memory-budget-gb must be positive, got {self.memory_budget_gb}")
        for name in ("steps", "n_examples", "n_eval", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise RunError(
                    f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        try:
            lo, hi = self.target
            parse_target(lo if hi is None else (lo, hi))
        except (TypeError, ValueError) as err:
            raise RunError(f"bad target {self.target!r}: {err}") from None

    @property
    def task_metric(self) -> str:
        return self.metric or (FILE_METRIC if self.data else get_task(self.task).metric)


def _check_device(name: str, option: str) -> None:
    """RunError unless ``name`` is a torch device this machine has (before loading)."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        strategies = (
            f", or one of {', '.join(DEVICE_MAP_STRATEGIES)}" if option == "device-map" else ""
        )
        raise RunError(
            f"{option} {name!r} is not a torch device; use e.g. cpu, cuda or cuda:1{strategies}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(
                f"{option} {name!r}: this torch sees no CUDA GPU (torch.cuda.is_available() is "
                "False); use cpu, or install a CUDA build of torch on a machine with a GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RunError(
                f"{option} {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0"
            )


def load_for_task(
    model: str,
    device: str | None = None,
    *,
    dtype: str | None = None,
    device_map: str | None = None,
) -> tuple[Any, Any, str]:
    """``(bridge, tokenizer, source)`` for a zoo name, a local folder or a Hub name;
    ``dtype`` is a :data:`DTYPES` name, ``device_map`` Hugging Face's (see ``load_model``)."""
    from circuits.models import ModelLoadError, load_model, zoo

    placement = {
        "device": device,
        "dtype": DTYPES[dtype] if dtype else None,
        "device_map": device_map,
    }
    if model in zoo.available():
        bridge, tokenizer = zoo.load(model, **placement)
        return bridge, tokenizer, "zoo"
    is_path = Path(model).expanduser().exists()
    try:
        bridge = load_model(model, **placement)
    except ModelLoadError as err:
        if is_path:
            raise
        raise ModelLoadError(
            f"{model!r} is not a bundled model (available: {', '.join(zoo.available()) or 'none'}) "
            f"nor a local folder, and loading it from the Hugging Face Hub failed: {err}"
        ) from err
    tokenizer = getattr(bridge, "tokenizer", None)
    if tokenizer is None:
        raise ModelLoadError(
            f"model {model!r} has no tokenizer; task prompts are text, so save the tokenizer "
            "in the model folder (tokenizer.save_pretrained(folder))"
        )
    return bridge, tokenizer, "path" if is_path else "hub"


def _round(x: Any, digits: int = 6) -> Any:
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    return x


def _distinct_prompts(pairs: PromptPairs, role: str) -> dict[str, int]:
    """How many different clean and corrupted prompts ``pairs`` hold (repeats inflate n);
    two prompts are the same when their real tokens are (padding is masked out)."""

    def distinct(tokens: torch.Tensor) -> int:
        rows = torch.cat([tokens * pairs.attention_mask, pairs.attention_mask], dim=1)
        return int(torch.unique(rows, dim=0).shape[0])

    return {
        f"n_{role}_distinct_clean": distinct(pairs.clean),
        f"n_{role}_distinct_corrupted": distinct(pairs.corrupted),
    }


def _standard_error(full: list[float], empty: list[float]) -> float | None:
    """Standard error of the mean of m(M) − m(∅) over examples (None below two)."""
    if len(full) < 2:
        return None
    diff = torch.tensor(full, dtype=torch.float64) - torch.tensor(empty, dtype=torch.float64)
    return float(diff.std() / len(diff) ** 0.5)


def _quantiles(values: list[float]) -> list[float]:
    return torch.quantile(
        torch.tensor(values, dtype=torch.float64), torch.tensor(QUANTILES, dtype=torch.float64)
    ).tolist()


def _example_pairs(data: Any, tokenizer: Any) -> list[dict[str, str]]:
    """The first prompt pairs, decoded from the token ids the model was given."""

    def text(ids: torch.Tensor) -> str:
        return tokenizer.decode([int(i) for i in ids if int(i) >= 0])

    out = []
    for i in range(min(N_EXAMPLE_PAIRS, len(data))):
        real = data.attention_mask[i].bool()
        out.append(
            {
                "clean": text(data.clean[i][real]),
                "corrupted": text(data.corrupted[i][real]),
                "answer": text(data.answers[i][:1]),
                "distractor": text(data.distractors[i][:1]) if data.distractors.shape[1] else "",
            }
        )
    return out


@dataclass
class Discovery:
    """What :func:`find_circuit` computed: the graph (scores, and the minimal circuit as
    ``in_graph``), the search, the faithfulness curve and the run record (every number of
    ``metrics.json``)."""

    graph: Graph
    minimal: MinimalCircuit
    curve: FaithfulnessCurve
    record: RunRecord
    #: with ``settings.positions``: the position-aware circuit and its comparison
    positions: PositionRun | None = None
    #: the ablation the run was made with (its graph files save how to rebuild it)
    ablation: Ablation | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The record as the ``metrics.json`` object (strict JSON values, rounded)."""
        return _round(strict_json(self.record.to_dict()))


def find_circuit(
    settings: DiscoverySettings, *, quiet: bool = False, command: str | None = None
) -> Discovery:
    """Load the model, score its edges, find the minimal circuit and measure it (no files).

    Raises:
        RunError: bad settings (before any model work).
        circuits.models.zoo.ZooError, circuits.models.ModelLoadError: the model cannot be loaded.
    """
    settings.check()
    return _find_checked(settings, quiet=quiet, command=command)


def _find_checked(settings: DiscoverySettings, *, quiet: bool, command: str | None) -> Discovery:
    """:func:`find_circuit` on settings already checked (the check reads and tokenises a
    whole prompt file, so :func:`discover`, which checks before it locks the folder, does not
    run it twice)."""
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    metric = settings.task_metric
    t = time.perf_counter()
    bridge, tokenizer, source = load_for_task(
        settings.model, settings.device, dtype=settings.dtype, device_map=settings.device_map
    )
    t = lap("load_model_s", t)

    train, test, task_info = prompt_pairs(settings, tokenizer)
    # the graph files record the model as the user named it, not the folder it loaded from
    graph = Graph(dataclasses.replace(ModelSpec.from_model(bridge), model_name=settings.model))
    method = get_method(
        settings.method, steps=settings.steps, quadrature_rule=settings.quadrature_rule,
        options=settings.method_options,
    )  # fmt: skip
    ablation = build_ablation(
        settings.ablation, train, metric=metric, seed=settings.seed, quiet=quiet
    )
    setup = RunSetup(metric, ablation, settings.batch_size, quiet=quiet)
    t = lap("data_s", t)

    result = attribute(
        bridge, graph, train, method=method, memory_budget_gb=settings.memory_budget_gb,
        setup=setup,
    )  # fmt: skip
    t = lap("attribution_s", t)

    lo, hi = settings.target
    for warning in target_warnings(parse_target(lo if hi is None else (lo, hi))):
        # before the search, which may take long and cannot meet such a target with every edge
        warnings.warn(f"{warning['message']}; {warning['fix']}", UserWarning, stacklevel=2)
    minimal = minimal_circuit(
        bridge, graph, train, target=lo if hi is None else (lo, hi), absolute=settings.absolute,
        quiet=quiet, setup=dataclasses.replace(setup, quiet=True),
    )  # fmt: skip
    graph.set_in_graph(minimal.mask)
    t = lap("search_s", t)

    # one evaluator for the held-out split: its clean and ablated runs serve both calls
    held_out = CircuitEvaluator(bridge, graph, test, setup=setup)
    faith = evaluate(
        bridge, graph, test, bootstrap=settings.bootstrap, random_baseline=True,
        seed=settings.seed, evaluator=held_out,
    )  # fmt: skip
    t = lap("evaluate_s", t)
    curve = faithfulness_curve(
        bridge, graph, test, fractions=tuple(settings.fractions), absolute=settings.absolute,
        random_baseline=True, seed=settings.seed, evaluator=held_out,
    )  # fmt: skip
    t = lap("curve_s", t)

    position_run = None
    if settings.positions is not None:  # the same scores, ranked per (span, edge)
        position_run = find_position_circuit(
            bridge, graph, train, held_out, minimal, faith.f, settings, setup, quiet=quiet
        )
        t = lap("positions_s", t)

    behaviour = prompt_behaviour(bridge, test, metric, batch_size=settings.batch_size)
    t = lap("behaviour_s", t)

    n_edges_total = int(graph.real_edges.sum())
    top = graph.top_edges(TOP_EDGES)
    circuit_edges = [e for e in graph.top_edges(n_edges_total) if e.in_graph]
    record = RunRecord(
        package_version=version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        model={
            "name": settings.model,
            "source": source,
            "architecture": graph.spec.architecture,
            "n_layers": graph.spec.n_layers,
            "n_heads": graph.spec.n_heads,
            "n_kv_heads": graph.spec.n_kv_heads,
            "d_model": graph.spec.d_model,
            "n_parameters": sum(p.numel() for p in bridge.parameters()),
            "dtype": str(next(bridge.parameters()).dtype).replace("torch.", ""),
            "device": str(next(bridge.parameters()).device),
            "devices": sorted({str(p.device) for p in bridge.parameters()}),
            "processing": dict(getattr(bridge, "circuit_discovery_processing", {})),
        },
        task={
            **task_info,  # name and description; a prompt file's layout and split
            "metric": metric,
            "n_attribution": len(train),
            "n_evaluation": len(test),
            "attribution_split": "train",
            "evaluation_split": "test",
            "n_positions": train.n_pos,
            "seed": settings.seed,
            **_distinct_prompts(train, "attribution"),
            **_distinct_prompts(test, "evaluation"),
            **held_out_prompts(train, test),  # the report's held-out sentence
        },
        settings={
            "method": settings.method,
            "steps": settings.steps if method.integrates else None,
            "quadrature_rule": settings.quadrature_rule if method.integrates else None,
            "method_options": method.settings() if settings.method_options else None,
            "ablation": settings.ablation,
            "metric": metric,
            "target": list(minimal.target),
            "absolute": settings.absolute,
            "batch_size": settings.batch_size,
            "memory_budget_gb": settings.memory_budget_gb,
            "device_map": settings.device_map,
            "positions": settings.positions,
            "fractions": list(settings.fractions),
            "bootstrap": settings.bootstrap,
            "seed": settings.seed,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        graph={"n_nodes": graph.n_nodes, "n_edges": n_edges_total},
        circuit={
            "search_split": "train",
            "n_edges": graph.count_included_edges(),
            "n_nodes": graph.count_included_nodes(),
            "edge_fraction": graph.count_included_edges() / n_edges_total,
            "reached_target": minimal.reached,
            "f_search": minimal.f,
        },
        faithfulness={
            "f": faith.f,
            "ci": list(faith.ci) if faith.ci else None,
            "ci_level": faith.ci_level,
            "m_full": faith.m_full,
            "m_circuit": faith.m_circuit,
            "m_empty": faith.m_empty,
            "random_f": faith.random_f,
            "random_f_std": faith.random_f_std,
            "random_fs": faith.random_fs,
            "random_draws": len(faith.random_fs),
            "m_diff_se": _standard_error(faith.per_example_full, faith.per_example_empty),
            "n_examples": faith.n_examples,
            "split": "test",
        },
        curve={
            "fractions": curve.fractions,
            "n_edges": curve.n_edges,
            "f": curve.f,
            "random_f": curve.random_f,
            "random_f_std": curve.random_f_std,
            "random_draws": curve.random_draws,
            "m_circuits": curve.m_circuits,
            **curve.areas(),  # cpr/cmd: MIB's linear axis; cpr_log/cmd_log: log axis
        },
        search={
            "target": list(minimal.target),
            "n_evaluations": len(minimal.evaluations),
            "evaluations": [asdict(e) for e in minimal.evaluations],
        },
        attribution={
            **{k: float(v) for k, v in result.diagnostics.items()},
            "ig_gap_definition": method.gap_definition if method.reports_gap else None,
        },
        timings=timings,
        top_edges=[{"edge": e.name, "score": e.score, "in_circuit": e.in_graph} for e in top],
        circuit_edges=[{"edge": e.name, "score": e.score} for e in circuit_edges],
        examples=_example_pairs(test, tokenizer),
        behaviour={
            **behaviour,
            "split": "test",
            "quantiles": list(QUANTILES),
            "m_full_quantiles": _quantiles(faith.per_example_full),
            "m_circuit_quantiles": _quantiles(faith.per_example_circuit),
            "m_empty_quantiles": _quantiles(faith.per_example_empty),
        },
        figures={
            "circuit": "circuit.png",
            "faithfulness_curve": "faithfulness_curve.png",
            "score_histogram": "score_histogram.png",
        },
        positions=position_run.record if position_run else {},
    )
    if position_run is not None:
        record.figures["position_circuit"] = "position_circuit.png"
        record.positions["files"] = [POSITION_GRAPHML, POSITION_JSON]
    record.verdict = verdict(record.to_dict())
    record.warnings = run_warnings(strict_json(record.to_dict()))
    return Discovery(graph, minimal, curve, record, position_run, ablation)


def discover(
    settings: DiscoverySettings,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    quiet: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the whole job (:func:`find_circuit`) and write the run folder ``out``; returns the
    metrics dict.

    Raises:
        RunError: bad settings (before any model work).
        circuits.app.output.OutputError: an output folder it must not or cannot write, or
            one another run is writing (:func:`circuits.app.output.output_lock`; before any
            model work).
        circuits.models.zoo.ZooError, circuits.models.ModelLoadError: the model cannot be loaded.
    """
    out = Path(out)
    settings.check()
    check_output_folder(out, overwrite)
    if not is_main_process():  # under torchrun rank 0 alone writes, so it alone locks
        return _discover_and_write(settings, out, overwrite, quiet, command)
    with output_lock(out, command):  # held until the folder is in place
        check_output_folder(out, overwrite)  # again: a run may have finished before the lock
        return _discover_and_write(settings, out, overwrite, quiet, command)


def _discover_and_write(
    settings: DiscoverySettings, out: Path, overwrite: bool, quiet: bool, command: str | None
) -> dict[str, Any]:
    """:func:`discover` once its output folder is checked (and locked)."""
    from circuits.app.explorer import write_explorer
    from circuits.app.figures import draw_circuit, plot_faithfulness_curve, plot_score_histogram
    from circuits.app.integrity import file_digests
    from circuits.app.position_figures import draw_position_circuit
    from circuits.app.report import write_report
    from graphs.atomic_files import atomic_directory
    from graphs.graphml_io import save_graphml

    t_start = time.perf_counter()
    run = _find_checked(settings, quiet=quiet, command=command)  # discover checked them
    graph, record = run.graph, run.record
    if not is_main_process():  # under torchrun: every rank computed the same numbers
        record.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        return run.metrics
    check_output_folder(out, overwrite)  # again: the folder may have changed during the run
    # the graph files say how their scores were made, so `circuits evaluate` can check them
    graph.metadata.update(
        model=settings.model, task=record.task["name"], metric=record.settings["metric"],
        method=settings.method, ablation=settings.ablation,
        split=record.task["attribution_split"], seed=settings.seed,
    )  # fmt: skip
    if settings.positions is not None:  # `circuits evaluate` rebuilds the same spans
        graph.metadata["positions"] = settings.positions
    # what rebuilds the ablation (evaluate and serve refit on as many reference prompts)
    graph.metadata.update(run.ablation.saved())
    if settings.data is not None:  # the prompts came from a file: evaluate finds it again,
        # from any folder, and knows whether it changed since
        task = run.record.task  # the path and hash the record holds, computed once
        graph.metadata.update(
            data=task["data_file"], data_sha256=task["data_sha256"],
            counterfactual=settings.counterfactual,
        )  # fmt: skip
    with atomic_directory(out, overwrite=overwrite) as tmp:
        t = time.perf_counter()
        # the position-agnostic layout: the run's main circuit, as a plain run writes it
        save_graphml(graph, tmp / "graph.graphml", positions=False)
        graph.save(tmp / "graph.json")  # with --positions these also keep the per-span scores
        graph.save(tmp / "scores.safetensors")
        title = f"{record.task['name']} on {settings.model}"
        draw_circuit(graph, tmp / "circuit", title=f"{title}: {graph.count_included_edges()} edges")
        if run.positions is not None:  # the whole graph again, with the position-aware circuit
            aware = graph.copy()
            aware.set_circuit(run.positions.circuit)
            aware.save(tmp / POSITION_GRAPHML)  # one node per (node, span)
            aware.save(tmp / POSITION_JSON)
            n_aware = int(run.positions.circuit.edges.sum())
            draw_position_circuit(
                aware, tmp / "position_circuit.png",
                title=f"{title}: {n_aware} position-aware edges",
            )  # fmt: skip
        plot_faithfulness_curve(
            run.curve, tmp / "faithfulness_curve", minimal=run.minimal, title=title
        )
        plot_score_histogram(graph, tmp / "score_histogram", title=title)
        record.timings["figures_s"] = round(time.perf_counter() - t, 3)
        record.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        record.integrity = file_digests(tmp)  # checked by every reader of the graph files
        metrics = run.metrics
        RunRecord.from_dict(metrics).write(tmp)
        write_report(tmp)
        write_explorer(tmp)
    return metrics
