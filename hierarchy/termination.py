"""Learned termination (option-critic) terms of the manager's update: switch costs and the termination loss.

- The switching cost lowers the manager's reward: each termination charges ``c`` to the last step of
  the option it ends; an option cut by the batch end is charged the expected cost ``c * beta_o(s')``
  in its bootstrap.
- The termination heads follow the option-critic termination gradient: the loss
  ``beta_o(s_t) * (A(s_t, o) + c)`` over every step that is not an episode start, with ``o`` the
  option of the previous step and ``A = Q(s_t, o) - sum_o' pi(o'|s_t) Q(s_t, o')`` detached (the
  baseline is the value of the manager's own policy under the same Q head, so the two heads' biases
  do not leak into it). As in PPOC (Klissarov et al., 2017) it takes the manager's epochs and
  minibatch size, after the manager's own update.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from himo.agents import tags
from himo.envs import keys
from himo.hierarchy.selectors import termination_probability
from himo.hierarchy.state import IS_INIT


def lanes(tensor: torch.Tensor) -> torch.Tensor:
    """``[E, T, A(, 1)]`` to ``[E * A, T]``: one lane per agent of each env, in time order."""
    if tensor.dim() == 4:
        tensor = tensor.squeeze(-1)
    return tensor.transpose(1, 2).reshape(-1, tensor.shape[1])


def from_lanes(tensor: torch.Tensor, envs: int) -> torch.Tensor:
    """The inverse of :func:`lanes`: ``[E * A, T]`` to ``[E, T, A]``."""
    return tensor.reshape(envs, -1, tensor.shape[-1]).transpose(1, 2)


def charge_switches(
    batch: TensorDictBase,
    successor: TensorDictBase,
    group: str,
    switching_cost: float,
    reward: torch.Tensor,
    next_value: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The manager's ``[L, T]`` reward and bootstrap values less the switching cost (see the module docstring)."""
    termination = lanes(batch.get((group, keys.MANAGER, keys.TERMINATION))).to(reward.dtype)
    reward = reward - switching_cost * torch.cat([termination[:, 1:], torch.zeros_like(termination[:, :1])], dim=1)
    beta = termination_probability(
        successor.get(keys.manager(group, keys.TERMINATION_LOGITS)),
        batch.get((keys.NEXT, group, keys.MANAGER, keys.OPTION)),
    )
    running = ~lanes(batch.get((keys.NEXT, group, keys.DONE)))[:, -1]
    next_value = next_value.clone()
    next_value[:, -1] -= switching_cost * lanes(beta)[:, -1] * running
    return reward, next_value


def termination_samples(batch: TensorDictBase, group: str) -> TensorDictBase:
    """The steps that feed the termination gradient, ``[steps, agents]``: every env step but an episode's first.

    Each holds the observation ``s_t`` and the option of the previous step (the option state read at ``t``).
    """
    data = batch.get(group)
    # Episodes start for the whole env at once: mask env steps, keep the group's agents together.
    is_init = batch.get(IS_INIT).reshape(data.shape[:2])
    return data.select(keys.OBSERVATION, (keys.MANAGER, keys.OPTION))[~is_init]


def termination_loss(inputs: TensorDictBase, group: str, switching_cost: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The option-critic termination loss on evaluated ``termination_samples``, and its metrics."""
    option = inputs.get(keys.manager(group, keys.OPTION))
    beta = termination_probability(inputs.get(keys.manager(group, keys.TERMINATION_LOGITS)), option)
    with torch.no_grad():
        option_values = inputs.get(keys.manager(group, keys.OPTION_VALUES))
        policy = inputs.get(keys.manager(group, keys.LOGITS)).softmax(-1)
        advantage = option_values.gather(-1, option.unsqueeze(-1)).squeeze(-1) - (policy * option_values).sum(-1)
    loss = (beta * (advantage + switching_cost)).mean()
    return loss, {
        tags.loss("manager", "termination"): loss.item(),
        tags.TERMINATION_PROBABILITY: beta.mean().item(),
        tags.TERMINATION_ADVANTAGE: advantage.mean().item(),
    }
