"""The PPO run every contender of the speed benchmark trains: one environment, one set of hyper-parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PPOSettings:
    """CartPole-v1 PPO as himo's ``cartpole`` scenario runs it; every contender reads these."""

    env_id: str = "CartPole-v1"
    num_envs: int = 8
    frames: int = 50_176
    frames_per_batch: int = 1024
    epochs: int = 4
    minibatch_size: int = 256
    lr: float = 3.0e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    encoder_sizes: tuple[int, ...] = (64, 64, 64)
    """A shared tanh MLP (himo's ``mlp`` encoder: two hidden layers and a 64-wide embedding)."""
    head_sizes: tuple[int, ...] = (64, 64)
    """The actor's and the critic's own tanh MLPs on the shared embedding (himo's worker ``hidden``)."""
    seed: int = 0

    def as_dict(self) -> dict:
        """The settings as JSON-friendly values."""
        return asdict(self)

    @property
    def steps_per_env(self) -> int:
        """Env steps per environment in one batch."""
        return self.frames_per_batch // self.num_envs
