"""PPO for one level: the clipped objective with per-sample weights, over minibatch epochs.

The weights say which samples an actor learns from: a worker learns only from the steps where it
acted (select mode), while its critic learns from every step. TorchRL's ``ClipPPOLoss`` owns its
actor and critic modules and averages over all samples, so this level-agnostic form takes the
log-probabilities, values and weights the hierarchical learner computes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from tensordict import TensorDictBase

from himo.agents.base import GradientAlgorithm, HeadOutputs, LevelMetrics, LevelProblem, LossTerms, head_loss_epochs
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.settings import PolicyGradientConfig, epochs_field, gae_lambda_field, minibatch_size_field


class PPOConfig(PolicyGradientConfig):
    """Proximal policy optimisation: clipped-ratio minibatch epochs on GAE advantages."""

    name: Literal["ppo"] = Field("ppo", description="Learning algorithm of this level: ppo, a2c, a3c, trpo, impala or sac.")
    epochs: int = epochs_field(4)
    minibatch_size: int = minibatch_size_field(256)
    clip_epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="ppo: ratio clipping.")
    gae_lambda: float = gae_lambda_field(0.95)


@dataclass(frozen=True)
class PPOTerms(LossTerms):
    """Loss terms (``loss_*``, to be summed) and diagnostics (detached) of one PPO minibatch."""

    loss_objective: torch.Tensor
    loss_critic: torch.Tensor
    loss_entropy: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor
    clip_fraction: torch.Tensor


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` under non-negative ``weights`` (0 when every weight is 0)."""
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)


def normalized(advantage: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Advantages standardised over the weighted samples."""
    mean = weighted_mean(advantage, weights)
    std = weighted_mean((advantage - mean) ** 2, weights).sqrt()
    return (advantage - mean) / (std + 1e-8)


def ppo_terms(
    *,
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantage: torch.Tensor,
    entropy: torch.Tensor,
    value_error: torch.Tensor,
    actor_weight: torch.Tensor,
    critic_weight: torch.Tensor,
    clip_epsilon: float,
    entropy_coef: float,
    value_coef: float,
    normalize_advantage: bool = True,
) -> PPOTerms:
    """Clipped surrogate, squared-error critic (on ``value_error``, see ``HeadOutputs.value_error``) and entropy bonus;
    all tensors share one shape."""
    if normalize_advantage:
        advantage = normalized(advantage, actor_weight)
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - clip_epsilon, 1 + clip_epsilon) * advantage)
    mean_entropy = weighted_mean(entropy, actor_weight)
    with torch.no_grad():
        kl = weighted_mean(ratio - 1 - log_ratio, actor_weight)
        clip_fraction = weighted_mean(((ratio - 1).abs() > clip_epsilon).float(), actor_weight)
    return PPOTerms(
        loss_objective=-weighted_mean(surrogate, actor_weight),
        loss_critic=value_coef * 0.5 * weighted_mean(value_error**2, critic_weight),
        loss_entropy=-entropy_coef * mean_entropy,
        entropy=mean_entropy.detach(),
        kl=kl,
        clip_fraction=clip_fraction,
    )


class PPO(GradientAlgorithm):
    """Proximal policy optimisation of one level: ``epochs`` passes of clipped-objective minibatch steps."""

    settings: PPOConfig

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """Clipped-objective minibatch epochs over the problem's rows."""
        settings = self.settings
        entropy_coef = settings.entropy_at(frames, self.total_frames)

        def terms_of(output: HeadOutputs, target: TensorDictBase) -> PPOTerms:
            return ppo_terms(
                log_prob=output.log_prob,
                old_log_prob=target.get("old_log_prob"),
                advantage=target.get("advantage"),
                entropy=output.entropy,
                value_error=output.value_error(target.get("returns")),
                actor_weight=target.get("weight"),
                critic_weight=torch.ones_like(output.value),
                clip_epsilon=settings.clip_epsilon,
                entropy_coef=entropy_coef,
                value_coef=settings.value_coef,
            )

        return head_loss_epochs(self.optimizer, problem, frames, problem.rows_per_minibatch, settings.epochs, terms_of)


DECLARATION = AlgorithmDeclaration(
    name="ppo",
    config=PPOConfig,
    algorithm=PPO,
    targets=Targets.GAE,
    collection=Collection.SYNCHRONOUS,
    diagnostics=("kl", "clip_fraction"),
)
