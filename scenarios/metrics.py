"""Per-batch metrics of a collected batch, keyed by their TensorBoard tags (``himo.agents.tags``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

from himo.envs import keys
from himo.agents import tags
from himo.hierarchy.state import IS_INIT


def team_returns(ends: TensorDictBase, groups: Sequence[str]) -> torch.Tensor:
    """Env return of each episode in ``ends`` (the ``next`` rows of its last steps, ``[episodes]``): the mean over
    every group's agents."""
    per_group = [ends.get((group, keys.EPISODE_REWARD)).flatten(1).float().mean(1) for group in groups]
    return torch.stack(per_group).mean(0)


def episode_successes(ends: TensorDictBase, groups: Sequence[str], success_above: float | None) -> torch.Tensor | None:
    """Whether each episode in ``ends`` (the ``next`` rows of its last steps) succeeded: a team return above
    ``success_above`` where the scenario sets it, else the env's own ``success`` where it reports one; None when
    there is neither."""
    if success_above is not None:
        return team_returns(ends, groups) > success_above
    if keys.SUCCESS in ends.keys():
        return ends.get(keys.SUCCESS).reshape(-1)
    return None


def batch_metrics(
    batch: TensorDictBase, groups: Sequence[str], workers: Sequence[str], success_above: float | None = None
) -> dict[str, float]:
    """Rewards per step, returns and lengths of the episodes that ended, and the manager's choices.

    A worker's option frequency is its mean weight at the manager's decisions: the share of the
    decisions that chose it in select mode, its mean mixture weight in weighted mode. With
    ``success_above``, the share of the ended episodes whose team return is above it.
    """
    metrics: dict[str, float] = {}
    ended = batch.get((keys.NEXT, keys.DONE)).squeeze(-1)
    metrics[tags.EPISODE_COUNT] = float(ended.sum().item())
    if ended.any():
        metrics[tags.EPISODE_LENGTH] = batch.get((keys.NEXT, keys.STEP_COUNT))[ended].float().mean().item()
        success = episode_successes(batch.get(keys.NEXT)[ended], groups, success_above)
        if success is not None:
            metrics[tags.EPISODE_SUCCESS_RATE] = success.float().mean().item()
    for group in groups:
        after = batch.get((keys.NEXT, group))

        def tag(name: str) -> str:
            return tags.in_group(group, name, len(groups))

        metrics[tag(tags.REWARD_ENV)] = after.get(keys.REWARD).float().mean().item()
        for worker in workers:
            metrics[tag(tags.reward_channel(worker))] = batch.get((keys.NEXT, *keys.reward_channel(group, worker))).float().mean().item()
        if ended.any():
            metrics[tag(tags.EPISODE_RETURN)] = after.get(keys.EPISODE_REWARD)[ended].float().mean().item()
            for worker in workers:
                returns = after.get((keys.EPISODE_CHANNEL_RETURNS, worker))[ended]
                metrics[tag(tags.episode_channel_return(worker))] = returns.float().mean().item()
        # Weights are the option's one-hot in select mode: their mean is the share of decisions.
        decision = batch.get((group, keys.MANAGER, keys.DECISION))
        chosen = after.get((keys.MANAGER, keys.WEIGHTS))[decision]
        for index, worker in enumerate(workers):
            share = chosen[:, index].mean().item() if chosen.numel() else 0.0
            metrics[tag(tags.option_frequency(worker))] = share
    return metrics


def option_histograms(batch: TensorDictBase, groups: Sequence[str], workers: int) -> dict[str, torch.Tensor]:
    """Values for TensorBoard histograms, by tag: the worker chosen at each of the batch's decisions, and the length
    (in its agent's steps) of each option a decision ended (options cut by an episode's end or the batch's are not
    counted). Empty with a single worker: nothing is chosen."""
    if workers < 2:
        return {}
    found = {}
    for group in groups:
        decision = batch.get((group, keys.MANAGER, keys.DECISION))
        is_init = batch.get(IS_INIT).expand_as(decision)
        found[tags.in_group(group, tags.OPTIONS_CHOSEN, len(groups))] = batch.get((keys.NEXT, group, keys.MANAGER, keys.OPTION))[decision]
        # At a decision that ends an option, the option state's age is how many steps that option ran.
        ended = decision & ~is_init
        found[tags.in_group(group, tags.OPTION_LENGTHS, len(groups))] = batch.get((group, keys.MANAGER, keys.AGE))[ended]
    return {tag: values for tag, values in found.items() if values.numel()}
