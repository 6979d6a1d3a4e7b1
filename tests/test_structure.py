"""The shared structure: method objects and their registry, ablation objects, the setup object,
the quadrature rules, the error root, the run record and the old import paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import random_pairs, randomized_bridge

import attribution
from attribution import (
    METHODS,
    MeanAblation,
    Patching,
    RunSetup,
    ZeroAblation,
    attribute,
    get_method,
    quadrature,
)
from attribution.methods import EAP, REGISTRY, register
from circuits.search.faithfulness import CircuitEvaluator, evaluate, faithfulness_curve
from graphs import Graph
from graphs.errors import CircuitDiscoveryError


@pytest.fixture(scope="module")
def case():
    model = randomized_bridge("GPT2LMHeadModel", seed=3, scale=2.0)
    return model, Graph.from_model(model), random_pairs(6, 5, seed=4)


# ----------------------------------------------------------------------------- methods
def test_registry_holds_every_method_with_its_declarations():
    assert METHODS == tuple(REGISTRY) == (
        "eap", "clean-corrupted", "eap-ig-inputs", "eap-ig-activations", "exact", "ifr",
        "relp", "mask",
    )  # fmt: skip
    assert {name for name, cls in REGISTRY.items() if not cls.batch_invariant} == {"mask"}
    integrating = {name for name, cls in REGISTRY.items() if cls.integrates}
    assert integrating == {"eap-ig-inputs", "eap-ig-activations"}
    chunking = {name for name, cls in REGISTRY.items() if cls.node_chunking}
    assert chunking == {"eap", "clean-corrupted", "eap-ig-inputs", "relp"}
    assert REGISTRY["clean-corrupted"].ablations == ("patching",)
    assert not REGISTRY["exact"].needs_gradients
    with pytest.raises(ValueError, match="unknown method 'nope'; choose one of eap, "):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(EAP)


def test_a_method_object_gives_the_same_scores_as_its_name(case):
    model, graph, data = case
    by_name = attribute(model, graph, data, method="eap-ig-inputs", steps=3, quiet=True)
    obj = get_method("eap-ig-inputs", steps=3)
    by_object = attribute(model, Graph.from_model(model), data, method=obj, quiet=True)
    assert torch.equal(by_name.scores, by_object.scores)
    assert by_object.settings["steps"] == 3 and by_object.method == "eap-ig-inputs"


def test_a_new_method_plugs_in_through_the_registry(case):
    """A method written outside the package: registered once, attribute() runs it."""
    model, graph, data = case

    class DoubleEAP(EAP):
        name = "double-eap-test"

        def port_gradients(self, job, batch, runs, grads):
            super().port_gradients(job, batch, runs, grads)
            grads *= 2

    register(DoubleEAP)
    try:
        assert "double-eap-test" in attribution.methods.method_names()
        doubled = attribute(model, graph, data, method="double-eap-test", quiet=True)
        plain = attribute(model, Graph.from_model(model), data, method="eap", quiet=True)
        torch.testing.assert_close(doubled.scores, 2 * plain.scores, rtol=1e-6, atol=1e-7)
    finally:
        REGISTRY.pop("double-eap-test")


# ----------------------------------------------------------------------------- ablations, setup
@pytest.mark.parametrize("name", ["patching", "mean", "zero"])
def test_ablation_objects_equal_their_strings(case, name):
    model, graph, data = case
    reference = random_pairs(5, 5, seed=9)
    obj = {"patching": Patching(), "mean": MeanAblation(reference), "zero": ZeroAblation()}[name]
    mean_data = reference if name == "mean" else None
    by_string = attribute(
        model, graph, data, method="eap", ablation=name, mean_data=mean_data, quiet=True
    )
    by_object = attribute(
        model, Graph.from_model(model), data, method="eap", ablation=obj, quiet=True
    )
    assert torch.equal(by_string.scores, by_object.scores)
    assert by_object.settings["ablation"] == name
    f_string = evaluate(model, graph, data, ablation=name, mean_data=mean_data, bootstrap=0)
    f_object = evaluate(model, graph, data, ablation=obj, bootstrap=0)
    assert f_string.f == f_object.f


def test_ablation_mistakes_are_named():
    with pytest.raises(ValueError, match="needs mean_data"):
        attribution.ablations.as_ablation("mean")
    with pytest.raises(ValueError, match="unknown ablation 'half'"):
        attribution.ablations.as_ablation("half")
    with pytest.raises(ValueError, match="MeanAblation"):
        attribution.ablations.as_ablation(ZeroAblation(), random_pairs(2, 3, seed=0))


def test_setup_object_replaces_the_repeated_arguments(case):
    model, graph, data = case
    setup = RunSetup("prob_diff", ZeroAblation(), batch_size=4)
    a = attribute(model, graph, data, method="eap", setup=setup)
    b = attribute(
        model, Graph.from_model(model), data, "prob_diff", method="eap", ablation="zero",
        batch_size=4, quiet=True,
    )  # fmt: skip
    assert torch.equal(a.scores, b.scores) and a.settings["metric"] == "prob_diff"
    with pytest.raises(TypeError, match="pass either setup= or ablation, not both"):
        attribute(model, graph, data, method="eap", ablation="mean", setup=setup)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        RunSetup(batch_size=0)


def test_one_evaluator_serves_evaluate_and_the_curve(case):
    model, graph, data = case
    attribute(model, graph, data, method="eap", quiet=True)
    graph.set_in_graph(torch.zeros_like(graph.real_edges))
    graph.set_circuit(attribution_top(graph, 20))
    shared = CircuitEvaluator(model, graph, data, batch_size=4)
    f_shared = evaluate(model, graph, data, evaluator=shared, bootstrap=0)
    f_own = evaluate(model, graph, data, batch_size=4, bootstrap=0)
    assert f_shared.f == f_own.f
    c_shared = faithfulness_curve(model, graph, data, fractions=(0.1, 1.0), evaluator=shared)
    c_own = faithfulness_curve(model, graph, data, fractions=(0.1, 1.0), batch_size=4)
    assert c_shared.f == c_own.f
    with pytest.raises(TypeError, match="not both"):
        evaluate(model, graph, data, evaluator=shared, batch_size=2)
    with pytest.raises(ValueError, match="other data"):
        evaluate(model, graph, random_pairs(6, 5, seed=5), evaluator=shared)


def attribution_top(graph, n):
    from circuits.search.select import top_n

    return top_n(graph, n)


# ----------------------------------------------------------------------------- quadrature
def test_quadrature_matches_captum_in_float32_and_is_exact_in_float64():
    captum = pytest.importorskip("captum.attr._utils.approximation_methods")
    for rule in ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"):
        for steps in (2, 3, 5, 7):
            step_sizes, alphas = captum.approximation_parameters(rule)
            weights, points = quadrature(rule, steps, torch.float32)
            assert points == alphas(steps)  # bit-identical points
            expected = step_sizes(steps)
            if rule == "riemann_trapezoid":  # captum's weights sum to (m-1)/m
                expected = [w * steps / (steps - 1) for w in expected]
            assert weights == pytest.approx(expected, rel=1e-15)
    step_sizes, alphas = captum.approximation_parameters("gausslegendre")
    assert quadrature("gausslegendre", 4) == (step_sizes(4), alphas(4))
    # float64 points are k/m to the last bit; captum's float32 ones are off by ~1e-8
    _, points = quadrature("riemann_left", 5, torch.float64)
    assert points == [k / 5 for k in range(5)]
    _, points32 = quadrature("riemann_left", 5, torch.float32)
    assert max(abs(a - k / 5) for k, a in enumerate(points32)) > 1e-9


def test_import_attribution_pulls_in_neither_matplotlib_nor_captum():
    code = "import sys, attribution; print(sorted(m for m in ('matplotlib', 'captum') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- errors
def test_every_project_error_has_one_root_and_keeps_its_builtin_base():
    from attribution.data import DataError
    from attribution.passes import NonFiniteMetricError
    from circuits.alignment.sites import AlignmentError
    from circuits.app.cli import UsageError
    from circuits.app.discovery import RunError
    from circuits.app.report import ReportError
    from circuits.app.run import RunFileError
    from circuits.models import ModelLoadError, UnsupportedArchitectureError
    from circuits.models.zoo import ZooError
    from circuits.patchscopes.core import PatchscopeError
    from circuits.search.faithfulness import FaithfulnessError
    from circuits.tasks import TaskError
    from graphs.errors import GraphFormatError, GraphMismatchError, UnknownEdgeError

    bases = {
        DataError: ValueError, NonFiniteMetricError: FloatingPointError,
        AlignmentError: ValueError, RunError: ValueError, ReportError: ValueError,
        RunFileError: ValueError, ModelLoadError: RuntimeError,
        UnsupportedArchitectureError: RuntimeError, ZooError: LookupError,
        PatchscopeError: ValueError, FaithfulnessError: ValueError, TaskError: ValueError,
        GraphFormatError: ValueError, GraphMismatchError: ValueError, UnknownEdgeError: KeyError,
        UsageError: Exception,
    }  # fmt: skip
    for error, base in bases.items():
        assert issubclass(error, CircuitDiscoveryError), error
        assert issubclass(error, base), error
    import circuits

    assert (
        circuits.CircuitDiscoveryError is attribution.CircuitDiscoveryError is CircuitDiscoveryError
    )


def test_faithfulness_error_exits_2_on_the_command_line(tmp_path, monkeypatch, capsys):
    from circuits.app import cli, discovery
    from circuits.search.faithfulness import FaithfulnessError

    def undefined(*args, **kwargs):
        raise FaithfulnessError(
            "faithfulness is undefined: the full model and the empty circuit score the same"
        )

    monkeypatch.setattr(discovery.write, "find_checked", undefined)  # the job discover runs
    assert cli.main(["discover", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "error: faithfulness is undefined" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- run record
def test_run_record_is_strict_json_and_refuses_other_files(tmp_path):
    from circuits.app.run import RunFileError, RunRecord

    sections = dict.fromkeys(
        [
            "model",
            "task",
            "graph",
            "circuit",
            "faithfulness",
            "curve",
            "search",
            "attribution",
            "timings",
            "figures",
        ],
        {},
    )
    record = RunRecord(
        settings={"target": [0.9, float("inf")]}, top_edges=[],
        **{**sections, "faithfulness": {"ci": [float("nan"), 1.0]}},
    )  # fmt: skip
    path = record.write(tmp_path)

    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["settings"]["target"] == [0.9, None]
    assert data["faithfulness"]["ci"] == [None, 1.0]
    assert list(data)[:2] == ["format", "schema_version"]
    assert RunRecord.load(tmp_path).settings == {"target": [0.9, None]}
    (tmp_path / "metrics.json").write_text('{"format": "something-else"}')
    with pytest.raises(RunFileError, match="not a circuit-discovery run file"):
        RunRecord.load(tmp_path)


# ----------------------------------------------------------------------------- layout
OLD_PATHS = [
    *(f"circuits.{name}" for name in ("cli", "discovery", "faithfulness", "figures", "minimal")),
    *(f"circuits.{name}" for name in ("prune", "random_models", "report", "zoo")),
    "attribution.exact",
    "attribution.patching",
    "attribution.runs",
    "graphs.atomic",
]


@pytest.mark.parametrize("path", OLD_PATHS)
def test_each_module_has_one_import_path(path):
    """The old aliases are gone (issue 27): no module or package sits at the old path in the
    package's own folder. (Asked of the folder, not of ``import``: an editable install of
    another checkout can still answer an import.)"""
    import importlib
    from importlib.machinery import PathFinder

    parent, _, _ = path.rpartition(".")
    assert PathFinder.find_spec(path, importlib.import_module(parent).__path__) is None
    # the question itself can fail: a module that does exist is found
    assert PathFinder.find_spec(f"{parent}.__init__", importlib.import_module(parent).__path__)


def test_circuits_zoo_attribute_is_the_models_zoo():
    """``circuits.zoo`` stays a lazily exported attribute (it is in ``__all__``), not a module
    path of its own."""
    import circuits
    import circuits.models.zoo

    assert circuits.zoo is circuits.models.zoo
    assert "zoo" in circuits.__all__
