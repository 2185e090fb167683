"""V-trace targets for IMPALA-style off-policy actor-critic, on [lanes, time] tensors.

V-trace (Espeholt et al., 2018, "IMPALA: Scalable Distributed Deep-RL with Importance Weighted
Actor-Learner Architectures") corrects n-step value targets for the lag between the behaviour policy ``mu``
that collected a rollout and the target policy ``pi`` being learned, with truncated importance weights
``rho_t = min(rho_clip, pi/mu)`` and ``c_t = min(c_clip, pi/mu)``:

    v_s = V(x_s) + sum_t (prod_{s<=i<t} gamma_i c_i) delta_t,   delta_t = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t))

summed until the episode or the rollout ends. The recursion is TorchRL's ``vtrace_advantage_estimate``
(which wants ``[..., T, 1]`` tensors and calls the target log-probability ``log_pi`` and the behaviour one
``log_mu``); this module only checks shapes, adds and removes the trailing feature dimension, and lets a
level pass a discount per step, e.g. ``gamma ** k`` for a manager decision that lasted ``k`` env steps.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchrl.objectives.value.functional import vtrace_advantage_estimate


def vtrace_targets(
    *,
    behaviour_log_prob: Tensor,
    target_log_prob: Tensor,
    value: Tensor,
    next_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    gamma: float | Tensor,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """The policy-gradient advantage and the value target ``v_s`` of V-trace, both shaped like ``value``.

    Every tensor is ``[..., time]`` with time last, typically ``[lanes, time]``: lane ``l``, step ``t`` is
    the transition from ``x_t`` under action ``a_t``. ``behaviour_log_prob`` is ``log mu(a_t | x_t)``
    recorded at collection, ``target_log_prob`` is ``log pi(a_t | x_t)`` under the policy being learned,
    ``value`` is ``V(x_t)``, ``next_value`` is ``V(x_{t+1})`` of the step's own next observation (the true
    final one at a truncation), ``reward`` is ``r_t``, ``done`` marks steps that ended an episode and
    ``terminated`` those of them that ended it for good. ``gamma`` is a number or a tensor of per-step
    discounts shaped like ``reward``.

    The value target does not cross episode ends; a terminated step does not bootstrap, a truncated one
    bootstraps from ``next_value``, as does the last step of the rollout. The advantage is
    ``rho_t (r_t + gamma_t v_{t+1} - V(x_t))``, with ``v_{t+1}`` replaced by ``next_value`` at episode and
    rollout ends and the bootstrap dropped at terminations. Both outputs are constants (no gradient):
    IMPALA treats ``rho_t`` and ``v_s`` as fixed targets.
    """
    named = {
        "behaviour_log_prob": behaviour_log_prob,
        "target_log_prob": target_log_prob,
        "value": value,
        "next_value": next_value,
        "reward": reward,
        "done": done,
        "terminated": terminated,
    }
    if isinstance(gamma, Tensor) and gamma.ndim > 0:
        named["gamma"] = gamma
    shapes = {name: tuple(tensor.shape) for name, tensor in named.items()}
    if len(set(shapes.values())) != 1 or value.ndim < 1:
        raise ValueError(f"vtrace_targets needs tensors of one shape [..., time]; got {shapes}")
    if rho_clip <= 0 or c_clip <= 0:
        raise ValueError(f"vtrace_targets needs positive clips; got rho_clip={rho_clip}, c_clip={c_clip}")
    with torch.no_grad():
        # A per-step gamma goes straight through: the recursion only multiplies it elementwise by not-done.
        discount = gamma.unsqueeze(-1) if isinstance(gamma, Tensor) and gamma.ndim > 0 else gamma
        # Clips given as numbers would become default-dtype (float32) tensors there, off in float64.
        as_tensor = {"dtype": value.dtype, "device": value.device}
        advantage, value_target = vtrace_advantage_estimate(
            discount,
            target_log_prob.unsqueeze(-1),
            behaviour_log_prob.unsqueeze(-1),
            value.unsqueeze(-1),
            next_value.unsqueeze(-1),
            reward.unsqueeze(-1),
            done.bool().unsqueeze(-1),
            terminated.bool().unsqueeze(-1),
            rho_thresh=torch.tensor(rho_clip, **as_tensor),
            c_thresh=torch.tensor(c_clip, **as_tensor),
        )
    return advantage.squeeze(-1), value_target.squeeze(-1)
