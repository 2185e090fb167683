"""The scenario sections of each level's learning algorithm: one section per algorithm, chosen by ``name``.

Fields that an algorithm does not read are refused (a ``clip_epsilon`` under ``a2c`` is a typo or a
misunderstanding, not a setting), and so are combinations that are not sound.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from himo.scenarios.schema_base import Section


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


class LevelAlgorithmBase(Section):
    """What every level algorithm has: its optimiser, schedule, clipping, freezing and checkpoint."""

    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field("adam", description="Optimiser of this level.")
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Learning rate.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the run's frames."
    )
    max_grad_norm: float | None = Field(0.5, gt=0.0, description="Gradient clipping by global norm; null: none.")
    frozen: bool = Field(False, description="Keep this level's parameters fixed.")
    checkpoint: str | None = Field(None, description="Checkpoint file to load this level's parameters from.")


class PolicyGradientBase(LevelAlgorithmBase):
    """The on-policy family's loss weights: an entropy bonus and the critic's share of the loss."""

    entropy_coef: float = Field(0.01, ge=0.0, description="ppo, a2c, a3c, trpo, impala: entropy bonus coefficient.")
    value_coef: float = Field(0.5, ge=0.0, description="ppo, a2c, a3c, trpo, impala: critic loss coefficient.")


class PPOConfig(PolicyGradientBase):
    """Proximal policy optimisation: clipped-ratio minibatch epochs on GAE advantages."""

    name: Literal["ppo"] = Field("ppo", description="Learning algorithm of this level: ppo, a2c, a3c, trpo, impala or sac.")
    epochs: int = epochs_field(4)
    minibatch_size: int = minibatch_size_field(256)
    clip_epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="ppo: ratio clipping.")
    gae_lambda: float = gae_lambda_field(0.95)


class A2CConfig(PolicyGradientBase):
    """Synchronous advantage actor-critic: one gradient step on each whole batch."""

    name: Literal["a2c"]
    gae_lambda: float = gae_lambda_field(1.0)
    normalize_advantage: bool = normalize_advantage_field()

    @property
    def epochs(self) -> int:
        """One pass: a single gradient step on each batch."""
        return 1

    @property
    def minibatch_size(self) -> None:
        """None: the whole batch."""
        return None


class A3CConfig(A2CConfig):
    """Asynchronous advantage actor-critic: train.actors processes each take A2C's step on shared parameters."""

    name: Literal["a3c"]


class TRPOConfig(PolicyGradientBase):
    """Trust-region policy optimisation: a natural-gradient step under a KL bound, critics by regression."""

    name: Literal["trpo"]
    max_kl: float = Field(0.01, gt=0.0, description="trpo: bound on the mean KL divergence of one policy step.")
    damping: float = Field(0.1, ge=0.0, description="trpo: damping added to the Fisher-vector products.")
    cg_iterations: int = Field(10, ge=1, description="trpo: conjugate-gradient iterations.")
    backtrack_steps: int = Field(10, ge=1, description="trpo: line-search trials, each shorter by backtrack_ratio.")
    backtrack_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="trpo: step shrink factor of the line search.")
    epochs: int = epochs_field(4)
    minibatch_size: int = minibatch_size_field(256)
    gae_lambda: float = gae_lambda_field(0.95)


class ImpalaConfig(PolicyGradientBase):
    """IMPALA: actors on lagged policies (an asynchronous collector), V-trace-corrected policy gradient."""

    name: Literal["impala"]
    rho_clip: float = Field(1.0, gt=0.0, description="impala: clip of the importance weights in the policy gradient and targets.")
    c_clip: float = Field(1.0, gt=0.0, description="impala: clip of the trace coefficients of the V-trace targets.")
    epochs: int = epochs_field(1)
    minibatch_size: int = minibatch_size_field(256)
    normalize_advantage: bool = normalize_advantage_field()

    @property
    def gae_lambda(self) -> float:
        """Unused by V-trace; the manager's semi-MDP compaction computes GAE targets beside it."""
        return 1.0


class SACConfig(LevelAlgorithmBase):
    """Soft actor-critic: twin Q-functions per head learn from a replay buffer; automatic temperature."""

    name: Literal["sac"]
    max_grad_norm: float | None = Field(None, gt=0.0, description="Gradient clipping by global norm; null: none.")
    buffer_size: int = Field(100_000, ge=1, description="sac: transitions the replay buffer holds (env steps; options for the manager).")
    minibatch_size: int = Field(256, ge=1, description="sac: transitions per gradient step.")
    gradient_steps: int = Field(64, ge=1, description="sac: gradient steps after each collected batch.")
    learning_starts: int = Field(1000, ge=1, description="sac: transitions stored before the first gradient step.")
    tau: float = Field(0.005, gt=0.0, le=1.0, description="sac: Polyak rate of the target Q-functions.")
    initial_temperature: float = Field(1.0, gt=0.0, description="sac: the entropy temperature alpha at the start.")
    target_entropy: float | None = Field(
        None, description="sac: entropy the temperature steers the policy to; null: -dimensions (continuous) or "
        "target_entropy_weight * log(choices) (discrete).",
    )
    target_entropy_weight: float = Field(
        0.5, gt=0.0, le=1.0, description="sac: the automatic discrete target entropy's share of the uniform policy's."
    )
    hidden_sizes: tuple[int, ...] | None = Field(
        None, description="sac: hidden layers of each Q-function; null: those of the head's own networks."
    )


ALGORITHM_CONFIGS = {
    "ppo": PPOConfig, "a2c": A2CConfig, "a3c": A3CConfig, "trpo": TRPOConfig, "impala": ImpalaConfig, "sac": SACConfig,
}
"""Every level algorithm's section, by name (``himo.agents.registry.ALGORITHMS`` holds the same names)."""

LevelAlgorithmConfig = Annotated[
    PPOConfig | A2CConfig | A3CConfig | TRPOConfig | ImpalaConfig | SACConfig, Field(discriminator="name")
]
"""How one level learns; ``name`` picks the section's fields."""


def with_default_name(value: Any) -> Any:
    """A bare name is shorthand for ``{name: <name>}``; a section without a name is PPO's."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" not in value:
        return {**value, "name": "ppo"}
    return value


class AlgorithmConfig(Section):
    """The learning algorithm of each level; a bare name is shorthand for {name: <name>}."""

    manager: LevelAlgorithmConfig = Field(default_factory=PPOConfig, description="Manager level.")
    workers: LevelAlgorithmConfig = Field(default_factory=PPOConfig, description="Worker level.")

    @field_validator("manager", "workers", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        return with_default_name(dict(value) if hasattr(value, "keys") else value)
