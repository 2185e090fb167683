"""Actor and critic heads: what a worker (and the manager) puts on top of its features."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchrl.modules import MLP
from torchrl.modules.value_norm import PopArtValueNorm, RunningValueNorm, ValueNorm

from himo.agents.base import HeadShape


def _orthogonal_init(network: MLP, last_gain: float) -> MLP:
    """Orthogonal weights, zero biases; a small last layer keeps the first policy near uniform."""
    linears = [module for module in network.modules() if isinstance(module, nn.Linear)]
    for index, linear in enumerate(linears):
        nn.init.orthogonal_(linear.weight, gain=last_gain if index == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(linear.bias)
    return network


@dataclass(frozen=True)
class CriticView:
    """What a critic reads beside its agent's own features (``multi_agent.critic``)."""

    agents: int | None = None
    """Centralised (and global): the whole group's features too, for a group of this many agents; ``None``: not."""
    extra: int = 0
    """Global: this many features at the end of the input are the other groups' observations, which only the critic
    reads (``himo.envs.other_groups``)."""
    value_norm: str | None = None
    """``popart`` or ``running``: the critic's output is a standardised value, read back through running statistics
    of its returns (TorchRL's value normalisers); ``None``: the output is the value."""


VALUE_NORMS: dict[str, type[ValueNorm]] = {"popart": PopArtValueNorm, "running": RunningValueNorm}
"""The value normalisers a level's ``value_norm`` names."""


class ActorCriticHeads(nn.Module):
    """Logits over discrete choices (masked to the allowed ones) and a state value, from concatenated features.

    Features are laid out ``[..., agents, features]``, one row per agent of the group. A local critic
    reads an agent's own features; a centralised critic (MAPPO-style, with an agent-specific global
    state) reads its own features followed by every agent's of the group, so each agent still gets
    the value of its own return; a global one also reads ``critic.extra`` features that follow the agent's own in
    the input (the other groups' observations), which the actor never sees.

    Args:
        in_features: size of the concatenated feature vector of one agent (the actor's input).
        choices: number of discrete choices (actions for a worker, workers for the manager).
        hidden_sizes: hidden layer sizes of both the actor and the critic MLP.
        allowed: indices of the choices this head may pick; ``None`` allows all.
        critic: what the critic reads beside the agent's own features; by default nothing (a local critic).
    """

    def __init__(
        self,
        in_features: int,
        choices: int,
        hidden_sizes: Sequence[int],
        allowed: Sequence[int] | None = None,
        critic: CriticView = CriticView(),
    ) -> None:
        super().__init__()
        self.actor = _orthogonal_init(
            MLP(in_features=in_features, out_features=choices, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=0.01,
        )
        self.in_features = in_features
        self.view = critic
        self.hidden_sizes = tuple(hidden_sizes)
        critic_features = in_features * (1 + critic.agents) if critic.agents else in_features
        critic_features += critic.extra
        self.critic_features = critic_features
        self.critic = _orthogonal_init(
            MLP(in_features=critic_features, out_features=1, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=1.0,
        )
        self.value_norm = VALUE_NORMS[critic.value_norm](shape=1) if critic.value_norm else None
        mask = torch.zeros(choices, dtype=torch.bool)
        mask[list(allowed) if allowed is not None else slice(None)] = True
        self.register_buffer("allowed", mask)

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [..., choices], value [..., 1])``; disallowed choices get the lowest finite logit."""
        inputs = torch.cat([feature.float() for feature in features], dim=-1)
        logits = self.actor(inputs[..., : self.in_features])
        logits = logits.masked_fill(~self.allowed, torch.finfo(logits.dtype).min)
        return logits, self.value(inputs)

    def value(self, inputs: torch.Tensor) -> torch.Tensor:
        """The state value ``[..., 1]`` in return units, from the concatenated features."""
        value = self.critic(self.critic_inputs(inputs))
        return value if self.value_norm is None else self.value_norm.denormalize(value)

    def value_scale(self) -> torch.Tensor | float:
        """What a value error is divided by in the critic's loss: the value normaliser's scale (1 without)."""
        return 1.0 if self.value_norm is None else self.value_norm.scale().detach().squeeze(-1)

    def shape(self) -> HeadShape:
        """What its critic reads and what it chooses among."""
        choices = int(self.allowed.numel())
        return HeadShape(self.critic_features, choices, int(self.allowed.sum()), False, self.hidden_sizes)

    def critic_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the critic reads: each agent's own features, then (centralised) the whole group's, then (global) the
        features only the critic reads."""
        if self.view.agents is None:
            return inputs
        own, extra = inputs[..., : self.in_features], inputs[..., self.in_features :]
        agents = own.shape[-2]
        if agents != self.view.agents:
            raise ValueError(f"the centralised critic was built for {self.view.agents} agents, got {agents}")
        group = own.flatten(-2).unsqueeze(-2).expand(*own.shape[:-1], agents * own.shape[-1])
        return torch.cat([own, group, extra], dim=-1)


class OptionCriticHeads(nn.Module):
    """Option-critic heads over discrete options: a termination logit and an option value per option.

    Args:
        in_features: size of the feature vector.
        options: number of options (the manager's workers).
        hidden_sizes: hidden layer sizes of both MLPs.
    """

    def __init__(self, in_features: int, options: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        # A small last layer starts every termination probability near 1/2.
        self.termination = _orthogonal_init(
            MLP(in_features=in_features, out_features=options, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=0.01,
        )
        self.option_value = _orthogonal_init(
            MLP(in_features=in_features, out_features=options, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=1.0,
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(termination logits [..., options], option values [..., options])``."""
        return self.termination(features), self.option_value(features)


class GaussianActorCriticHeads(ActorCriticHeads):
    """A diagonal Gaussian over a continuous action (before squashing into its bounds) and a state value.

    The actor gives each dimension's mean and log standard deviation (clamped to ``[-5, 2]``); the
    critic is :class:`ActorCriticHeads`' (local or centralised).

    Args:
        in_features: size of the concatenated feature vector of one agent.
        size: number of action dimensions.
        hidden_sizes: hidden layer sizes of both the actor and the critic MLP.
        critic: what the critic reads beside the agent's own features (see :class:`ActorCriticHeads`).
    """

    LOG_SCALE_RANGE = (-5.0, 2.0)

    def __init__(
        self, in_features: int, size: int, hidden_sizes: Sequence[int], critic: CriticView = CriticView()
    ) -> None:
        super().__init__(in_features, 2 * size, hidden_sizes, critic=critic)
        self.size = size

    def shape(self) -> HeadShape:
        """What its critic reads, and the action's dimensions."""
        return HeadShape(self.critic_features, self.size, self.size, True, self.hidden_sizes)

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loc [..., size], scale [..., size], value [..., 1])``."""
        inputs = torch.cat([feature.float() for feature in features], dim=-1)
        loc, log_scale = self.actor(inputs[..., : self.in_features]).chunk(2, dim=-1)
        return loc, log_scale.clamp(*self.LOG_SCALE_RANGE).exp(), self.value(inputs)
