"""A random-action rollout of a scenario's environment through a TorchRL collector (a smoke run)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torchrl.collectors import Collector

from himo.envs import keys
from himo.envs.registry import agent_groups
from himo.scenarios.build import build_env
from himo.scenarios.schema import Scenario


@dataclass
class GroupSummary:
    """Mean per-step rewards of one agent group."""

    team_reward: float
    channels: dict[str, float] = field(default_factory=dict)


@dataclass
class RolloutSummary:
    """What a random rollout saw."""

    scenario: str
    env_id: str
    frames: int
    episodes: int
    seconds: float
    groups: dict[str, GroupSummary]

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [
            f"scenario {self.scenario} ({self.env_id}): {self.frames} frames with random actions, "
            f"{self.episodes} episodes ended, {self.frames / self.seconds:.0f} frames/s",
        ]
        for group, summary in self.groups.items():
            lines.append(f"  {group}: mean team reward per step {summary.team_reward:+.4f}")
            for worker, value in summary.channels.items():
                lines.append(f"    reward channel {worker}: {value:+.4f}")
        return "\n".join(lines)


def random_rollout(scenario: Scenario, steps: int) -> RolloutSummary:
    """Step the scenario's environment ``steps`` times with random actions through a ``Collector``."""
    torch.manual_seed(scenario.train.seed)
    env = build_env(scenario)
    torch.set_num_threads(scenario.train.threads)
    frames = steps * env.batch_size.numel()
    collector = Collector(
        env, policy=None, frames_per_batch=frames, total_frames=frames, auto_register_policy_transforms=False
    )
    start = time.perf_counter()
    batch = next(iter(collector))
    seconds = time.perf_counter() - start
    collector.shutdown()
    groups = {}
    for group in agent_groups(env):
        channels = batch.get((keys.NEXT, group, keys.REWARD_CHANNELS), None)
        groups[group] = GroupSummary(
            team_reward=batch.get((keys.NEXT, group, keys.REWARD)).float().mean().item(),
            channels={name: channels.get(name).float().mean().item() for name in channels.keys()} if channels is not None else {},
        )
    episodes = int(batch.get((keys.NEXT, keys.DONE)).sum().item())
    env.close()
    return RolloutSummary(scenario.name, scenario.env.id, batch.numel(), episodes, seconds, groups)
