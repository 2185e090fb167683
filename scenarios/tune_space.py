"""The ``tune:`` section of a scenario: what ``himo tune`` searches, what it maximises and how it prunes.

A search space maps dotted scenario paths (as ``--set`` takes them) to a distribution::

    tune:
      objective: episode/return        # a TensorBoard tag the run logs, maximised
      report_every: 20000              # frames between the values the pruner sees
      pruner: {kind: median, startup_trials: 5}
      space:
        algorithm.workers.lr: {kind: loguniform, low: 1.0e-4, high: 3.0e-3}
        algorithm.workers.minibatch_size: {kind: pow2, low: 256, high: 2048}
        manager.fusion: {kind: categorical, choices: [concat, attention]}

Each distribution turns into one ``--set`` override per trial (:func:`sample_overrides`); the trial's scenario
is then loaded and validated like any other, so a sampled value the scenario cannot take fails that trial
with the scenario's own error. The pruners are Optuna's (``himo.scenarios.tune``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from himo.scenarios.errors import FieldProblem
from himo.scenarios.schema_base import FrozenMapping, Section

SECTIONS = ("env", "modalities", "rewards", "workers", "manager", "multi_agent", "algorithm", "train")
"""The scenario sections a search space may reach (not its name, its logging, nor the ``tune`` section itself)."""


LOW = "Lowest value (loguniform: above 0; pow2: a power of two)."
HIGH = "Highest value, above low (pow2: a power of two)."


class Trial(Protocol):
    """The part of an Optuna trial that samples (``optuna.trial.Trial``)."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class _Bounded(Section):
    @model_validator(mode="after")
    def _low_below_high(self) -> Any:
        if not self.low < self.high:
            raise FieldProblem(("high",), f"high ({self.high}) must be above low ({self.low})")
        return self

    def ends(self) -> tuple[Any, ...]:
        """The extreme values a trial may set (checked against the scenario before a study starts)."""
        return (self.low, self.high)


class LogUniform(_Bounded):
    """A float drawn uniformly in log scale (learning rates, entropy coefficients)."""

    kind: Literal["loguniform"] = Field(description="loguniform: a float between low and high, uniform in log scale.")
    low: float = Field(gt=0.0, description=LOW)
    high: float = Field(gt=0.0, description=HIGH)

    def suggest(self, trial: Trial, name: str) -> float:
        """The trial's value of parameter ``name``."""
        return trial.suggest_float(name, self.low, self.high, log=True)


class Uniform(_Bounded):
    """A float drawn uniformly."""

    kind: Literal["uniform"] = Field(description="uniform: a float between low and high.")
    low: float = Field(description=LOW)
    high: float = Field(description=HIGH)

    def suggest(self, trial: Trial, name: str) -> float:
        """The trial's value of parameter ``name``."""
        return trial.suggest_float(name, self.low, self.high)


class IntRange(_Bounded):
    """An integer between two bounds, both included."""

    kind: Literal["int"] = Field(description="int: an integer from low to high, both included.")
    low: int = Field(description=LOW)
    high: int = Field(description=HIGH)
    step: int = Field(1, ge=1, description="Spacing of the values from low.")
    log: bool = Field(False, description="Draw uniformly in log scale (low must then be at least 1, step 1).")

    @model_validator(mode="after")
    def _log_scale_fits(self) -> IntRange:
        if self.log and (self.low < 1 or self.step != 1):
            raise FieldProblem(("log",), "a log-scale int needs low >= 1 and step 1")
        return self

    def suggest(self, trial: Trial, name: str) -> int:
        """The trial's value of parameter ``name``."""
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)


class PowerOfTwo(_Bounded):
    """A power of two between two powers of two (batch and layer sizes)."""

    kind: Literal["pow2"] = Field(description="pow2: a power of two from low to high, both powers of two.")
    low: int = Field(ge=1, description=LOW)
    high: int = Field(ge=1, description=HIGH)

    @field_validator("low", "high")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"{value} is not a power of two")
        return value

    def choices(self) -> list[int]:
        """Every power of two from low to high."""
        return [2**exponent for exponent in range(self.low.bit_length() - 1, self.high.bit_length())]

    def suggest(self, trial: Trial, name: str) -> int:
        """The trial's value of parameter ``name`` (Optuna sees the values themselves, as categories)."""
        return trial.suggest_categorical(name, self.choices())


class Choice(Section):
    """One of a list of values: names, switches, or whole YAML values such as layer sizes."""

    kind: Literal["categorical"] = Field(description="categorical: one of choices.")
    choices: tuple[Any, ...] = Field(
        min_length=1,
        description="The values; scalars (text, numbers, booleans, null) or any YAML value such as [64, 64].",
    )

    def ends(self) -> tuple[Any, ...]:
        """Every value a trial may set (checked against the scenario before a study starts)."""
        return self.choices

    def suggest(self, trial: Trial, name: str) -> Any:
        """The trial's value of parameter ``name``."""
        # Optuna's categories are scalars: compound values (lists, mappings) travel as their JSON text.
        categories = [choice if _is_scalar(choice) else json.dumps(choice) for choice in self.choices]
        return self.choices[categories.index(trial.suggest_categorical(name, categories))]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


Parameter = Annotated[LogUniform | Uniform | IntRange | PowerOfTwo | Choice, Field(discriminator="kind")]
"""One searched field; ``kind`` picks the distribution."""


class MedianPruner(Section):
    """Stops a trial whose objective falls below the median of earlier trials at the same frames."""

    kind: Literal["median"] = Field(description="median: prune below the median of earlier trials at the same frames.")
    startup_trials: int = Field(5, ge=0, description="Trials that finish before any is pruned.")
    warmup_frames: int = Field(0, ge=0, description="Frames of each trial before it may be pruned.")


class HalvingPruner(Section):
    """Successive halving: at each rung, only the best share of the trials goes on."""

    kind: Literal["halving"] = Field(description="halving: successive halving over rungs of frames.")
    min_frames: int | None = Field(None, ge=1, description="Frames of the first rung; null: tune.report_every.")
    reduction_factor: int = Field(3, ge=2, description="One trial in this many goes on at each rung.")


class NoPruner(Section):
    """Every trial runs to the end."""

    kind: Literal["none"] = Field(description="none: no pruning.")


PrunerConfig = Annotated[MedianPruner | HalvingPruner | NoPruner, Field(discriminator="kind")]


class TuneConfig(Section):
    """What ``himo tune`` searches and maximises (the other commands ignore this section)."""

    objective: str = Field(
        "episode/return",
        min_length=1,
        description="The TensorBoard tag to maximise, as the run logs it (e.g. episode/return, episode/success_rate); "
        "a trial's value is its mean over the run's last report_every frames.",
    )
    report_every: int = Field(20_000, ge=1, description="Frames between two values the pruner sees.")
    pruner: PrunerConfig = Field(default_factory=lambda: MedianPruner(kind="median"), description="Pruning of poor trials.")
    space: FrozenMapping(Parameter) = Field(
        min_length=1, description="Dotted scenario path (as --set takes it) -> distribution of its value."
    )

    @field_validator("space")
    @classmethod
    def _paths_reach_scenario_fields(cls, space: Any) -> Any:
        for path in space:
            section = path.split(".")[0]
            if section not in SECTIONS or not all(path.split(".")):
                raise FieldProblem(
                    ("space", path),
                    f"{path!r} is not a field a trial can set: it must be a dotted path into one of {list(SECTIONS)}",
                )
        return space

    def sample_overrides(self, trial: Trial) -> list[str]:
        """The trial's ``--set`` overrides, one per searched field (values written as JSON, which is YAML)."""
        return [f"{path}={json.dumps(parameter.suggest(trial, path))}" for path, parameter in self.space.items()]
