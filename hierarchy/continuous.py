"""Continuous actions: each worker's Gaussian, squashed into the action's bounds, composed by the manager.

A worker's heads give a diagonal Gaussian ``N(mu_k, sigma_k^2)`` over an unbounded vector ``u``; the
action is ``a = low + (tanh(u) + 1) / 2 * (high - low)`` (TorchRL's ``TanhNormal``), so every action
is inside the env's bounds and its log-probability is exact (the change of variables included).

- ``select``: the active worker's squashed Gaussian.
- ``weighted``: the weighted product of the workers' Gaussians, ``prod_k N(u; mu_k, sigma_k^2)^{w_k}``
  normalised, which is Gaussian with precision ``sum_k w_k / sigma_k^2`` and mean
  ``sum_k (w_k / sigma_k^2) mu_k`` over that precision; then squashed. Its log-probability is exact.

A worker's entropy (the bonus) is its Gaussian's before squashing; KL divergences are between the
Gaussians before squashing, which equal those after (the squashing is invertible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torch import nn
from torch.distributions import Independent, Normal
from torchrl.data import Bounded
from torchrl.modules import TanhNormal

from himo.agents.heads import CriticView, GaussianActorCriticHeads
from himo.agents.soft_policies import SquashedGaussianPolicy
from himo.envs import keys
from himo.hierarchy.actions import WorkerPolicy


@dataclass(frozen=True)
class ContinuousActions:
    """A group's bounded continuous action ``(group, "action")`` of ``size`` dimensions.

    Attributes:
        group: the agent group.
        size: number of action dimensions.
        low: lower bounds ``[size]``.
        high: upper bounds ``[size]``.
    """

    group: str
    size: int
    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def from_spec(cls, group: str, spec: Bounded) -> ContinuousActions:
        """From a ``Bounded`` float spec ``[..., agents, size]`` with finite bounds (``TypeError`` otherwise)."""
        low, high = spec.space.low, spec.space.high
        while low.dim() > 1:  # bounds are the same for every env and agent
            low, high = low[0], high[0]
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high > low).all()):
            raise TypeError(f"continuous actions need finite bounds with high > low; got low {low.tolist()}, high {high.tolist()}")
        return cls(group, int(low.numel()), low.float().clone(), high.float().clone())

    @property
    def count(self) -> int:
        """One part: every worker acts on the whole vector."""
        return 1

    def worker_heads(
        self, in_features: int, hidden_sizes: Sequence[int], allowed: Sequence[int] | None, critic: CriticView
    ) -> nn.Module:
        """A Gaussian's mean and scale, and a value."""
        if allowed is not None:
            raise ValueError("a subset of actions is for discrete actions; continuous workers act on the whole vector")
        return GaussianActorCriticHeads(in_features, self.size, hidden_sizes, critic)

    def worker_keys(self, worker: str) -> list[tuple[str, ...]]:
        """The worker's Gaussian mean and scale."""
        return [keys.worker(self.group, worker, keys.LOC), keys.worker(self.group, worker, keys.SCALE)]

    def action_keys(self) -> list[tuple[str, ...]]:
        """``(group, "action")``."""
        return [(self.group, keys.ACTION)]

    def read(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The action ``[..., size]``."""
        return tensordict.get((self.group, keys.ACTION))

    def write(self, tensordict: TensorDictBase, action: torch.Tensor) -> None:
        """Write the action ``[..., size]``."""
        tensordict.set((self.group, keys.ACTION), action)

    def control_mask(self, controlled: Sequence[str] | None) -> torch.Tensor:
        """Every worker controls the whole action; named parts are for composite discrete actions."""
        if controlled is not None:
            raise ValueError(f"unknown action part {controlled[0]!r}; a continuous action has no named parts")
        return torch.ones(1, dtype=torch.bool)

    def squashed(self, loc: torch.Tensor, scale: torch.Tensor) -> TanhNormal:
        """The Gaussian ``N(loc, scale^2)`` squashed into the bounds."""
        return TanhNormal(loc, scale, low=self.low.to(loc.device), high=self.high.to(loc.device))

    def _gaussians(self, tensordict: TensorDictBase, workers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every worker's mean and scale, ``[..., workers, size]`` each."""
        loc = torch.stack([tensordict.get(self.worker_keys(name)[0]) for name in workers], dim=-2)
        scale = torch.stack([tensordict.get(self.worker_keys(name)[1]) for name in workers], dim=-2)
        return loc, scale

    def acting(
        self, tensordict: TensorDictBase, workers: Sequence[str], option: torch.Tensor, weights: torch.Tensor, mode: str, control: torch.Tensor
    ) -> SquashedActing:
        """The active worker's squashed Gaussian, or the squashed weighted product of every worker's."""
        loc, scale = self._gaussians(tensordict, workers)
        if mode == "select":
            index = option[..., None, None].expand(*option.shape, 1, self.size)
            return SquashedActing(self.squashed(loc.gather(-2, index).squeeze(-2), scale.gather(-2, index).squeeze(-2)))
        precision = weights.unsqueeze(-1) / scale.pow(2)
        total = precision.sum(-2)
        mean = (precision * loc).sum(-2) / total
        return SquashedActing(self.squashed(mean, total.rsqrt()))

    def worker_policies(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor
    ) -> dict[str, WorkerPolicy]:
        """Each worker's squashed Gaussian (its Gaussian before squashing for entropies and KL divergences)."""
        policies = {}
        for name in workers:
            loc, scale = (tensordict.get(key) for key in self.worker_keys(name))
            squashed = self.squashed(loc, scale)
            policies[name] = WorkerPolicy((Independent(Normal(loc, scale), 1),), squashed.log_prob)
        return policies

    def worker_log_probs(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """Every worker's squashed log-density ``[..., workers]`` of ``action``, in one batched evaluation."""
        loc, scale = self._gaussians(tensordict, workers)
        return self.squashed(loc, scale).log_prob(action.unsqueeze(-2).expand_as(loc))

    def soft_policy(self, tensordict: TensorDictBase, worker: str) -> SquashedGaussianPolicy:
        """The worker's squashed Gaussian, with reparameterised samples."""
        loc, scale = (tensordict.get(key) for key in self.worker_keys(worker))
        return SquashedGaussianPolicy(loc, scale, self.low.to(loc.device), self.high.to(loc.device))


@dataclass
class SquashedActing:
    """The acting squashed Gaussian."""

    distribution: TanhNormal

    def sample(self) -> torch.Tensor:
        """A random action inside the bounds."""
        return self.distribution.sample()

    def mode(self) -> torch.Tensor:
        """The squashed mean (the greedy action)."""
        return self.distribution.deterministic_sample

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """The exact log-density of ``action``."""
        return self.distribution.log_prob(action)
