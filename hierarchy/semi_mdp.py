"""The semi-MDP view of a collected batch, for the manager.

The manager decides only at decision points; between them its option (worker) acts. Its learning
data is the batch compacted to one *transition per option*:

- an option started at decision step ``t`` runs ``k`` steps ``t..j`` (``j = t + k - 1``) and ends at
  the first of: the step before the lane's next decision, an episode end (``done[j]``), the batch
  end (``j = T - 1``);
- its reward is ``R = sum_i gamma^i r_{t+i}`` and its discount ``gamma^k``; it bootstraps from
  ``next_value[j]`` unless ``terminated[j]`` (a truncated episode, a batch cut or the next decision
  all bootstrap);
- steps of a lane before its first decision (an option begun in an earlier batch), and any step
  after an episode end that the policy failed to mark as a decision, make no transition;
- advantages are GAE over each lane's transitions, computed by TorchRL's
  ``vec_generalized_advantage_estimate`` with the per-transition discount ``gamma^k`` (TorchRL's
  ``steps_to_next_obs`` convention); the recursion stops after a transition that ended with its
  episode or at the batch end (``end``).

All inputs are ``[L, T]`` (lanes = envs x agents, time in order); the outputs are ``[L, K]`` with
``K`` the largest number of transitions of any lane, padded slots masked out by ``valid`` (and
zero in every float field).
"""

from __future__ import annotations

import torch
from tensordict import tensorclass
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

__all__ = ["SemiMDPTransitions", "compact_to_decisions", "decision_indices"]


@tensorclass
class SemiMDPTransitions:
    """The manager's transitions, one per option, batch size ``[L, K]``.

    Fields: ``step`` (decision step ``t``, int64), ``length`` (``k``, int64), ``reward``
    (``sum_i gamma^i r_{t+i}``), ``discount`` (``gamma^k``), ``terminated`` (no bootstrap), ``end``
    (the option ended with its episode or at the batch end: GAE does not look past it), ``value``
    (``V(s_t)``), ``bootstrap`` (``next_value[j]``), ``advantage``, ``returns`` (critic targets,
    ``advantage + value``) and ``valid`` (False on padding).
    """

    step: torch.Tensor
    length: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    terminated: torch.Tensor
    end: torch.Tensor
    value: torch.Tensor
    bootstrap: torch.Tensor
    advantage: torch.Tensor
    returns: torch.Tensor
    valid: torch.Tensor


def _check_inputs(
    flags: dict[str, torch.Tensor], floats: dict[str, torch.Tensor], gamma: float, lmbda: float
) -> None:
    shape = flags["decision"].shape
    if len(shape) != 2:
        raise ValueError(f"semi-MDP inputs must be [lanes, time], decision has shape {tuple(shape)}")
    for name, tensor in (flags | floats).items():
        if tensor.shape != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)} (as decision)")
        if name in flags and tensor.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor, got {tensor.dtype}")
        if name in floats and not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not 0.0 <= lmbda <= 1.0:
        raise ValueError(f"lmbda must be in [0, 1], got {lmbda}")


@torch.no_grad()
def decision_steps(decision: torch.Tensor) -> torch.Tensor:
    """For each step of ``decision`` (time along dim 1: ``[lanes, time]`` or ``[envs, time, agents]``), the time
    index of the latest decision at or before it in its lane, or -1 where that decision is before the batch."""
    time = torch.arange(decision.shape[1], device=decision.device)
    time = time.view(1, -1, *([1] * (decision.dim() - 2))).expand_as(decision)
    return torch.where(decision, time, torch.full_like(time, -1)).cummax(dim=1).values


def compact_to_decisions(
    decision: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lmbda: float,
) -> SemiMDPTransitions:
    """Compact a ``[L, T]`` batch to the manager's option transitions, with GAE advantages.

    Args:
        decision: bool, the manager chose a new option at step ``t`` (True at every episode start).
        reward: float, the team reward received after step ``t``.
        terminated: bool, the next state is terminal (no bootstrap).
        done: bool, the episode ended after step ``t`` (terminated or truncated).
        value: float, the manager's ``V(s_t)``.
        next_value: float, the manager's ``V(s_{t+1})`` on the step's next observation (the true
            final observation of a truncated episode, the state at the cut for the last step).
        gamma: discount per env step, in (0, 1].
        lmbda: GAE lambda, in [0, 1].

    Returns:
        ``SemiMDPTransitions`` of batch size ``[L, K]``; each lane's transitions are in time order
        from slot 0, padding after them. Computed without gradients: these are targets and data,
        as with TorchRL's value estimators.
    """
    _check_inputs(
        dict(decision=decision, terminated=terminated, done=done),
        dict(reward=reward, value=value, next_value=next_value),
        gamma,
        lmbda,
    )
    lanes, steps = decision.shape
    device, dtype = reward.device, reward.dtype
    gamma_t = torch.tensor(gamma, dtype=dtype, device=device)
    time = torch.arange(steps, device=device).expand(lanes, steps)

    # Owner of each step: the lane's latest decision at or before it, unless an episode ended since.
    start = decision_steps(decision)
    start_at = start.clamp(min=0)
    done_before = done.long().cumsum(dim=1) - done.long()  # dones in [0, t-1]
    owned = (start >= 0) & (done_before == done_before.gather(1, start_at))

    # Per-option sums by scatter over the owner's start step; gamma^age never overflows.
    age = (time - start_at).to(dtype)
    weighted = torch.where(owned, gamma_t.pow(age) * reward, 0.0)
    option_reward = torch.zeros_like(reward).scatter_add_(1, start_at, weighted)
    option_length = torch.zeros_like(time).scatter_add_(1, start_at, owned.long())

    width = int(decision.sum(dim=1).max()) if lanes else 0
    lane_idx, step_idx = decision.nonzero(as_tuple=True)  # lane-major, time-ordered
    slot_idx = decision.long().cumsum(dim=1)[lane_idx, step_idx] - 1
    last_idx = step_idx + option_length[lane_idx, step_idx] - 1

    def compact(source: torch.Tensor, fill: float | bool | int = 0) -> torch.Tensor:
        out = torch.full((lanes, width), fill, dtype=source.dtype, device=device)
        out[lane_idx, slot_idx] = source
        return out

    valid = compact(torch.ones_like(step_idx, dtype=torch.bool), False)
    length = compact(option_length[lane_idx, step_idx])
    discount = torch.where(valid, gamma_t.pow(length.to(dtype)), 0.0)
    ended = done[lane_idx, last_idx] | (last_idx == steps - 1)
    out = SemiMDPTransitions(
        step=compact(step_idx),
        length=length,
        reward=compact(option_reward[lane_idx, step_idx]),
        discount=discount,
        # Padding counts as terminated and ended, so GAE neither bootstraps in it nor flows out of it.
        terminated=compact(terminated[lane_idx, last_idx], True),
        end=compact(ended, True),
        value=compact(value[lane_idx, step_idx]),
        bootstrap=compact(next_value[lane_idx, last_idx]),
        advantage=torch.zeros(lanes, width, dtype=dtype, device=device),
        returns=torch.zeros(lanes, width, dtype=dtype, device=device),
        valid=valid,
        batch_size=[lanes, width],
    )
    if width == 0:
        return out
    # One extra padded slot keeps TorchRL on its tensor-gamma path: with a single element it takes
    # the scalar fast path, which fails when gamma * lmbda < ~1e-7.
    def gae_input(x: torch.Tensor, fill: float | bool) -> torch.Tensor:
        return torch.cat([x, torch.full((lanes, 1), fill, dtype=x.dtype, device=device)], dim=1).unsqueeze(-1)

    advantage, returns = vec_generalized_advantage_estimate(
        gae_input(out.discount, 0.0),
        lmbda,
        gae_input(out.value, 0.0),
        gae_input(out.bootstrap, 0.0),
        gae_input(out.reward, 0.0),
        done=gae_input(out.end, True),
        terminated=gae_input(out.terminated, True),
    )
    advantage, returns = advantage[:, :width, 0], returns[:, :width, 0]
    out.advantage = torch.where(valid, advantage, 0.0)
    out.returns = torch.where(valid, returns, 0.0)
    return out


def decision_indices(transitions: SemiMDPTransitions) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ``(lane, step)`` indices of the valid transitions, lane-major and in time order.

    ``data[lane, step]`` on any ``[L, T, ...]`` tensor (or TensorDict) of the batch gives its
    entries at the decision points, aligned with ``transitions[transitions.valid]``.
    """
    lane = torch.arange(transitions.valid.shape[0], device=transitions.valid.device)
    lane = lane.unsqueeze(1).expand_as(transitions.valid)
    return lane[transitions.valid], transitions.step[transitions.valid]
