"""Actor and critic heads: what a worker (and the manager) puts on top of its features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchrl.modules import MLP


def _orthogonal_init(network: MLP, last_gain: float) -> MLP:
    """Orthogonal weights, zero biases; a small last layer keeps the first policy near uniform."""
    linears = [module for module in network.modules() if isinstance(module, nn.Linear)]
    for index, linear in enumerate(linears):
        nn.init.orthogonal_(linear.weight, gain=last_gain if index == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(linear.bias)
    return network


class ActorCriticHeads(nn.Module):
    """Logits over discrete choices (masked to the allowed ones) and a state value, from concatenated features.

    Args:
        in_features: size of the concatenated feature vector.
        choices: number of discrete choices (actions for a worker, workers for the manager).
        hidden_sizes: hidden layer sizes of both the actor and the critic MLP.
        allowed: indices of the choices this head may pick; ``None`` allows all.
    """

    def __init__(
        self, in_features: int, choices: int, hidden_sizes: Sequence[int], allowed: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.actor = _orthogonal_init(
            MLP(in_features=in_features, out_features=choices, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=0.01,
        )
        self.critic = _orthogonal_init(
            MLP(in_features=in_features, out_features=1, num_cells=list(hidden_sizes), activation_class=nn.Tanh),
            last_gain=1.0,
        )
        mask = torch.zeros(choices, dtype=torch.bool)
        mask[list(allowed) if allowed is not None else slice(None)] = True
        self.register_buffer("allowed", mask)

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [..., choices], value [..., 1])``; disallowed choices get the lowest finite logit."""
        inputs = torch.cat([feature.float() for feature in features], dim=-1)
        logits = self.actor(inputs)
        logits = logits.masked_fill(~self.allowed, torch.finfo(logits.dtype).min)
        return logits, self.critic(inputs)


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
