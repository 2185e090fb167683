"""Evaluate a run: its greedy (or sampling) policy on fresh episodes, through the same collector path as training."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torchrl.collectors import Collector
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType

from himo.envs import keys
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env, build_policy, side_env
from himo.scenarios.checkpoint import CheckpointError, seed_everything
from himo.scenarios.loader import load
from himo.scenarios.metrics import episode_successes
from himo.scenarios.run import SCENARIO_FILE
from himo.scenarios.run_checkpoints import CHECKPOINT_FOLDER, read_newest
from himo.scenarios.schema import Scenario

EVALUATION_SEED_OFFSET = 1_000_003
"""Evaluation envs are seeded apart from training envs so they see other episodes."""


@dataclass
class GroupEvaluation:
    """Greedy-policy results of one agent group."""

    team_return: float
    channel_returns: dict[str, float] = field(default_factory=dict)
    option_frequency: dict[str, float] = field(default_factory=dict)
    """Mean weight of each worker at the manager's decisions (the share of decisions in select mode)."""


@dataclass
class Evaluation:
    """What ``himo eval`` prints."""

    episodes: int
    episode_length: float
    groups: dict[str, GroupEvaluation]
    success_rate: float | None = None
    """Share of the episodes that succeeded: a team return above ``env.success_above``, else the env's own
    success signal (None without either)."""
    sampled: bool = False
    """Whether the policy sampled its actions and choices (as in training) rather than taking the most likely."""

    @property
    def team_return(self) -> float:
        """The mean of every group's team return."""
        return sum(result.team_return for result in self.groups.values()) / len(self.groups)

    def summary(self) -> str:
        """A human-readable report."""
        policy = "sampling" if self.sampled else "greedy"
        lines = [f"{self.episodes} episodes with the {policy} policy, mean length {self.episode_length:.1f}"]
        if self.success_rate is not None:
            lines.append(f"  success rate {self.success_rate:.1%}")
        for group, result in self.groups.items():
            lines.append(f"  {group}: team return {result.team_return:+.3f}")
            for worker, value in result.channel_returns.items():
                lines.append(f"    channel {worker}: return {value:+.3f}")
            chosen = ", ".join(f"{worker} {share:.0%}" for worker, share in result.option_frequency.items())
            lines.append(f"    manager chose: {chosen}")
        return "\n".join(lines)


def evaluate(folder: Path, episodes: int, sample: bool = False) -> Evaluation:
    """Run the greedy policy of the run in ``folder`` for one episode in each of ``episodes`` envs (with ``sample``,
    the policy samples its actions and the manager its choices, as in training).

    The policy is that of the run's newest readable checkpoint (a newer one that cannot be read is
    skipped with a warning on stderr). Every env's first episode counts, however long it is, so short
    episodes are not favoured.
    """
    scenario = load(folder / SCENARIO_FILE)
    found = read_newest(folder / CHECKPOINT_FOLDER)
    for line in found.warnings():
        print(line, file=sys.stderr)
    checkpoint = found.state
    seed_everything(scenario.train.seed + EVALUATION_SEED_OFFSET)
    env = build_env(scenario, num_envs=episodes, seed=scenario.train.seed + EVALUATION_SEED_OFFSET)
    policy = build_policy(scenario, env)
    try:
        policy.load_state_dict(checkpoint["policy"])
    except (RuntimeError, KeyError) as error:
        # e.g. a run saved by an older himo whose policy is built differently now
        raise CheckpointError(f"{found.path}: its policy does not fit {folder / SCENARIO_FILE} as built now: {error}") from None
    torch.set_num_threads(scenario.train.threads)
    return run_episodes(scenario, env, policy, sample)


def evaluate_live(scenario: Scenario, policy: HierarchicalPolicy, episodes: int, sample: bool = False) -> Evaluation:
    """A training run's policy as it is now, on ``episodes`` fresh episodes (the same ones at every call); the
    random generators of the run are left as they were, so evaluating changes nothing of its training."""
    with side_env(scenario, episodes, scenario.train.seed + EVALUATION_SEED_OFFSET) as env:
        return run_episodes(scenario, env, policy, sample)


def run_episodes(scenario: Scenario, env: EnvBase, policy: HierarchicalPolicy, sample: bool) -> Evaluation:
    """One episode of ``policy`` in each copy of ``env`` (greedy, or with ``sample`` as in training)."""
    episodes = env.batch_size.numel()
    collector = Collector(
        env,
        policy,
        frames_per_batch=episodes * 64,
        total_frames=-1,
        device=env.device,
        exploration_type=ExplorationType.RANDOM if sample else ExplorationType.DETERMINISTIC,
        auto_register_policy_transforms=False,
    )
    groups = list(policy.groups)
    finished = torch.zeros(episodes, dtype=torch.bool, device=env.device)
    ends, decisions = [], {group: [] for group in groups}
    for batch in collector:
        done = batch.get((keys.NEXT, keys.DONE)).squeeze(-1)
        ends_before = done.cumsum(1) - done.long()
        first_episode = (ends_before == 0) & ~finished[:, None]
        first_end = done & first_episode
        ends.append(batch.get(keys.NEXT)[first_end].select(keys.STEP_COUNT, keys.SUCCESS, *groups, strict=False))
        for group in groups:
            decision = batch.get((group, keys.MANAGER, keys.DECISION)) & first_episode[..., None]
            decisions[group].append(batch.get((keys.NEXT, group, keys.MANAGER, keys.WEIGHTS))[decision])
        finished |= done.any(1)
        if finished.all():
            break
    collector.shutdown()
    results = torch.cat(ends)
    groups_evaluation = {}
    for group in groups:
        chosen = torch.cat(decisions[group])
        groups_evaluation[group] = GroupEvaluation(
            team_return=results.get((group, keys.EPISODE_REWARD)).mean().item(),
            channel_returns={
                worker: results.get((group, keys.EPISODE_CHANNEL_RETURNS, worker)).mean().item()
                for worker in scenario.workers
            },
            option_frequency={worker: chosen[:, index].mean().item() for index, worker in enumerate(scenario.workers)},
        )
    successes = episode_successes(results, groups, scenario.env.success_above)
    success = None if successes is None else successes.float().mean().item()
    length = results.get(keys.STEP_COUNT).float().mean().item()
    return Evaluation(results.shape[0], length, groups_evaluation, success, sample)
