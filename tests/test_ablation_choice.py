"""One place turns a recorded ablation name into an object (build_ablation): it asks the
class what it needs instead of comparing names, loads reference prompts only for the classes
that take them, and passes the run's metric and seed on."""

from __future__ import annotations

from typing import ClassVar

import pytest
from conftest import random_pairs

from attribution.ablations import (
    AblationError,
    MeanAblation,
    OptimalAblation,
    Patching,
    ZeroAblation,
    as_ablation,
    build_ablation,
    get,
    names,
    restore_ablation,
)
from graphs.errors import CircuitDiscoveryError


def test_every_listed_name_has_its_class():
    assert names() == ("patching", "mean", "zero", "optimal")
    assert tuple(get(name).name for name in names()) == names()


def test_reference_prompts_are_loaded_only_for_the_ablations_that_take_them():
    loads = []

    def reference():
        loads.append(1)
        return random_pairs(3, 4, seed=0)

    assert isinstance(build_ablation("patching", reference), Patching)
    assert isinstance(build_ablation("zero", reference), ZeroAblation)
    assert loads == []
    mean = build_ablation("mean", reference)
    assert isinstance(mean, MeanAblation) and len(mean.reference) == 3 and loads == [1]


def test_optimal_is_built_with_the_runs_metric_and_seed():
    data = random_pairs(3, 4, seed=0)
    ablation = build_ablation("optimal", lambda: data, metric="prob_diff", seed=7)
    assert isinstance(ablation, OptimalAblation)
    assert (ablation.metric, ablation.seed, ablation.reference) == ("prob_diff", 7, data)
    # as_ablation (the library's entry) goes through the same builder
    again = as_ablation("optimal", data, "kl", seed=3)
    assert (again.metric, again.seed) == ("kl", 3)


def test_mistakes_are_project_errors_that_name_the_fix():
    with pytest.raises(AblationError, match="unknown ablation 'half'; choose one of patching"):
        build_ablation("half")
    with pytest.raises(AblationError, match="ablation='optimal' needs mean_data"):
        build_ablation("optimal", lambda: None)
    assert issubclass(AblationError, CircuitDiscoveryError)
    assert issubclass(AblationError, ValueError)  # callers catching ValueError keep working


def test_what_an_ablation_reads_is_asked_of_it():
    assert Patching.reads_corrupted and not ZeroAblation.reads_corrupted
    assert MeanAblation.needs_reference and OptimalAblation.needs_reference
    assert not Patching.needs_reference and not ZeroAblation.needs_reference
    assert OptimalAblation.fits and not MeanAblation.fits and not Patching.fits
    assert Patching.corrupted_run and not MeanAblation.corrupted_run


def test_an_ablation_of_the_corrupted_run_reads_the_corrupted_prompts():
    # corrupted_run is the one declaration: it implies reads_corrupted
    assert "reads_corrupted" not in Patching.__dict__.get("__annotations__", {})

    class OwnRun(ZeroAblation):
        name: ClassVar[str] = "own-run-test"
        corrupted_run: ClassVar[bool] = True

    class ReadsOnly(Patching):  # reads the corrupted prompts, writes something else
        corrupted_run: ClassVar[bool] = False

    assert OwnRun.reads_corrupted and not ZeroAblation.reads_corrupted
    assert ReadsOnly.reads_corrupted and not ReadsOnly.corrupted_run


def test_a_run_saves_what_restores_its_ablation():
    """saved() records the name and, for an ablation with reference prompts, how many;
    restore_ablation loads that many (and only for such an ablation)."""
    data = random_pairs(3, 4, seed=0)
    assert Patching().saved() == {"ablation": "patching"}
    assert MeanAblation(data).saved() == {"ablation": "mean", "n_reference": 3}
    asked = []

    def load(n):
        asked.append(n)
        return random_pairs(n, 4, seed=1)

    mean = restore_ablation(MeanAblation(data).saved(), load)
    assert isinstance(mean, MeanAblation) and len(mean.reference) == 3 and asked == [3]
    assert isinstance(restore_ablation({"ablation": "zero", "n_reference": 5}, load), ZeroAblation)
    assert asked == [3]
    optimal = restore_ablation({"ablation": "optimal", "n_reference": 2}, load, seed=4)
    assert (len(optimal.reference), optimal.seed) == (2, 4)
    with pytest.raises(AblationError, match="ablation='mean' needs mean_data"):
        restore_ablation({"ablation": "mean"}, lambda n: None)
