"""Every error a user can cause derives from ``CircuitDiscoveryError``, under one name per class.

The packages' sources are parsed (``ast``) for ``raise ValueError(...)`` and its siblings:
a built-in raised directly bypasses the error root, so ``except CircuitDiscoveryError`` (and
the command line's exit code 2 with a one-line message) would miss it. The few built-ins that
stay are programming errors, listed below with the reason; each site says so in a comment.
Each check is also run over a deliberately violating temp source, to show it can fail.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from graphs.errors import CircuitDiscoveryError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphs", "attribution", "circuits")

#: Built-in exceptions that must not be raised directly for a user's mistake.
BUILTINS = frozenset({"ValueError", "TypeError", "RuntimeError", "KeyError", "LookupError", "IndexError"})  # fmt: skip

#: (file, enclosing function, built-in) -> why the built-in stays. Keep this list small.
ALLOWED_RAISES: dict[tuple[str, str, str], str] = {
    ("circuits/alignment/train.py", "train_intervention", "RuntimeError"): (
        "the frozen model received gradients: a bug in the trainer, not bad input"
    ),
    ("circuits/app/checks.py", "t_upper_tail", "ValueError"): (
        "its only caller passes n - 1 with n >= 2: a bug if reached"
    ),
    ("circuits/app/explorer/page.py", "static_text", "RuntimeError"): (
        "the vendored cytoscape.min.js is damaged: a broken installation, not bad input"
    ),
    ("circuits/hook_names.py", "writer_hook", "ValueError"): (
        "callers pass nodes writer_node accepted (it refuses bad ones with their error class)"
    ),
}

#: Exception classes of the packages that are not user errors, and why.
ALLOWED_OUTSIDE_ROOT: dict[str, str] = {
    "circuits.tasks.file_spans.DuplicateKey": (
        "a json.loads signal caught in its own module and turned into a problem report"
    ),
}


def _files(root: Path) -> list[Path]:
    return sorted(p for package in PACKAGES for p in (root / package).rglob("*.py"))


def builtin_raises(path: Path, root: Path) -> list[tuple[str, str, str, int]]:
    """``(file, enclosing function, built-in, line)`` of each ``raise <built-in>`` in ``path``."""
    sites = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTINS:
                    where = path.relative_to(root).as_posix()
                    sites.append((where, ".".join(scope) or "<module>", exc.id, child.lineno))
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8")), [])
    return sites


def unlisted_raises(files: list[Path], root: Path, allowed: dict) -> tuple[list, list]:
    """Raise sites not in ``allowed``, and entries of ``allowed`` that match no site (stale)."""
    sites = [site for path in files for site in builtin_raises(path, root)]
    unlisted = [site for site in sites if site[:3] not in allowed]
    stale = sorted(set(allowed) - {site[:3] for site in sites})
    return unlisted, stale


def exception_classes(files: list[Path], root: Path) -> list[tuple[str, str]]:
    """``(module, class name)`` of every class in ``files`` that is an exception (imported)."""
    found = []
    for path in files:
        names = [n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.ClassDef)]  # fmt: skip
        if not names:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        loaded = importlib.import_module(module)
        for name in names:
            obj = getattr(loaded, name, None)
            # Warnings and signals (KeyboardInterrupt's kind) are not errors.
            if (
                isinstance(obj, type)
                and issubclass(obj, Exception)
                and not issubclass(obj, Warning)
            ):
                found.append((module, name))
    return found


def outside_root(classes: list[tuple[str, str]], allowed: dict) -> list[str]:
    """Exception classes not derived from CircuitDiscoveryError and not in ``allowed``."""
    bad = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, CircuitDiscoveryError) and f"{module}.{name}" not in allowed:
            bad.append(f"{module}.{name}")
    return bad


def repeated_names(classes: list[tuple[str, str]]) -> list[str]:
    """Class names that more than one module defines."""
    return sorted(name for name, k in Counter(name for _, name in classes).items() if k > 1)


# ----------------------------------------------------------------------------- the packages
def test_no_builtin_error_is_raised_for_a_user_mistake():
    unlisted, stale = unlisted_raises(_files(ROOT), ROOT, ALLOWED_RAISES)
    assert not unlisted, (
        "raise a CircuitDiscoveryError subclass (keep the built-in as a second base), or list "
        f"the site in ALLOWED_RAISES with the reason it is a programming error: {unlisted}"
    )
    assert not stale, f"ALLOWED_RAISES names sites that no longer exist: {stale}"


def test_every_error_class_has_the_root_and_a_name_of_its_own():
    classes = exception_classes(_files(ROOT), ROOT)
    assert len(classes) > 40  # the walk found the packages' errors
    assert not outside_root(classes, ALLOWED_OUTSIDE_ROOT)
    assert not repeated_names(classes)


def test_converted_errors_keep_their_builtin_base():
    from attribution.metrics import get_metric
    from attribution.quadrature import quadrature
    from attribution.run_setup import RunSetup
    from circuits.groundtruth import registry
    from circuits.models.zoo.recipes import get_recipe
    from circuits.search.minimal import parse_target
    from graphs.spec import ModelSpec

    cases = [
        (lambda: get_metric("nope"), ValueError, "unknown metric"),
        (lambda: quadrature("simpson", 3), ValueError, "unknown quadrature rule"),
        (lambda: RunSetup(batch_size=1.5), TypeError, "batch_size must be a whole number"),
        (lambda: RunSetup(batch_size=0), ValueError, "batch_size must be >= 1"),
        (lambda: registry.build("gt-none"), LookupError, "gt-none"),
        (lambda: get_recipe("nope"), KeyError, "unknown recipe 'nope'"),
        (lambda: parse_target(-1), ValueError, "target must lie in"),
        (lambda: ModelSpec(n_layers=0, n_heads=1), ValueError, "ModelSpec.n_layers"),
        (lambda: ModelSpec.from_dict({"n_layers": 2}), KeyError, "lacks n_heads"),
        (lambda: ModelSpec.from_model(object()), TypeError, "expected a TransformerBridge"),
    ]
    for call, builtin, message in cases:
        with pytest.raises(CircuitDiscoveryError, match=message) as caught:
            call()
        assert isinstance(caught.value, builtin), (message, type(caught.value))
    with pytest.raises(KeyError) as caught:
        get_recipe("nope")
    assert str(caught.value).startswith("unknown recipe")  # no KeyError quotes


def test_the_two_architecture_errors_have_two_names():
    from attribution.methods import MethodArchitectureError
    from circuits.models import UnsupportedArchitectureError

    assert MethodArchitectureError is not UnsupportedArchitectureError
    assert issubclass(MethodArchitectureError, ValueError)
    assert issubclass(UnsupportedArchitectureError, RuntimeError)


# ----------------------------------------------------------------------------- the checks fail
VIOLATING = '''
class BadError(ValueError):
    """An error outside the root."""


class ValueTooBig:
    def check(self, x):
        if x > 1:
            raise ValueError("too big")
        raise KeyError


def convert(x):
    try:
        return int(x)
    except ValueError as err:
        raise TypeError(f"not a number: {x!r}") from err


def fine():
    raise NotImplementedError
'''


def _violating_package(tmp_path: Path, monkeypatch) -> tuple[list[Path], Path]:
    package = tmp_path / "errs_violation_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(textwrap.dedent(VIOLATING))
    (package / "other.py").write_text("class BadError(Exception):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return sorted(package.glob("*.py")), tmp_path


def test_raise_walker_reports_builtin_raises_of_a_violating_module(tmp_path, monkeypatch):
    files, root = _violating_package(tmp_path, monkeypatch)
    unlisted, stale = unlisted_raises(files, root, {})
    assert [site[:3] for site in unlisted] == [
        ("errs_violation_pkg/bad.py", "ValueTooBig.check", "ValueError"),
        ("errs_violation_pkg/bad.py", "ValueTooBig.check", "KeyError"),
        ("errs_violation_pkg/bad.py", "convert", "TypeError"),
    ]
    assert stale == []
    allowed = {("errs_violation_pkg/bad.py", "convert", "TypeError"): "why",
               ("errs_violation_pkg/gone.py", "f", "ValueError"): "why"}  # fmt: skip
    unlisted, stale = unlisted_raises(files, root, allowed)
    assert len(unlisted) == 2 and stale == [("errs_violation_pkg/gone.py", "f", "ValueError")]


def test_class_checks_report_a_rootless_error_and_a_repeated_name(tmp_path, monkeypatch):
    files, root = _violating_package(tmp_path, monkeypatch)
    classes = exception_classes(files, root)
    assert sorted(classes) == [("errs_violation_pkg.bad", "BadError"),
                               ("errs_violation_pkg.other", "BadError")]  # fmt: skip
    assert outside_root(classes, {}) == ["errs_violation_pkg.bad.BadError",
                                         "errs_violation_pkg.other.BadError"]  # fmt: skip
    assert repeated_names(classes) == ["BadError"]
