"""PPO's clipped objective for one level, with per-sample weights.

The weights say which samples an actor learns from: a worker learns only from the steps where it
acted (select mode), while its critic learns from every step. TorchRL's ``ClipPPOLoss`` owns its
actor and critic modules and averages over all samples, so this level-agnostic form takes the
log-probabilities, values and weights the hierarchical learner computes instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
