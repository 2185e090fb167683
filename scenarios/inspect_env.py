"""``himo inspect ENV_ID``: what an environment gives, before a scenario is written for it.

Builds the env as a scenario would (``himo.envs.registry.make_env``, with ``--kwargs`` and ``--python-path``) and
reports each agent group: its agents, every observation entry with its per-agent shape and dtype (the keys a
scenario's ``modalities`` and ``shared`` name), its action space (with the parts' names of a composite action), and
the reward components it reports (what ``workers.<name>.reward`` may mix). Then a random policy plays ``episodes``
episodes, one per env copy, and its mean team return per group (and success rate, where the env reports success)
is a baseline that costs one command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchrl.data import Categorical, Composite, OneHot, TensorSpec
from torchrl.envs import EnvBase

from himo.envs import keys
from himo.envs.registry import make_env, put_on_import_path
from himo.envs.registry import agent_groups
from himo.scenarios.errors import ScenarioError


@dataclass(frozen=True)
class GroupView:
    """One agent group as a scenario sees it."""

    name: str
    agents: int
    observations: dict[str, str]
    action: str
    reward_components: list[str]
    random_return: float


@dataclass(frozen=True)
class EnvView:
    """What ``himo inspect`` reports of an env."""

    env_id: str
    groups: list[GroupView]
    episodes: int
    success_rate: float | None

    def summary(self) -> str:
        """A human-readable report."""
        lines = [f"env {self.env_id}: {len(self.groups)} agent group(s)"]
        for group in self.groups:
            lines.append(f"group {group.name}: {group.agents} agent(s)")
            lines += [f"  observation {key}: {description}" for key, description in group.observations.items()]
            lines.append(f"  action: {group.action}")
            components = ", ".join(group.reward_components) or "none (the team reward only: component env)"
            lines.append(f"  reward components: {components}")
        returns = ", ".join(f"{group.name} {group.random_return:+.3f}" for group in self.groups)
        success = f"; success {100 * self.success_rate:.1f} %" if self.success_rate is not None else ""
        lines.append(f"random policy, {self.episodes} episodes: mean team return {returns}{success}")
        return "\n".join(lines)


def _describe(spec: TensorSpec, agent_dims: int) -> str:
    """``dtype [per-agent shape]`` of a leaf spec, with the batch and agent dims left out."""
    return f"{str(spec.dtype).removeprefix('torch.')} {list(spec.shape[agent_dims:])}"


def _action(spec: TensorSpec, agent_dims: int) -> str:
    """An action spec in words: the parts of a composite, a categorical's choices, a box's shape and bounds."""
    if isinstance(spec, Composite):
        parts = ", ".join(f"{name} ({_action(part, agent_dims)})" for name, part in spec.items())
        return f"composite of {parts}"
    if isinstance(spec, (Categorical, OneHot)):
        return f"categorical, {spec.space.n} choices"
    if hasattr(spec.space, "low"):
        return f"continuous {_describe(spec, agent_dims)}, from {spec.space.low.min().item():g} to {spec.space.high.max().item():g}"
    return _describe(spec, agent_dims)


def inspect_env(
    env_id: str,
    kwargs: Mapping[str, Any] | None = None,
    episodes: int = 20,
    python_path: Sequence[str] = (),
    success_above: float | None = None,
    seed: int = 0,
) -> EnvView:
    """Build ``env_id`` with ``episodes`` copies, describe it, and play one random episode in each copy.

    An episode succeeds where its team return (the mean over groups) is above ``success_above``, as a scenario's
    ``env.success_above`` says; without it, where the env reports success (``"success"``), if it does.
    """
    folders = [str(Path(folder).resolve()) for folder in python_path]
    for folder in folders:
        if not Path(folder).is_dir():
            raise ScenarioError.single(env_id, f"--python-path folder not found: {folder}")
    put_on_import_path(folders)
    try:
        env = make_env(env_id, num_envs=episodes, seed=seed, **dict(kwargs or {}))
    except (ValueError, TypeError, KeyError, ImportError) as error:
        raise ScenarioError.single(env_id, f"cannot build {env_id}: {error}") from None
    groups = agent_groups(env)
    if not groups:
        raise ScenarioError.single(env_id, "the env has no agent group with a reward (see himo.envs.keys)")
    observation_spec, batch_dims = env.full_observation_spec, env.batch_dims
    views = []
    returns, success = _random_episodes(env, groups, success_above)
    for group in groups:
        agent_dims = batch_dims + 1
        observations = {}
        if (group, keys.OBSERVATION) in observation_spec.keys(True):
            for key, spec in observation_spec[group, keys.OBSERVATION].items(True, True):
                name = key if isinstance(key, str) else ".".join(key)
                observations[name] = _describe(spec, agent_dims)
        components_key = (group, keys.REWARD_COMPONENTS)
        components = list(observation_spec[components_key].keys()) if components_key in observation_spec.keys(True) else []
        action = _action(env.full_action_spec[group, keys.ACTION], agent_dims)
        views.append(GroupView(group, int(env.full_reward_spec[group].shape[-1]), observations, action, components, returns[group]))
    env.close()
    return EnvView(env_id, views, episodes, success)


STEP_LIMIT = 100_000
"""Random steps at most, for envs whose episodes never end by themselves."""


def _random_episodes(env: EnvBase, groups: list[str], success_above: float | None) -> tuple[dict[str, float], float | None]:
    """One random episode in every copy: each group's mean team return, and the success rate (see
    :func:`inspect_env`)."""
    copies = env.batch_size.numel()
    totals = {group: torch.zeros(copies) for group in groups}
    finished = torch.zeros(copies, dtype=torch.bool)
    succeeded = torch.zeros(copies, dtype=torch.bool)
    reports_success = keys.SUCCESS in env.full_observation_spec.keys()
    tensordict = env.reset()
    for _ in range(STEP_LIMIT):
        # Copies whose episode ended are reset and go on; only each copy's first episode is counted.
        tensordict, following = env.step_and_maybe_reset(env.rand_action(tensordict))
        after = tensordict.get(keys.NEXT)
        running = ~finished
        for group in groups:
            reward = after.get((group, keys.REWARD)).float().reshape(copies, -1).mean(-1)
            totals[group] += torch.where(running, reward, 0.0)
        done = after.get(keys.DONE).reshape(copies)
        if reports_success:
            succeeded |= running & done & after.get(keys.SUCCESS).reshape(copies)
        finished |= done
        if finished.all():
            break
        tensordict = following
    if success_above is not None:
        team = torch.stack(list(totals.values())).mean(0)
        return {group: total.mean().item() for group, total in totals.items()}, (team > success_above).float().mean().item()
    success = succeeded.float().mean().item() if reports_success else None
    return {group: total.mean().item() for group, total in totals.items()}, success
