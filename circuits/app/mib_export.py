"""Circuit files that MIB's circuit-localization track reads (Mueller et al. 2025).

Matched against MIB's public code (hannamw/MIB-circuit-track at b759df3, its EAP-IG submodule
at 7af394a; see docs/circuits.md, "MIB files"):

- a JSON graph ``{"cfg": {n_layers, n_heads, parallel_attn_mlp, d_model}, "nodes": {name:
  {"in_graph": bool}}, "edges": {name: {"score": float, "in_graph": bool}}}``, the names of
  EAP-IG's graph (``input``, ``a{l}.h{h}``, ``m{l}``, ``logits``; ``a0.h1->a2.h3<q>``);
- the ``.pt`` form (``--format mib-pt``): ``cfg, src_nodes, dst_nodes, edges_scores,
  edges_in_graph, nodes_in_graph``, the tensors laid out as EAP-IG's graph lays them out
  (forward: ``input``, then per layer its heads and MLP; backward: per layer the q, k, v
  inputs of every head and the MLP input, then the logits).

A folder ``{task}_{model}`` (MIB's task and model names, :func:`mib_folder_name`) holds either
one importance file (``importances.json``/``.pt``, the default: what MIB's own attribution
script writes and its evaluator loads) or one circuit per size of :data:`MIB_CIRCUIT_PERCENTS`
(the sizes MIB's README lists), never both. A circuit of p % holds at most ``int(p/100 · n)``
of MIB's ``n`` edges, the rule of MIB's evaluator (``int(pct * n_edges)``).

Grouped-query models: MIB's graph has k and v inputs per *query* head, ours per key/value
head (``a1.kv0<k>``), so each such edge is written once per query head of its group with the
same score and flag; :func:`graph_edge_of` maps every written name back to its edge.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from graphs import Graph
from graphs.errors import CircuitDiscoveryError
from graphs.mib_io import (
    MIBTensors,
    graph_edge_of,
    mib_graph,
    mib_port_names,
    mib_tensors,
    save_mib,
    save_mib_pt,
)

__all__ = [
    "MIB_CIRCUIT_PERCENTS",
    "MIB_FRACTIONS",
    "MIB_MODELS",
    "MIB_PAIRS",
    "MIB_PERCENTS",
    "MIB_TASKS",
    "MIBExportError",
    "MIBTensors",
    "check_mib_pair",
    "clear_submission",
    "export_mib",
    "export_mib_run",
    "graph_edge_of",
    "mib_circuit",
    "mib_cpr_cmd",
    "mib_curve",
    "mib_curves",
    "mib_folder_name",
    "mib_graph",
    "mib_model_name",
    "mib_ranking",
    "mib_size",
    "mib_task_name",
    "mib_tensors",
    "submission_folder",
]

#: The fractions of edges MIB's evaluator keeps (``evaluation.py``), in its own float literals
#: so that ``int(fraction * n)`` gives its sizes bit for bit.
MIB_FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)
#: The same sizes in percent of the edges (the faithfulness curve's points).
MIB_PERCENTS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
#: The circuit files MIB's README asks for: one of at most each of these percentages (it says
#: "9 files" but lists ten values; all ten are written, the 0 % circuit holds no edge).
MIB_CIRCUIT_PERCENTS: tuple[float, ...] = (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)

#: The project's task names → MIB's folder task names (``utils.py``'s tasks, ``_`` → ``-``).
MIB_TASKS: dict[str, str] = {
    "ioi": "ioi", "mcqa": "mcqa", "copycolors-mcqa": "mcqa",
    "arithmetic-addition": "arithmetic-addition", "arithmetic-subtraction": "arithmetic-subtraction",
    "arc-easy": "arc-easy", "arc-challenge": "arc-challenge",
}  # fmt: skip
#: Model names (Hugging Face ids, lower case) → MIB's model names (``utils.py``).
MIB_MODELS: dict[str, str] = {
    "gpt2": "gpt2", "gpt2-small": "gpt2", "openai-community/gpt2": "gpt2",
    "qwen/qwen2.5-0.5b": "qwen2.5", "qwen2.5-0.5b": "qwen2.5",
    "google/gemma-2-2b": "gemma2", "gemma-2-2b": "gemma2",
    "meta-llama/llama-3.1-8b": "llama3", "llama-3.1-8b": "llama3",
    "interpbench": "interpbench",
}  # fmt: skip


#: The task/model pairs MIB evaluates (``utils.py``'s ``COL_MAPPING``).
MIB_PAIRS: frozenset[str] = frozenset({
    "ioi_gpt2", "ioi_qwen2.5", "ioi_gemma2", "ioi_llama3", "ioi_interpbench",
    "mcqa_qwen2.5", "mcqa_gemma2", "mcqa_llama3",
    "arithmetic-addition_llama3", "arithmetic-subtraction_llama3",
    "arc-easy_gemma2", "arc-easy_llama3", "arc-challenge_llama3",
})  # fmt: skip


class MIBExportError(CircuitDiscoveryError, ValueError):
    """A run folder or graph file that cannot be exported; the message says the fix."""


def _own_name(name: str) -> str:
    """A name without MIB's separator ``_`` (it splits the folder name into task and model)."""
    return name.strip().replace("_", "-")


def mib_task_name(task: str) -> str:
    """MIB's name of the project's ``task`` (``arc_easy`` → ``arc-easy``); a task MIB does not
    define keeps its own name with ``_`` written ``-``."""
    key = _own_name(task).lower()
    return MIB_TASKS.get(key, _own_name(task))


def mib_model_name(model: str) -> str:
    """MIB's name of ``model`` (a Hugging Face id, ``gpt2`` → ``gpt2``,
    ``Qwen/Qwen2.5-0.5B`` → ``qwen2.5``); any other model keeps the last part of its name with
    ``_`` written ``-`` (``toy-gpt2``)."""
    key = model.strip().lower()
    if key in MIB_MODELS:
        return MIB_MODELS[key]
    return _own_name(Path(model.strip()).name)


def mib_folder_name(task: str, model: str) -> str:
    """The submission folder ``{task}_{model}`` in MIB's names (``ioi_gpt2``)."""
    return f"{mib_task_name(task)}_{mib_model_name(model)}"


def check_mib_pair(task: str, model: str) -> None:
    """MIBExportError when ``model`` is one of MIB's models and MIB defines no circuit for it on
    ``task`` (``mcqa`` with ``gpt2``); other models (the bundled ones) are the user's own."""
    model_name = mib_model_name(model)
    if model_name not in set(MIB_MODELS.values()):
        return
    pair = mib_folder_name(task, model)
    if pair not in MIB_PAIRS:
        ours = sorted(p.split("_")[0] for p in MIB_PAIRS if p.endswith(f"_{model_name}"))
        raise MIBExportError(
            f"MIB defines no {pair}: its tasks for {model_name} are {', '.join(ours)}; pick one of "
            "them, or another model"
        )


def mib_size(fraction: float, n_edges: int) -> int:
    """How many edges MIB's evaluator keeps at ``fraction``: ``int(fraction * n_edges)``."""
    return int(fraction * n_edges)


# ------------------------------------------------------------------ selection and files
def _mib_weights(graph: Graph) -> torch.Tensor:
    """How many MIB edges each of our edges is written as (flat, ``[n_forward·n_backward]``)."""
    per_port = torch.tensor([len(n) for n in mib_port_names(graph)])
    return (graph.real_edges * per_port).flatten()


def mib_circuit(graph: Graph, fraction: float) -> torch.Tensor:
    """Our top edges by ``|score|`` (ties in index order): the longest prefix of the ranking
    that MIB counts as at most ``int(fraction · n)`` of its ``n`` edges."""
    weights = _mib_weights(graph)
    limit = mib_size(fraction, int(weights.sum()))
    order = graph.ranked_edge_indices(absolute=True)
    kept = int((weights[order].cumsum(0) <= limit).sum())
    mask = torch.zeros(graph.n_forward * graph.n_backward, dtype=torch.bool)
    mask[order[:kept]] = True
    return mask.view(graph.n_forward, graph.n_backward)


def _write(path: Path, graph: Graph, edges: torch.Tensor) -> None:
    (save_mib if path.suffix == ".json" else save_mib_pt)(graph, path, edges=edges)


def _file_names(contents: str, suffix: str) -> list[tuple[str, float | None]]:
    if contents == "importances":
        return [(f"importances{suffix}", None)]
    if contents == "circuits":
        return [(f"edges_{p:g}pct{suffix}", p / 100) for p in MIB_CIRCUIT_PERCENTS]
    raise MIBExportError(f"contents must be 'importances' or 'circuits', got {contents!r}")


def export_mib(
    graph: Graph,
    folder: str | Path,
    task: str,
    model: str,
    *,
    contents: str = "importances",
    fmt: str = "json",
) -> list[Path]:
    """Write ``folder/{task}_{model}/`` (MIB's names): ``contents="importances"`` one file of
    every edge's score (no edge flagged, as MIB's attribution script writes it), or
    ``"circuits"`` one circuit per size of :data:`MIB_CIRCUIT_PERCENTS`; ``fmt`` ``"json"`` or
    ``"pt"``. Returns the files written."""
    if fmt not in ("json", "pt"):
        raise MIBExportError(f"fmt must be 'json' or 'pt', got {fmt!r}")
    names = _file_names(contents, f".{fmt}")
    out = Path(folder) / mib_folder_name(task, model)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fraction in names:
        edges = torch.zeros_like(graph.real_edges)
        if fraction is not None:
            edges = mib_circuit(graph, fraction)
        _write(out / name, graph, edges)
        paths.append(out / name)
    return paths


def submission_folder(
    out: Path, task: str, model: str, overwrite: bool, fix: str = "pass --overwrite to replace it"
) -> Path:
    """``out/{task}_{model}`` (:func:`mib_folder_name`); MIBExportError, ending with ``fix``,
    when it holds files and ``overwrite`` is off (checked before any work)."""
    target = out / mib_folder_name(task, model)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise MIBExportError(f"{target} exists and is not empty; {fix}")
    return target


def clear_submission(target: Path) -> None:
    """Remove the files an earlier export wrote into ``target`` (only those names), so that a
    folder never holds both importances and circuits."""
    if not target.is_dir():
        return
    for path in target.iterdir():
        if re.fullmatch(r"(importances|edges_[0-9.]+pct)\.(json|pt)", path.name):
            path.unlink()


def export_mib_run(
    source: Path,
    out: Path | None,
    overwrite: bool,
    *,
    contents: str = "importances",
    fmt: str = "json",
    task: str | None = None,
    model: str | None = None,
) -> list[Path]:
    """``circuits export RUN_DIR --format mib|mib-pt``: the run's scores (``scores.safetensors``,
    or a graph file) as MIB files in ``out`` (default ``RUN_DIR/mib``), in the folder named by
    the run's task and model (its ``metrics.json``; ``task``/``model`` override them)."""
    from circuits.app.run import METRICS_FILE, RunRecord

    folder = source if source.is_dir() else source.parent
    graph_file = folder / "scores.safetensors" if source.is_dir() else source
    if not graph_file.is_file():
        raise MIBExportError(
            f"{source}: no scores.safetensors; give a run folder written by `circuits discover` "
            "or a graph file"
        )
    _file_names(contents, "")  # a wrong choice fails before the graph loads
    from circuits.app.integrity import load_checked_graph

    record = RunRecord.load(folder) if (folder / METRICS_FILE).is_file() else None
    graph = load_checked_graph(graph_file, record)  # the record read once, for both
    run_task, run_model = "task", graph.spec.model_name or "model"
    if record is not None:
        run_task, run_model = record.task.get("name", run_task), record.model.get("name", run_model)
    task, model = task or run_task, model or run_model
    out = out or folder / "mib"
    clear_submission(submission_folder(out, task, model, overwrite))
    return export_mib(graph, out, task, model, contents=contents, fmt=fmt)


# ------------------------------------------------------------------ MIB's CPR and CMD
def mib_cpr_cmd(f: list[float], fractions: tuple[float, ...] = MIB_FRACTIONS) -> dict[str, float]:
    """CPR and CMD as MIB's ``evaluate_area_under_curve`` computes them: the trapezoid rule
    over the fraction of edges (linear axis, from its first size to 1, no point at 0), of f
    and of |1 − f|, with no clipping of f."""
    cpr = cmd = 0.0
    for i in range(len(f) - 1):
        width = fractions[i + 1] - fractions[i]
        cpr += width * (f[i] + f[i + 1]) / 2
        cmd += width * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2
    return {"cpr": cpr, "cmd": cmd}


def mib_ranking(graph: Graph, ranking: str) -> torch.Tensor:
    """Flat indices of the real edges in the order MIB's evaluator takes them: ``"absolute"``
    by |score| (its ``--absolute``; our own order), ``"signed"`` by MIB's signed score, best
    first. MIB scores attribution to the *negated* logit difference (``loss=True``), so its
    signed order puts first the edges whose ablation lowers the metric most: our scores
    ascending."""
    if ranking == "absolute":
        return graph.ranked_edge_indices(absolute=True)
    if ranking != "signed":
        raise MIBExportError(f"ranking must be 'absolute' or 'signed', got {ranking!r}")
    real = graph.real_edges.flatten().nonzero().squeeze(1)
    flat = graph.scores.flatten().to(torch.float64)[real]
    return real[torch.sort(flat, stable=True).indices]


def mib_curve(
    model: Any, graph: Graph, data: Any, metric: str, *, ranking: str = "absolute", **kwargs: Any
) -> dict[str, Any]:
    """f at MIB's ten sizes and the areas: at each size the top ``int(k · n)`` edges of
    ``ranking`` (:func:`mib_ranking`), then, as MIB's evaluator does (``apply_topn(...,
    prune=True)``), without the edges on no ``input -> ... -> logits`` path
    (:func:`circuits.search.select.prune_dead_edges`, the fixed point of MIB's node rule);
    ``n_edges`` are the top-n sizes, ``n_edges_kept`` what pruning leaves. ``cpr``/``cmd`` as
    MIB computes them (:func:`mib_cpr_cmd`), ``cpr_log``/``cmd_log`` over log10 k
    (:mod:`circuits.search.areas`). ``kwargs`` go to
    :func:`circuits.search.faithfulness.circuit_metrics` (``ablation``, ``batch_size``, ...)."""
    return mib_curves(model, graph, data, metric, rankings=(ranking,), **kwargs)[0]


def mib_curves(
    model: Any, graph: Graph, data: Any, metric: str, *, rankings: tuple[str, ...], **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`mib_curve` of each of ``rankings``, all circuits evaluated in one pass (the full
    and the empty circuit once)."""
    from circuits.search.areas import curve_areas
    from circuits.search.faithfulness import circuit_metrics, curve_of
    from circuits.search.select import prune_dead_edges

    sizes = [mib_size(k, graph.n_edges) for k in MIB_FRACTIONS]
    masks = []
    for ranking in rankings:
        order = mib_ranking(graph, ranking)
        for size in sizes:
            mask = torch.zeros(graph.n_forward * graph.n_backward, dtype=torch.bool)
            mask[order[:size]] = True
            top = graph.circuit_of(mask.view(graph.n_forward, graph.n_backward))
            masks.append(prune_dead_edges(graph, top).edges)
    m_full, m_empty, m_circ = circuit_metrics(model, graph, data, masks, metric, **kwargs)
    curves = []
    for i, ranking in enumerate(rankings):
        part = slice(i * len(sizes), (i + 1) * len(sizes))
        curve = curve_of(tuple(float(k) for k in MIB_FRACTIONS), sizes, m_full, m_empty,
                         m_circ[part], 0)  # fmt: skip
        kept = [int(m.sum()) for m in masks[part]]
        curves.append(
            {
                "fractions": curve.fractions,
                "n_edges": curve.n_edges,
                "n_edges_kept": kept,
                "f": curve.f,
                "ranking": ranking,
                **curve_areas(curve.fractions, curve.f),
                **mib_cpr_cmd(curve.f),
            }  # fmt: skip
        )
    return curves
