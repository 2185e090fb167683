"""The scenario fields every level algorithm shares; each algorithm's own section sits beside its class.

Fields that an algorithm does not read are refused (a ``clip_epsilon`` under ``a2c`` is a typo or a
misunderstanding, not a setting).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def epochs_field(default: int) -> Any:
    """``epochs``, with the algorithm's default."""
    return Field(default, ge=1, description="ppo, trpo, impala: passes over each batch (trpo: of the critic).")


def minibatch_size_field(default: int) -> Any:
    """``minibatch_size``, with the algorithm's default."""
    return Field(default, ge=1, description="ppo, trpo, impala: samples per gradient step.")


def gae_lambda_field(default: float) -> Any:
    """``gae_lambda``, with the algorithm's default."""
    return Field(default, ge=0.0, le=1.0, description="ppo, a2c, a3c, trpo: GAE lambda.")


def normalize_advantage_field() -> Any:
    """``normalize_advantage`` (off by default)."""
    return Field(False, description="a2c, a3c, impala: standardise advantages over the batch.")


class LevelAlgorithmConfig(BaseModel):
    """What every level algorithm has: its optimiser, schedule, clipping, freezing and checkpoint.

    Subclasses narrow ``name`` to a ``Literal`` of their scenario name and add their own fields.
    """

    # Non-finite numbers make no sense in any algorithm setting (a learning rate of nan, a clip of inf).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(description="Learning algorithm of this level: ppo, a2c, a3c, trpo, impala or sac.")
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field("adam", description="Optimiser of this level.")
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Learning rate.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the run's frames: linear or cosine go from lr to lr_final."
    )
    lr_final: float = Field(
        0.0, ge=0.0, description="linear and cosine schedules: the learning rate at the end of the run (at most lr)."
    )
    max_grad_norm: float | None = Field(0.5, gt=0.0, description="Gradient clipping by global norm; null: none.")
    frozen: bool = Field(False, description="Keep this level's parameters fixed.")
    checkpoint: str | None = Field(
        None, description="Checkpoint file, or run folder (its newest readable checkpoint), to load this level's parameters from."
    )

    @model_validator(mode="after")
    def _final_lr_at_most_lr(self) -> LevelAlgorithmConfig:
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final ({self.lr_final:g}) must not exceed lr ({self.lr:g}): the schedules decay")
        return self


class PolicyGradientConfig(LevelAlgorithmConfig):
    """The on-policy family's loss weights: an entropy bonus and the critic's share of the loss."""

    entropy_coef: float = Field(0.01, ge=0.0, description="ppo, a2c, a3c, trpo, impala: entropy bonus coefficient.")
    entropy_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="ppo, a2c, a3c, trpo, impala: linear: the entropy coefficient goes from entropy_coef to "
        "entropy_final over the run's frames.",
    )
    entropy_final: float = Field(0.0, ge=0.0, description="ppo, a2c, a3c, trpo, impala: the linear schedule's last coefficient.")
    value_coef: float = Field(0.5, ge=0.0, description="ppo, a2c, a3c, trpo, impala: critic loss coefficient.")
    value_norm: Literal["popart", "running"] | None = Field(
        None,
        description="ppo, a2c, a3c, trpo, impala: the critics regress on returns standardised by running statistics "
        "of each head's returns, read back in return units (popart: exponential averages, MAPPO's value "
        "normalisation; running: exact mean and variance); null: raw returns.",
    )

    def entropy_at(self, frames: int, total_frames: int) -> float:
        """The entropy coefficient after ``frames`` of the run's ``total_frames`` env frames."""
        if self.entropy_schedule == "constant":
            return self.entropy_coef
        progress = min(1.0, frames / max(total_frames, 1))
        return self.entropy_coef + (self.entropy_final - self.entropy_coef) * progress
