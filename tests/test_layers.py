"""The layers of the code, checked from the source (docs/architecture.md states them):

    graphs  →  attribution  →  circuits (the library)  →  circuits.app

A module may import from its own layer and the layers to its left, never to its right: nothing in
the library imports the app. Every ``import`` counts here, including those inside functions (a
deferred import is still a dependency) and those under ``if TYPE_CHECKING:``.

Between modules there is no import cycle. The cycle graph has an edge for every import that runs:
module-level *and* function-local ones (deferring an import is the usual way to hide a cycle,
and the two modules still cannot be understood or moved apart), but not the ones under
``if TYPE_CHECKING:``, which never run and only let an annotation name a type. An edge goes to
the module an import names (``from a.b import c`` names ``a.b.c`` when that is a module, else
``a.b``), not to the parent packages Python also runs on the way.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphs", "attribution", "circuits")
#: Layer names, lowest first; ``layer_of`` puts each module in one.
LAYERS = ("graphs", "attribution", "circuits library", "circuits.app")

#: Cycles that another change removes, each with that change; the test fails once one is gone,
#: so the list cannot go stale.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    runs: bool  # False under `if TYPE_CHECKING:`


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of ``module``; ``circuits.__main__`` (the command line) is app."""
    parts = module.split(".")
    if parts[0] != "circuits":
        return PACKAGES.index(parts[0])
    return 3 if len(parts) > 1 and parts[1] in ("app", "__main__") else 2


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> its file, for every ``.py`` file under the packages."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its nearest enclosing module that is ours; None for other packages."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from a import b` names the module a.b when there is one, else a name inside a
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    return [t for t in dict.fromkeys(_known(n, modules) for n in names) if t and t != module]


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, modules: dict[str, Path]) -> list[Import]:
    """Every import of our modules in ``module``'s source, at any depth."""
    found: list[Import] = []

    def visit(node: ast.AST, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(child, module, modules):
                    found.append(Import(module, target, child.lineno, runs))
            visit(child, runs and not _is_type_checking(child))

    visit(ast.parse(modules[module].read_text(), str(modules[module])), True)
    return found


def all_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    modules = module_files(root, packages)
    return [imp for module in modules for imp in imports_of(module, modules)]


def upward_imports(imports: list[Import]) -> list[str]:
    """One line per import from a lower layer into a higher one."""
    return [
        f"{imp.source}:{imp.line} imports {imp.target} "
        f"({LAYERS[layer_of(imp.source)]} → {LAYERS[layer_of(imp.target)]})"
        for imp in imports
        if layer_of(imp.target) > layer_of(imp.source)
    ]


def import_cycles(imports: list[Import]) -> list[frozenset[str]]:
    """The sets of modules that import each other round a cycle (imports that run)."""
    graph = nx.DiGraph((imp.source, imp.target) for imp in imports if imp.runs)
    return [frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


# ------------------------------------------------------------------------------ this repository
def test_layer_of():
    assert [layer_of(m) for m in ("graphs.graph", "attribution", "circuits.tasks.ioi")] == [0, 1, 2]
    assert layer_of("circuits") == 2 and layer_of("circuits.application") == 2
    assert layer_of("circuits.app.cli") == layer_of("circuits.__main__") == 3


def test_no_module_imports_a_higher_layer():
    assert upward_imports(all_imports(ROOT)) == []


def test_no_import_cycle_between_modules():
    cycles = import_cycles(all_imports(ROOT))
    unexplained = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert unexplained == [], "import cycles (function-local imports count)"
    gone = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles]
    assert gone == [], "no longer a cycle: remove it from ALLOWED_CYCLES"


def test_every_package_module_is_seen():
    imports = all_imports(ROOT)
    assert len(module_files(ROOT)) > 100  # the walk found the packages
    edges = {(i.source, i.target) for i in imports}
    assert ("circuits.app.discovery.attribute", "attribution.attribute") in edges
    # a function-local import
    assert ("circuits.app.cli.discover", "circuits.app.discovery") in edges


def lazy_targets(root: Path) -> set[tuple[str, str]]:
    """``(package, module)`` for every module a lazy-export table (``_WHERE``, graphs/lazy.py)
    names: imports made on first use, by name, that the import parse does not see."""
    found = set()
    for module, path in module_files(root).items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_WHERE" for t in node.targets
            ):
                found |= {(module, v) for v in ast.literal_eval(node.value).values()}
    return found


def test_the_library_names_the_app_only_in_the_circuits_lazy_table():
    lazy = lazy_targets(ROOT)
    assert ("circuits", "circuits.models") in lazy  # the parse found the tables
    upward = {(m, t) for m, t in lazy if layer_of(t) > layer_of(m)}
    assert upward == {("circuits", "circuits.app.discovery")}  # circuits.discover, as documented


# --------------------------------------------------------------------- the checker on fixtures
def _package(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path -> source) under ``root``, with an ``__init__.py`` in each folder."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in [path.parent, *path.parent.parents]:
            if folder == root or root not in folder.parents:
                break
            (folder / "__init__.py").touch()
        path.write_text(source)
    return root


CLEAN = {
    "graphs/graph.py": "import math\n",
    "attribution/score.py": "from graphs.graph import math\n",
    "circuits/search.py": "from attribution import score\nfrom . import tasks\n",
    "circuits/tasks.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
    "    from circuits.search import x\n",
    "circuits/app/cli.py": "def main():\n    from circuits.search import x\n",
}


def test_checker_passes_a_clean_tree(tmp_path):
    imports = all_imports(_package(tmp_path, CLEAN))
    assert upward_imports(imports) == []
    assert import_cycles(imports) == []  # tasks → search only under TYPE_CHECKING
    assert {(i.source, i.target) for i in imports} >= {
        ("circuits.search", "circuits.tasks"),  # a relative import
        ("circuits.app.cli", "circuits.search"),
    }


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("graphs/io.py", "import attribution.score\n", "graphs.io:1 imports attribution.score"),
        (
            "circuits/models/card.py",
            "def card():\n    from circuits.app.cli import main\n",
            "circuits.models.card:2 imports circuits.app.cli (circuits library → circuits.app)",
        ),
        (
            "circuits/models/x.py",
            "from ..app import cli\n",
            "circuits.models.x:1 imports circuits.app.cli",
        ),
    ],
)
def test_checker_catches_an_upward_import(tmp_path, name, source, expected):
    files = {**CLEAN, name: source}
    (found,) = upward_imports(all_imports(_package(tmp_path, files)))
    assert found.startswith(expected)


def test_checker_catches_a_cycle_through_a_function_local_import(tmp_path):
    files = {**CLEAN, "circuits/tasks.py": "def sample():\n    from circuits import search\n"}
    assert import_cycles(all_imports(_package(tmp_path, files))) == [
        frozenset({"circuits.search", "circuits.tasks"})
    ]
