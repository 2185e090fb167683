"""What both levels' learning shares: minibatch sizes, the level algorithm, value normalisers, and the sequences a
level with memory re-runs (``himo.hierarchy.learner`` for the workers, ``himo.hierarchy.manager_learner`` for the
manager)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from himo.agents import tags
from himo.agents.base import LevelAlgorithm, LevelModel
from himo.agents.registry import ALGORITHMS
from himo.hierarchy.policy import GroupPolicy
from himo.hierarchy.state import IS_INIT


def of_agent(tensor: torch.Tensor, agent: torch.Tensor) -> torch.Tensor:
    """Rows ``[n, agents, ...]`` to the given agent's entry of each row, ``[n, ...]``."""
    return tensor[torch.arange(tensor.shape[0]), agent]


def rows_per_minibatch(settings: Any, rows: int, samples_per_row: int) -> int:
    """Rows per minibatch for the level's ``minibatch_size`` in samples (``None``: every row), at least one row."""
    samples = settings.minibatch_size or rows * samples_per_row
    return max(1, samples // samples_per_row)


def build_algorithm(settings: Any, model: LevelModel, total_frames: int, name: str) -> LevelAlgorithm:
    """The level algorithm ``settings.name`` over the level's model."""
    return ALGORITHMS[settings.name].algorithm(settings, model, total_frames, name)


def update_value_norms(policy: GroupPolicy, level: str, targets: dict[str, TensorDictBase], settings: Any) -> None:
    """Fold each head's returns into its value normaliser before the level learns from them (not when frozen)."""
    if settings.frozen:
        return
    for head, norm in policy.value_norms(level).items():
        norm.update(targets[head].get("returns").reshape(-1, 1))


def sequence_length(chunk: int | None, steps: int) -> int:
    """The length of the sequences a level with memory re-runs, for a batch of ``steps`` steps per env."""
    if chunk is not None and steps % chunk:
        raise ValueError(f"a memory chunk of {chunk} steps does not divide the batch's {steps} steps per env")
    return chunk or steps


def per_agent(is_init: torch.Tensor, agents: int) -> torch.Tensor:
    """The root ``is_init`` ``[..., 1]`` for each agent, ``[..., agents, 1]``, to keep beside the group's samples."""
    return is_init.unsqueeze(-2).expand(*is_init.shape[:-1], agents, 1)


def as_sequences(inputs: TensorDictBase, group: str) -> TensorDictBase:
    """Rows ``[runs, time]`` of the group's samples, with the root ``is_init`` the recurrent cores read."""
    return inputs.set(IS_INIT, inputs.get((group, IS_INIT))[..., 0, :])


def continuing(tensordict: TensorDictBase) -> TensorDictBase:
    """``tensordict`` (successor states) marked as no episode's first step: recurrent cores go on from their state."""
    return tensordict.set(IS_INIT, torch.zeros(*tensordict.batch_size, 1, dtype=torch.bool, device=tensordict.device))


def importance_metrics(behaviour: torch.Tensor, target: torch.Tensor, rho_clip: float, level: str) -> dict[str, float]:
    """Mean importance weight ``pi / mu`` of the taken actions and the share clipped at ``rho_clip``."""
    rho = (target - behaviour).exp()
    return {
        tags.level_metric("importance_weight", level): rho.mean().item(),
        tags.level_metric("importance_clipped", level): (rho > rho_clip).float().mean().item(),
    }
