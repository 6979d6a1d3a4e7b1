"""``circuits export GRAPH --format F``: write a graph file as GraphML, JSON, Graphviz DOT or
MIB's circuit files."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, UsageError, check_graph_file

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "Write GRAPH as GraphML, JSON, Graphviz DOT or MIB's circuit files."


def add_arguments(x: argparse.ArgumentParser) -> None:
    """The options of ``circuits export``."""
    x.add_argument("graph", type=Path, help="graph file (.graphml, .json or .safetensors)")
    x.add_argument(
        "--format", required=True, choices=("graphml", "json", "dot", "mib", "mib-pt"),
        help="output format; mib (JSON) and mib-pt (.pt): GRAPH may be a run folder, --out a "
        "folder that gets {task}_{model}/ (see docs/circuits.md)",
    )  # fmt: skip
    x.add_argument("--out", type=Path, help="output file (default: GRAPH with the new suffix)")
    x.add_argument(
        "--all-edges", action="store_true", help="DOT only: every edge, not just the circuit"
    )
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    x.add_argument(
        "--contents", choices=("importances", "circuits"), default="importances",
        help="mib only: one importance file (default) or the circuits at MIB's sizes",
    )  # fmt: skip
    x.add_argument("--mib-task", help="mib only: the task name of the folder (default: the run's)")
    x.add_argument(
        "--mib-model", help="mib only: the model name of the folder (default: the run's)"
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Write the converted file (MIB: a submission folder)."""
    from circuits.app.integrity import load_checked_graph
    from graphs.dot_io import save_dot
    from graphs.io import save_graph

    if args.format in ("mib", "mib-pt"):  # MIB's layout, into a folder
        from circuits.app.mib_export import export_mib_run

        paths = export_mib_run(
            args.graph, args.out, args.overwrite, contents=args.contents,
            fmt="pt" if args.format == "mib-pt" else "json", task=args.mib_task,
            model=args.mib_model,
        )  # fmt: skip
        print(f"wrote {len(paths)} MIB files to {paths[0].parent}")
        return EXIT_OK
    check_graph_file(args.graph)
    out = args.out or args.graph.with_suffix("." + args.format)
    if out.resolve() == args.graph.resolve():
        raise UsageError(f"{args.graph} is already {args.format}; pass --out to write a copy")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    graph = load_checked_graph(args.graph)
    if args.format == "dot":
        save_dot(graph, out, only_in_graph=not args.all_edges)
    else:
        save_graph(graph, out, format=args.format)
    print(f"wrote {out}")
    return EXIT_OK
