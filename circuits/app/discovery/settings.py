"""What a discovery run is asked to do (:class:`DiscoverySettings`, the command line's options),
and its validation: every bad setting raises :class:`RunError` before the model loads, the
position axis (``--positions``) included."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from attribution import METRICS, RULES, ablations, get_method
from attribution.ablations import AblationError
from attribution.data import DataError
from attribution.methods import REGISTRY
from circuits.app import prompts
from circuits.app.errors import RunError
from circuits.app.prompts import FILE_METRIC, check_data_file, check_user_examples
from circuits.search.faithfulness import DEFAULT_FRACTIONS
from circuits.search.minimal import parse_target
from circuits.tasks import TaskError, get_task
from graphs.positions import PositionError

__all__ = ["DTYPES", "POSITION_MODES", "DiscoverySettings", "check_positions"]

# --dtype choices: the dtypes the bridges and attribution support.
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# device_map values that are placement strategies rather than one device (Hugging Face's).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
#: ``--positions`` values.
POSITION_MODES: tuple[str, ...] = ("tokens", "schema")


@dataclass
class DiscoverySettings:
    """Every choice of a discovery run (the command line's options)."""

    model: str = "toy-gpt2"
    task: str = "ioi"
    method: str = "eap-ig-inputs"
    steps: int = 5
    quadrature_rule: str = "riemann_left"
    metric: str | None = None  # None: the task's own metric
    ablation: str = "patching"
    target: tuple[float, float | None] = (0.9, None)
    n_examples: int = 100
    n_eval: int = 100
    seed: int = 0
    batch_size: int = 16
    absolute: bool = True
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    bootstrap: int = 1000
    device: str | None = None
    dtype: str | None = None  # a DTYPES name; None: the dtype the checkpoint is stored in
    device_map: str | None = None  # Hugging Face device_map ("auto", "balanced", "cuda:1", ...)
    memory_budget_gb: float = 4.0  # attribution's budget besides the weights
    data: str | None = None  # a prompt file (circuits.tasks.files) instead of the task
    counterfactual: str | None = None  # the counterfactual of a MIB-style prompt file
    #: "tokens" or "schema": also a position-aware circuit (circuits.search.select)
    positions: str | None = None
    #: the method's own keyword settings (e.g. mask: train_steps, target_edges, lr, warm_start)
    method_options: dict = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        """Raise RunError for any bad setting (cheap; runs before loading the model)."""
        if self.data is not None:  # the whole file, with the model's tokenizer, before loading it
            check_data_file(self.data, self.model, self.counterfactual, self.seed, self.positions)
        else:
            try:
                get_task(self.task)
            except TaskError as err:
                raise RunError(str(err)) from None
            check_user_examples(self)  # a user's module:factory task, like a prompt file
        try:  # builds the method: a registered name or "ensemble:NAME,NAME"; a misspelt or
            # impossible option fails before the model loads
            method = get_method(self.method, steps=self.steps, options=self.method_options)
        except ValueError as err:
            raise RunError(str(err)) from None
        if self.positions is not None:
            check_positions(self, method)
        try:  # the registry as it is now: ablations registered after import count too
            ablations.get(self.ablation)
        except AblationError as err:
            raise RunError(str(err)) from None
        metric = self.task_metric
        if metric not in METRICS:
            raise RunError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if self.quadrature_rule not in RULES:
            raise RunError(
                f"unknown quadrature rule {self.quadrature_rule!r}; choose one of {', '.join(RULES)}"
            )
        self._check_placement()
        self._check_numbers()

    def _check_placement(self) -> None:
        """RunError for a dtype, device or device map this machine cannot load the model with."""
        if self.dtype is not None and self.dtype not in DTYPES:
            raise RunError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.device is not None and self.device_map is not None:
            raise RunError(
                "pass either a device (the whole model on one device) or a device map "
                "(layers spread over devices), not both"
            )
        if self.device is not None:
            _check_device(self.device, "device")
        if self.device_map is not None and self.device_map not in DEVICE_MAP_STRATEGIES:
            _check_device(self.device_map, "device-map")

    def _check_numbers(self) -> None:
        """RunError for a memory budget, count or target out of range."""
        if not self.memory_budget_gb > 0:
            raise RunError(f"memory-budget-gb must be positive, got {self.memory_budget_gb}")
        for name in ("steps", "n_examples", "n_eval", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise RunError(
                    f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        try:
            _ = self.parsed_target
        except (TypeError, ValueError) as err:
            raise RunError(f"bad target {self.target!r}: {err}") from None

    @property
    def task_metric(self) -> str:
        return self.metric or (FILE_METRIC if self.data else get_task(self.task).metric)

    @property
    def parsed_target(self) -> tuple[float, float]:
        """The target as the search takes it: ``(low, high)``, ``high`` ∞ for ``f >= low``."""
        lo, hi = self.target
        return parse_target(lo if hi is None else (lo, hi))


def _check_device(name: str, option: str) -> None:
    """RunError unless ``name`` is a torch device this machine has (before loading)."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        strategies = (
            f", or one of {', '.join(DEVICE_MAP_STRATEGIES)}" if option == "device-map" else ""
        )
        raise RunError(
            f"{option} {name!r} is not a torch device; use e.g. cpu, cuda or cuda:1{strategies}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(
                f"{option} {name!r}: this torch sees no CUDA GPU (torch.cuda.is_available() is "
                "False); use cpu, or install a CUDA build of torch on a machine with a GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RunError(
                f"{option} {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0"
            )


def check_positions(settings: Any, method: Any) -> None:
    """RunError (before the model loads) unless ``settings.positions`` can be run: a known
    mode, a method that keeps per-position scores, and prompts that take the position axis
    (tokenised with the model's tokenizer alone: prompts of one length for ``tokens``, a span
    schema that covers every prompt for ``schema``)."""
    if settings.positions not in POSITION_MODES:
        raise RunError(
            f"unknown positions {settings.positions!r}; choose one of {', '.join(POSITION_MODES)}"
        )
    if not method.position_aware:
        aware = ", ".join(n for n, cls in REGISTRY.items() if cls.position_aware)
        raise RunError(
            f"--positions: method {settings.method!r} does not keep per-position scores; use one "
            f"of {aware}, or leave out --positions"
        )
    try:
        # through the module: its functions are looked up when the check runs
        train, test, _ = prompts.prompt_pairs(settings, prompts.load_tokenizer(settings.model))
    except (PositionError, DataError) as err:
        raise RunError(f"--positions {settings.positions}: {err}") from None
    if settings.positions == "tokens" and train.n_pos != test.n_pos:  # one axis for both
        raise RunError(
            f"--positions tokens: the train prompts have {train.n_pos} tokens and the test "
            f"prompts {test.n_pos}, but the circuit has one position axis for both; use prompts "
            "of one length in both splits, or --positions schema"
        )
