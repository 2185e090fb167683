"""The scenario schema's sections for the two levels' structure: the manager (mode, termination, goals) and the
recurrent core a worker or the manager may carry. Part of the one definition of the scenario file
(``himo.scenarios.schema``), kept apart to keep each module small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from himo.envs.rewards import REWARD_LIMIT
from himo.modalities.fusion import FUSIONS
from himo.scenarios.errors import FieldProblem, with_suggestion
from himo.scenarios.schema_base import Section


class MemoryConfig(Section):
    """A recurrent core between a level's encoders and its heads, carried between steps and reset at episode start."""

    kind: Literal["gru", "lstm"] = Field("gru", description="gru or lstm (TorchRL's GRUModule / LSTMModule).")
    hidden: int = Field(64, ge=1, le=4096, description="Size of the recurrent state; the heads read this many features.")
    layers: int = Field(1, ge=1, le=8, description="Stacked recurrent layers.")
    chunk: int | None = Field(
        None,
        ge=1,
        description="Learning re-runs the core over sequences of this many steps of one env, each from the state stored "
        "at its first step (truncated backpropagation through time); it must divide the steps each env gives a batch. "
        "null: the whole batch's sequence of each env.",
    )


class IntervalTermination(Section):
    """Options of a fixed length."""

    kind: Literal["interval"] = Field("interval", description="interval: the manager decides every k steps.")
    every: int = Field(4, ge=1, description="Kind 'interval': the option length k.")


class LearnedTermination(Section):
    """Option-critic termination: a learned head per worker ends its options."""

    kind: Literal["learned"] = Field(
        description="learned: a termination head per worker ends its option (option-critic, with a switching cost)."
    )
    switching_cost: float = Field(
        0.01,
        ge=0.0,
        le=REWARD_LIMIT,
        description="Kind 'learned': cost of each option switch, in team-reward units, 0 to 1e6.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_interval_length(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "every" in data:
            raise FieldProblem(
                ("every",),
                "'every' is the option length of kind 'interval'; kind 'learned' ends options with its termination "
                "head (replace the whole section, e.g. --set 'manager.termination={kind: learned}')",
            )
        return data


TerminationConfig = Annotated[IntervalTermination | LearnedTermination, Field(discriminator="kind")]
"""When the manager makes its next decision (always at episode start); ``kind`` picks the fields."""


class GoalConfig(Section):
    """The manager's briefing: for each option, a goal for each worker, computed from every modality."""

    size: int = Field(16, ge=1, le=1024, description="Size of the goal vector each worker reads beside its own modality.")
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (64,), description="Hidden layer sizes of each worker's goal network (over the concatenated modality embeddings)."
    )
    refresh: Literal["option", "step"] = Field(
        "option",
        description="option: the goals are set at each decision and held for the option; step: recomputed from every "
        "step's observations, while the chosen worker still acts for the whole option.",
    )


class ManagerConfig(Section):
    """The manager: how it combines workers and when it decides."""

    mode: Literal["select", "weighted"] = Field(
        "select",
        description="select: one worker acts for the whole option; weighted: the action comes from a mixture of "
        "every worker's policy, weighted by the manager.",
    )
    termination: TerminationConfig = Field(
        default_factory=IntervalTermination, description="Option termination; its fields depend on its kind."
    )
    fusion: str = Field("concat", description="How the manager fuses modality embeddings: concat or attention.")
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (64, 64), min_length=1, description="Hidden layer sizes of the manager's actor and critic."
    )
    goal: GoalConfig | None = Field(
        None,
        description="Goals: at each decision the manager also sets a goal vector for each worker from every modality, "
        "held for the option and read by that worker (one goal network per worker, learned through its losses); "
        "null: none.",
    )
    intra_option: bool = Field(
        False,
        description="Select mode: every worker's actor also learns from the steps another worker acted, each weighted "
        "by the truncated importance ratio min(1, pi_worker / pi_acting) of the action taken (intra-option learning); "
        "false: a worker's actor learns only from its own steps.",
    )
    memory: MemoryConfig | None = Field(
        None,
        description="A recurrent core between the manager's fused embedding and its heads, advanced at every step "
        "(not only at decisions); null: it decides on each step alone.",
    )

    @field_validator("termination", mode="before")
    @classmethod
    def _interval_by_default(cls, value: Any) -> Any:
        return {**value, "kind": "interval"} if isinstance(value, Mapping) and "kind" not in value else value

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, value: str) -> str:
        if value not in FUSIONS:
            raise ValueError(with_suggestion(f"unknown fusion {value!r}; expected one of {sorted(FUSIONS)}", value, list(FUSIONS)))
        return value

    @model_validator(mode="after")
    def _learned_termination_selects(self) -> ManagerConfig:
        if self.mode == "weighted" and self.intra_option:
            raise FieldProblem(
                ("intra_option",),
                "intra-option learning is for mode 'select': in weighted mode every worker already learns from every "
                "step, through the mixture",
            )
        if self.memory is not None and self.termination.kind == "learned":
            raise FieldProblem(
                ("memory",),
                "a recurrent manager is not built for learned termination (its termination pass learns from single "
                "steps): use interval termination, or no manager memory",
            )
        if self.mode == "weighted" and self.termination.kind == "learned":
            raise FieldProblem(
                ("termination", "kind"),
                "learned termination needs mode 'select': its termination heads end one active worker's option, "
                "and weighted mode has none",
            )
        return self
