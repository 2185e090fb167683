"""A2C for one level: synchronous advantage actor-critic, one gradient step per batch.

The loss is the policy gradient ``-A * log pi(a|s)`` weighted per sample (a worker learns from the
steps where it acted), a squared-error critic and an entropy bonus. TorchRL's ``A2CLoss`` owns its
actor and critic modules and averages over every sample, so, as for PPO, this level-agnostic form
takes the log-probabilities, values and weights the hierarchical learner computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from himo.agents.base import GradientAlgorithm, LevelMetrics, LevelProblem, gradient_epochs, head_diagnostics
from himo.agents.optim import LevelOptimizer, LevelSettings
from himo.agents.ppo import add_terms, normalized, weighted_mean


class PolicyGradientSettings(LevelSettings, Protocol):
    """A level's A2C settings (``himo.scenarios.algorithms.A2CConfig`` satisfies this)."""

    @property
    def entropy_coef(self) -> float: ...
    @property
    def value_coef(self) -> float: ...
    @property
    def normalize_advantage(self) -> bool: ...


@dataclass(frozen=True)
class PolicyGradientTerms:
    """Loss terms (``loss_*``, to be summed) and the mean entropy (detached) of one minibatch."""

    loss_objective: torch.Tensor
    loss_critic: torch.Tensor
    loss_entropy: torch.Tensor
    entropy: torch.Tensor

    def total(self) -> torch.Tensor:
        """The sum of the ``loss_*`` terms."""
        return self.loss_objective + self.loss_critic + self.loss_entropy


def policy_gradient_terms(
    *,
    log_prob: torch.Tensor,
    advantage: torch.Tensor,
    entropy: torch.Tensor,
    value: torch.Tensor,
    returns: torch.Tensor,
    actor_weight: torch.Tensor,
    entropy_coef: float,
    value_coef: float,
    normalize_advantage: bool,
) -> PolicyGradientTerms:
    """``-A log pi`` (weighted), squared-error critic on every sample, entropy bonus; all tensors share one shape."""
    if normalize_advantage:
        advantage = normalized(advantage, actor_weight)
    mean_entropy = weighted_mean(entropy, actor_weight)
    return PolicyGradientTerms(
        loss_objective=-weighted_mean(advantage.detach() * log_prob, actor_weight),
        loss_critic=value_coef * 0.5 * ((value - returns) ** 2).mean(),
        loss_entropy=-entropy_coef * mean_entropy,
        entropy=mean_entropy.detach(),
    )


class A2C(GradientAlgorithm):
    """Advantage actor-critic of one level: one gradient step on the whole batch."""

    settings: PolicyGradientSettings

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """One policy-gradient step over every row of the problem."""
        return policy_gradient_update(self.optimizer, self.settings, problem, frames, problem.rows, epochs=1)


def policy_gradient_update(
    optimizer: LevelOptimizer,
    settings: PolicyGradientSettings,
    problem: LevelProblem,
    frames: int,
    rows_per_minibatch: int,
    epochs: int,
) -> LevelMetrics:
    """Minibatch steps of :func:`policy_gradient_terms` over the problem's rows (A2C, IMPALA)."""

    def loss_of(indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        outputs = problem.evaluate(indices)
        loss, metrics = torch.zeros(()), {}
        for head, output in outputs.items():
            target = problem.targets[head][indices]
            terms = policy_gradient_terms(
                log_prob=output.log_prob,
                advantage=target.get("advantage"),
                entropy=output.entropy,
                value=output.value,
                returns=target.get("returns"),
                actor_weight=target.get("weight"),
                entropy_coef=settings.entropy_coef,
                value_coef=settings.value_coef,
                normalize_advantage=settings.normalize_advantage,
            )
            loss = loss + terms.total() + output.auxiliary_loss()
            diagnostics = {
                "loss_objective": terms.loss_objective,
                "loss_critic": terms.loss_critic,
                "loss_entropy": terms.loss_entropy,
                "entropy": terms.entropy,
            }
            add_terms(metrics, problem.level, head_diagnostics(diagnostics, output), len(outputs))
        return loss, metrics

    return gradient_epochs(optimizer, problem.rows, rows_per_minibatch, epochs, loss_of, frames, LevelMetrics(problem.level))
