"""``circuits compare RUN_A RUN_B``: two runs side by side in compare.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.app.cli.common import EXIT_OK, check_run_dir

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Write compare.html: both circuits drawn side by side, their shared and "
    "different edges, each circuit's held-out f, the edge-set Jaccard index and the Spearman "
    "rank correlation of the two runs' scores."
)


def add_arguments(c: argparse.ArgumentParser) -> None:
    """The options of ``circuits compare``."""
    c.add_argument("run_a", type=Path, help="first run folder")
    c.add_argument("run_b", type=Path, help="second run folder (same model shape)")
    c.add_argument(
        "--out",
        type=Path,
        default=Path("compare.html"),
        help="page to write (default: compare.html)",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Write the page and print the two runs' overlap."""
    from circuits.app.explorer import write_compare

    for folder in (args.run_a, args.run_b):
        check_run_dir(folder)
    out, result = write_compare(args.run_a, args.run_b, args.out)
    fa, fb = result["a"]["f"], result["b"]["f"]
    jac, rho = result["jaccard"], result["spearman"]
    print(
        f"A: {result['a']['n_edges']} edges, f {fa if fa is None else round(fa, 4)}; "
        f"B: {result['b']['n_edges']} edges, f {fb if fb is None else round(fb, 4)}; "
        f"{len(result['shared'])} shared edges, Jaccard {jac if jac is None else round(jac, 4)}, "
        f"Spearman {rho if rho is None else round(rho, 4)}"
    )
    print(f"wrote {out}")
    return EXIT_OK
