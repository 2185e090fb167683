"""The transitions an off-policy level (SAC) stores from a collected batch ``[envs, time]``.

- **workers**: every env step is a transition of every worker, whichever worker acted: its own
  reward channel, discount ``gamma``. Each row holds the whole group (``[agents]``), so a
  centralised critic can read it.
- **manager**: one transition per option (``himo.hierarchy.semi_mdp``): the state at the decision, the
  worker chosen, the discounted team reward over the option, discount ``gamma^k``, and the state
  after the option's last step as successor (where the batch cut the option, the state at the cut).

Rows are TensorDicts with ``state`` and ``successor`` (the group's observations) and one entry per
head (``action``, ``reward``, ``discount``, ``terminated``), see ``himo.agents.sac.transitions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase

from himo.agents.sac import transitions
from himo.envs import keys
from himo.hierarchy.semi_mdp import compact_to_decisions, decision_indices
from himo.hierarchy.termination import lanes


def worker_transitions(
    batch: TensorDictBase, group: str, workers: Sequence[str], gamma: float, observed: Sequence[str] = (keys.OBSERVATION,)
) -> TensorDict:
    """``[envs * time]`` rows: each env step, with every worker's reward channel; states keep the group's
    ``observed`` entries (the observation, and the legal actions where the env has them)."""
    data, after = batch.get(group), batch.get((keys.NEXT, group))
    envs, steps, agents = data.shape
    action, terminated = data.get(keys.ACTION), after.get(keys.TERMINATED).reshape(data.shape)
    heads = {
        name: TensorDict(
            {
                "action": action,
                "reward": batch.get((keys.NEXT, *keys.reward_channel(group, name))).reshape(data.shape),
                "discount": torch.full(data.shape, gamma, device=action.device),
                "terminated": terminated,
            },
            batch_size=data.shape,
        ).reshape(envs * steps, agents)
        for name in workers
    }
    return transitions(
        data.select(*observed).reshape(envs * steps, agents),
        after.select(*observed).reshape(envs * steps, agents),
        heads,
        envs * steps,
    )


def manager_transitions(
    batch: TensorDictBase, group: str, gamma: float, observed: Sequence[str] = (keys.OBSERVATION,)
) -> tuple[TensorDict | None, float]:
    """One row per option that began in the batch (with the deciding agent's index as ``agent``), and the mean
    option length; ``None`` rows when no decision was made. States keep the group's ``observed`` entries."""
    data, after = batch.get(group), batch.get((keys.NEXT, group))
    decision = lanes(data.get((keys.MANAGER, keys.DECISION)))
    zeros = torch.zeros(decision.shape, device=decision.device)
    # Values are not needed here: only the options' rewards, discounts and extents are read.
    options = compact_to_decisions(
        decision=decision,
        reward=lanes(after.get(keys.REWARD)),
        terminated=lanes(after.get(keys.TERMINATED)),
        done=lanes(after.get(keys.DONE)),
        value=zeros,
        next_value=zeros,
        gamma=gamma,
        lmbda=1.0,
    )
    lane, step = decision_indices(options)
    if lane.numel() == 0:
        return None, 0.0
    valid, agents = options.valid, data.shape[-1]
    env, agent = lane // agents, lane % agents
    last = step + options.length[valid] - 1
    head = TensorDict(
        {
            "action": after.get((keys.MANAGER, keys.OPTION))[env, step, agent],
            "reward": options.reward[valid],
            "discount": options.discount[valid],
            "terminated": options.terminated[valid],
        },
        batch_size=[lane.numel()],
    )
    rows = transitions(
        data[env, step].select(*observed),
        after[env, last].select(*observed),
        {"manager": head},
        lane.numel(),
        extra={"agent": agent},
    )
    return rows, options.length[valid].float().mean().item()
