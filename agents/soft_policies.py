"""A head's policy as soft actor-critic reads it: every choice's log-probability, or reparameterised samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as functional
from torch.distributions import Normal


@dataclass
class CategoricalPolicy:
    """A categorical policy given by its normalised log-probabilities ``[..., choices]``.

    A choice the head may not take has probability 0 (and a very negative, finite log-probability).
    """

    log_probs: torch.Tensor

    @property
    def probs(self) -> torch.Tensor:
        """``[..., choices]``."""
        return self.log_probs.exp()

    def expectation(self, values: torch.Tensor) -> torch.Tensor:
        """``sum_a pi(a) values[..., a]``."""
        return (self.probs * values).sum(-1)

    def entropy(self) -> torch.Tensor:
        """``-sum_a pi(a) log pi(a)``."""
        return -self.expectation(self.log_probs)


@dataclass
class SquashedGaussianPolicy:
    """A diagonal Gaussian over ``u`` squashed into ``[low, high]`` by ``low + (tanh(u) + 1) / 2 (high - low)``.

    Samples are reparameterised and their log-density is computed from ``u`` (``log(1 - tanh(u)^2)`` in its
    stable form), so it stays finite where ``tanh`` saturates.
    """

    loc: torch.Tensor
    scale: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action ``[..., size]`` and its log-density ``[...]``."""
        gaussian = Normal(self.loc, self.scale)
        unbounded = gaussian.rsample()
        half_range = (self.high - self.low) / 2
        action = self.low + (torch.tanh(unbounded) + 1) * half_range
        # log |d action / d u| = log(half_range) + log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u)).
        log_jacobian = half_range.log() + 2 * (math.log(2.0) - unbounded - functional.softplus(-2 * unbounded))
        return action, (gaussian.log_prob(unbounded) - log_jacobian).sum(-1)
