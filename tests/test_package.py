"""Package surface: every exported name resolves, and ``circuits --version`` tells the version."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import subprocess
import sys

import pytest

import attribution
import circuits
import graphs


def _packages() -> list[str]:
    """Every package (a folder with ``__init__.py``) of the three top-level packages."""
    names = []
    for root in (graphs, attribution, circuits):
        names.append(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=root.__name__ + "."):
            if info.ispkg:
                names.append(info.name)
    return names


@pytest.mark.parametrize("package", _packages())
def test_every_name_in_all_resolves(package):
    module = importlib.import_module(package)
    missing = []
    for name in getattr(module, "__all__", ()):
        try:
            getattr(module, name)
        except AttributeError as err:
            missing.append(f"{name} ({err})")
    assert not missing, f"{package}.__all__ names what it cannot give: {missing}"


def test_zoo_is_an_attribute_of_circuits():
    # a fresh interpreter: here, collecting _packages() has already imported every submodule
    code = "import circuits; z = circuits.zoo; import circuits.models.zoo as m; assert z is m; print(z.available())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "toy-gpt2" in done.stdout


def test_version_option_prints_the_installed_version():
    done = subprocess.run(
        [sys.executable, "-m", "circuits", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    expected = importlib.metadata.version("circuit-discovery")
    assert done.stdout.strip() == f"circuits {expected}"
    assert circuits.__version__ == expected
