"""Methods declare their own options on the class; the command line builds its ``--{method}-*``
flags and their help from them, and the method registry is read at call time."""

from __future__ import annotations

import importlib
import inspect

import pytest

import attribution
from attribution.methods import EAP, REGISTRY, AttributionMethod, Option
from circuits.app import cli


class _Plugged(EAP):
    """EAP with an option of its own, registered from outside the package."""

    name = "plugged-test"
    options = (
        Option("width", int, 3, "how wide to look", "width", "W"),
        Option("seed", int, 0, "seeds nothing, but takes --seed"),
    )

    def __init__(self, *, width: int = 3, seed: int = 0):
        super().__init__()
        self.width, self.seed = width, seed


@pytest.fixture
def plugged(monkeypatch):
    monkeypatch.setitem(REGISTRY, _Plugged.name, _Plugged)
    return _Plugged


def test_declared_options_match_each_constructor():
    for cls in REGISTRY.values():
        if cls.__init__ is AttributionMethod.__init__:
            continue  # the base constructor takes exactly the declared options
        parameters = inspect.signature(cls.__init__).parameters
        declared = {option.name: option.default for option in cls.options}
        taken = {n: p.default for n, p in parameters.items() if n != "self"}
        assert taken == declared, cls.name


def test_methods_is_defined_in_one_place():
    # attribution.METHODS is the one registry-backed name; the attribute module keeps none
    module = importlib.import_module("attribution.attribute")
    assert "__getattr__" not in vars(module)
    with pytest.raises(AttributeError):
        module.METHODS  # noqa: B018
    assert "__getattr__" in vars(attribution)


def test_a_registered_method_is_in_methods_and_gets_its_flags(plugged, capsys):
    assert attribution.METHODS[-1] == "plugged-test"  # read from the registry now
    from attribution import METHODS

    assert "plugged-test" in METHODS
    from circuits.groundtruth.benchmark import check_methods

    assert check_methods(["plugged-test"]) == ["plugged-test"]
    with pytest.raises(SystemExit):
        cli.main(["discover", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--plugged-test-width W --method plugged-test: how wide to look (default: 3)" in text
    assert "--mask-steps N --method mask: training steps, one batch each (default: 200)" in text
    assert "--plugged-test-seed" not in text  # an option without a flag gets none


def test_a_method_flag_reaches_the_method_and_goes_with_its_method_only(
    plugged, tmp_path, monkeypatch, capsys
):
    import circuits.app.discovery as discovery
    from circuits.app.output import OutputError

    seen = []

    def capture(settings, *args, **kwargs):
        seen.append(settings)
        raise OutputError("captured")  # a project error: main exits 2 before any work

    monkeypatch.setattr(discovery, "discover", capture)
    out = ["--out", str(tmp_path / "run"), "--quiet"]
    argv = ["discover", "--method", "plugged-test", "--plugged-test-width", "7", "--seed", "4"]
    assert cli.main([*argv, *out]) == 2
    assert seen[-1].method_options == {"width": 7, "seed": 4}
    assert cli.main(["discover", "--method", "eap", *out]) == 2
    assert seen[-1].method_options == {}
    assert cli.main(["discover", "--method", "eap", "--plugged-test-width", "7", *out]) == 2
    assert "--plugged-test-* options go with --method plugged-test" in capsys.readouterr().err
    assert len(seen) == 2
