"""The interactive circuit explorer: ``explorer.html`` in every run folder (Cytoscape.js,
vendored in ``static/``), ``compare.html`` of two runs, and the supernodes file that groups
nodes (drawn by ``circuits report``). ``circuits serve`` (:mod:`circuits.app.serve`) serves the
page with live ablation."""

from circuits.app.explorer.compare import compare_runs, spearman, write_compare
from circuits.app.explorer.data import explorer_data
from circuits.app.explorer.page import (
    EXPLORER_HTML,
    explorer_page,
    load_run,
    load_run_graph,
    render_explorer,
    write_explorer,
)
from circuits.app.explorer.run_files import draw_supernodes, update_run_folder
from circuits.app.explorer.supernodes import (
    SUPERNODES_FILE,
    Supernode,
    SupernodeError,
    Supernodes,
    load_supernodes,
)

__all__ = [
    "EXPLORER_HTML",
    "SUPERNODES_FILE",
    "Supernode",
    "SupernodeError",
    "Supernodes",
    "compare_runs",
    "draw_supernodes",
    "explorer_data",
    "explorer_page",
    "load_run",
    "load_run_graph",
    "load_supernodes",
    "render_explorer",
    "spearman",
    "update_run_folder",
    "write_compare",
    "write_explorer",
]
