"""No function in the library is over 80 lines (issue 27): every ``.py`` of ``graphs/``,
``attribution/`` and ``circuits/`` is parsed with ``ast`` and each function's length counted
from its ``def`` (decorators excluded) to its last line, docstring and comments included."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphs", "attribution", "circuits")
MAX_LINES = 80


def _functions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of every function and method, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


def long_functions(root: Path, packages=PACKAGES, limit: int = MAX_LINES):
    """``{(path, qualified name): (line, length)}`` of every function over ``limit`` lines in
    the ``.py`` files under ``root/package`` for each package (paths relative to ``root``)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name, node in _functions(tree):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found[(path.relative_to(root).as_posix(), name)] = (node.lineno, length)
    return found


def _report(found) -> str:
    return "; ".join(
        f"{path}:{line} {name} is {length} lines" for (path, name), (line, length) in found.items()
    )


def test_no_library_function_is_over_80_lines():
    found = long_functions(ROOT)
    assert not found, f"over {MAX_LINES} lines (split them by concept): {_report(found)}"


def _module(lines: int) -> str:
    """A module with one function of exactly ``lines`` lines, a method and a nested function."""
    body = "\n".join(f"    x{i} = {i}" for i in range(lines - 2))
    return (
        f"def long():\n    '''doc'''\n{body}\n\n\n"
        "class Holder:\n    def method(self):\n        def inner():\n            return 1\n"
        "        return inner\n"
    )


def test_the_checker_names_a_deliberate_violation(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "too_long.py").write_text(_module(81))
    (package / "sub" / "just_fits.py").write_text(_module(80))
    found = long_functions(tmp_path, packages=("pkg",))
    assert found == {("pkg/sub/too_long.py", "long"): (1, 81)}
    assert _report(found) == "pkg/sub/too_long.py:1 long is 81 lines"


def test_the_checker_counts_methods_and_nested_functions(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    body = textwrap.indent(_module(81), "        ")
    (package / "nested.py").write_text(f"class Outer:\n    def method(self):\n{body}")
    found = long_functions(tmp_path, packages=("pkg",))
    # the method holds the 81-line function, so both are over the limit
    assert set(found) == {("pkg/nested.py", "Outer.method"), ("pkg/nested.py", "Outer.method.long")}
    assert found[("pkg/nested.py", "Outer.method.long")] == (3, 81)
