"""A tiny deterministic causal model: named variables computed from their parents.

Used by the alignment methods (DAS, Boundless DAS) to produce counterfactual labels for
interchange interventions: run the base input with some intermediate variables set to the
values they take on a source input, and read the output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from circuits.tasks.base import TaskError

__all__ = ["CausalModel"]


@dataclass(frozen=True)
class CausalModel:
    """Inputs, then mechanisms evaluated in order, the last of which is ``output``.

    Attributes:
        inputs: names of the input variables.
        mechanisms: ``name -> f(values)`` in topological order; ``f`` reads its parents'
            values from the mapping it is given.
        output: name of the output variable (one of ``mechanisms``).
        parents: ``name -> parent names`` for every mechanism; a mechanism then sees only
            its parents (reading another variable is an error). ``None``: each mechanism
            sees every value computed before it.
    """

    inputs: tuple[str, ...]
    mechanisms: Mapping[str, Callable[[Mapping[str, Any]], Any]]
    output: str
    parents: Mapping[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if self.output not in self.mechanisms:
            raise TaskError(
                f"output {self.output!r} is not one of the mechanisms {list(self.mechanisms)}"
            )
        if self.parents is None:
            return
        known = list(self.inputs)
        for name in self.mechanisms:
            if name not in self.parents:
                raise TaskError(f"mechanism {name!r} has no entry in parents")
            late = [p for p in self.parents[name] if p not in known]
            if late:
                raise TaskError(
                    f"parents of {name!r} must be inputs or earlier mechanisms; {late} are not"
                )
            known.append(name)

    @property
    def variables(self) -> tuple[str, ...]:
        """Intermediate variables one can intervene on (mechanisms other than the output)."""
        return tuple(name for name in self.mechanisms if name != self.output)

    def run(
        self, inputs: Mapping[str, Any], interventions: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Every variable's value; an intervened variable takes the given value instead."""
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise TaskError(f"causal model inputs missing: {', '.join(missing)}")
        interventions = dict(interventions or {})
        unknown = [name for name in interventions if name not in self.mechanisms]
        if unknown:
            raise TaskError(
                f"cannot intervene on {', '.join(unknown)}; variables are "
                f"{', '.join(self.mechanisms)}"
            )
        values = {name: inputs[name] for name in self.inputs}
        for name, mechanism in self.mechanisms.items():
            if name in interventions:
                values[name] = interventions[name]
                continue
            seen = values if self.parents is None else {p: values[p] for p in self.parents[name]}
            try:
                values[name] = mechanism(seen)
            except KeyError as err:
                raise TaskError(
                    f"mechanism {name!r} read {err.args[0]!r}, which is not one of its parents "
                    f"{list(seen)}"
                ) from None
        return values

    def counterfactual(
        self, base: Mapping[str, Any], source: Mapping[str, Any], variables: tuple[str, ...]
    ) -> Any:
        """The output on ``base`` with ``variables`` set to their values on ``source``."""
        source_values = self.run(source)
        return self.run(base, {name: source_values[name] for name in variables})[self.output]
