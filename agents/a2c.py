"""A2C for one level: synchronous advantage actor-critic, one gradient step per batch.

The loss is the policy gradient ``-A * log pi(a|s)`` weighted per sample (a worker learns from the
steps where it acted), a squared-error critic and an entropy bonus. TorchRL's ``A2CLoss`` owns its
actor and critic modules and averages over every sample, so, as for PPO, this level-agnostic form
takes the log-probabilities, values and weights the hierarchical learner computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from tensordict import TensorDictBase

from himo.agents.base import GradientAlgorithm, HeadOutputs, LevelMetrics, LevelProblem, LossTerms, head_loss_epochs
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.optim import LevelOptimizer
from himo.agents.ppo import normalized, weighted_mean
from himo.agents.settings import PolicyGradientConfig, gae_lambda_field, normalize_advantage_field


class A2CConfig(PolicyGradientConfig):
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


@dataclass(frozen=True)
class PolicyGradientTerms(LossTerms):
    """Loss terms (``loss_*``, to be summed) and the mean entropy (detached) of one minibatch."""

    loss_objective: torch.Tensor
    loss_critic: torch.Tensor
    loss_entropy: torch.Tensor
    entropy: torch.Tensor


def policy_gradient_terms(
    *,
    log_prob: torch.Tensor,
    advantage: torch.Tensor,
    entropy: torch.Tensor,
    value_error: torch.Tensor,
    actor_weight: torch.Tensor,
    entropy_coef: float,
    value_coef: float,
    normalize_advantage: bool,
) -> PolicyGradientTerms:
    """``-A log pi`` (weighted), squared-error critic on every sample (on ``value_error``, see
    ``HeadOutputs.value_error``), entropy bonus; all tensors share one shape."""
    if normalize_advantage:
        advantage = normalized(advantage, actor_weight)
    mean_entropy = weighted_mean(entropy, actor_weight)
    return PolicyGradientTerms(
        loss_objective=-weighted_mean(advantage.detach() * log_prob, actor_weight),
        loss_critic=value_coef * 0.5 * (value_error**2).mean(),
        loss_entropy=-entropy_coef * mean_entropy,
        entropy=mean_entropy.detach(),
    )


class A2C(GradientAlgorithm):
    """Advantage actor-critic of one level: one gradient step on the whole batch."""

    settings: A2CConfig

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """One policy-gradient step over every row of the problem."""
        entropy_coef = self.settings.entropy_at(frames, self.total_frames)
        return policy_gradient_update(self.optimizer, self.settings, problem, frames, problem.rows, 1, entropy_coef)


def policy_gradient_update(
    optimizer: LevelOptimizer,
    settings: PolicyGradientConfig,
    problem: LevelProblem,
    frames: int,
    rows_per_minibatch: int,
    epochs: int,
    entropy_coef: float,
) -> LevelMetrics:
    """Minibatch steps of :func:`policy_gradient_terms` over the problem's rows (A2C, A3C, IMPALA), with the entropy
    coefficient in force."""

    def terms_of(output: HeadOutputs, target: TensorDictBase) -> PolicyGradientTerms:
        return policy_gradient_terms(
            log_prob=output.log_prob,
            advantage=target.get("advantage"),
            entropy=output.entropy,
            value_error=output.value_error(target.get("returns")),
            actor_weight=target.get("weight"),
            entropy_coef=entropy_coef,
            value_coef=settings.value_coef,
            normalize_advantage=settings.normalize_advantage,
        )

    return head_loss_epochs(optimizer, problem, frames, rows_per_minibatch, epochs, terms_of)


DECLARATION = AlgorithmDeclaration(
    name="a2c", config=A2CConfig, algorithm=A2C, targets=Targets.GAE, collection=Collection.SYNCHRONOUS
)
