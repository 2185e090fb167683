"""PPO for one level: the clipped objective with per-sample weights, over minibatch epochs.

The weights say which samples an actor learns from: a worker learns only from the steps where it
acted (select mode), while its critic learns from every step. TorchRL's ``ClipPPOLoss`` owns its
actor and critic modules and averages over all samples, so this level-agnostic form takes the
log-probabilities, values and weights the hierarchical learner computes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from himo.agents import tags
from himo.agents.base import GradientAlgorithm, LevelMetrics, LevelProblem, gradient_epochs, head_diagnostics
from himo.agents.optim import LevelSettings


@dataclass(frozen=True)
class PPOTerms:
    """Loss terms (``loss_*``, to be summed) and diagnostics (detached) of one PPO minibatch."""

    loss_objective: torch.Tensor
    loss_critic: torch.Tensor
    loss_entropy: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor
    clip_fraction: torch.Tensor

    def total(self) -> torch.Tensor:
        """The sum of the ``loss_*`` terms."""
        return self.loss_objective + self.loss_critic + self.loss_entropy


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
    value: torch.Tensor,
    returns: torch.Tensor,
    actor_weight: torch.Tensor,
    critic_weight: torch.Tensor,
    clip_epsilon: float,
    entropy_coef: float,
    value_coef: float,
    normalize_advantage: bool = True,
) -> PPOTerms:
    """Clipped surrogate, squared-error critic and entropy bonus; all tensors share one shape."""
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
        loss_critic=value_coef * 0.5 * weighted_mean((value - returns) ** 2, critic_weight),
        loss_entropy=-entropy_coef * mean_entropy,
        entropy=mean_entropy.detach(),
        kl=kl,
        clip_fraction=clip_fraction,
    )


class PPOSettings(LevelSettings, Protocol):
    """A level's PPO settings (``himo.scenarios.algorithms.PPOConfig`` satisfies this)."""

    @property
    def clip_epsilon(self) -> float: ...
    @property
    def entropy_coef(self) -> float: ...
    @property
    def value_coef(self) -> float: ...
    @property
    def epochs(self) -> int: ...


def add_terms(metrics: dict[str, float], level: str, terms: dict[str, torch.Tensor | float], heads: int) -> None:
    """Accumulate one head's diagnostics into a minibatch's metrics (means over heads), by tag.

    ``loss_<term>`` goes to ``loss/<level>/<term>``, ``entropy`` to ``<level>/entropy`` and any other
    name to ``<name>/<level>``.
    """
    for name, value in terms.items():
        if name.startswith("loss_"):
            tag = tags.loss(level, name.removeprefix("loss_"))
        elif name == "entropy":
            tag = tags.entropy(level)
        else:
            tag = tags.level_metric(name, level)
        value = value.detach() if isinstance(value, torch.Tensor) else value
        metrics[tag] = metrics.get(tag, 0.0) + float(value) / heads


class PPO(GradientAlgorithm):
    """Proximal policy optimisation of one level: ``epochs`` passes of clipped-objective minibatch steps."""

    settings: PPOSettings

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """Clipped-objective minibatch epochs over the problem's rows."""
        settings = self.settings

        def loss_of(indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            outputs = problem.evaluate(indices)
            loss, metrics = torch.zeros(()), {}
            for head, output in outputs.items():
                target = problem.targets[head][indices]
                terms = ppo_terms(
                    log_prob=output.log_prob,
                    old_log_prob=target.get("old_log_prob"),
                    advantage=target.get("advantage"),
                    entropy=output.entropy,
                    value=output.value,
                    returns=target.get("returns"),
                    actor_weight=target.get("weight"),
                    critic_weight=torch.ones_like(output.value),
                    clip_epsilon=settings.clip_epsilon,
                    entropy_coef=settings.entropy_coef,
                    value_coef=settings.value_coef,
                )
                loss = loss + terms.total() + output.auxiliary_loss()
                diagnostics = {
                    "loss_objective": terms.loss_objective,
                    "loss_critic": terms.loss_critic,
                    "loss_entropy": terms.loss_entropy,
                    "kl": terms.kl,
                    "clip_fraction": terms.clip_fraction,
                    "entropy": terms.entropy,
                }
                add_terms(metrics, problem.level, head_diagnostics(diagnostics, output), len(outputs))
            return loss, metrics

        return gradient_epochs(
            self.optimizer, problem.rows, problem.rows_per_minibatch, settings.epochs, loss_of, frames, LevelMetrics(problem.level)
        )
