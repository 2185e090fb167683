"""Why a trained agent fails on the built-in world, and what its goals carry.

For a run folder of a ``himo/beacon`` scenario, plays the greedy policy of its newest checkpoint on
``--episodes`` fresh episodes (one per env, each env's first episode) and splits them by how they ended:
success (every agent on its beacon), a wrong beacon, lava, or the step limit; for the episodes that ran to the
step limit, it counts the agents that arrived or not by the worker each acted with most. With goals, it also
measures how much the goals tell the missions apart: the variance of the per-mission mean goal over the
mean within-mission variance, on the steps of a sampled rollout (0: the goal ignores the mission).

    python benchmarks/beacon_diagnosis.py runs/beacon-20261129-000000 --episodes 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType

from himo.envs import keys
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load
from himo.scenarios.run_checkpoints import CHECKPOINT_FOLDER, read_newest

SEED = 12345
GROUP = "agents"


def endings(folder: Path, episodes: int) -> tuple[dict[str, float], dict[str, int]]:
    """Shares of the greedy policy's episodes by how they ended; and, over the agents of the episodes that ran to
    the step limit, how many arrived or not, by the worker each acted with most (``"<worker> arrived"``, ...)."""
    scenario = load(folder / "scenario.yaml")
    seed_everything(SEED)
    env = build_env(scenario, num_envs=episodes, seed=SEED)
    policy = build_policy(scenario, env)
    policy.load_state_dict(read_newest(folder / CHECKPOINT_FOLDER).state["policy"])
    collector = Collector(
        env, policy, frames_per_batch=episodes * 64, total_frames=-1,
        exploration_type=ExplorationType.DETERMINISTIC, auto_register_policy_transforms=False,
    )
    workers, max_steps = list(scenario.workers), scenario.env.kwargs["max_steps"]
    finished, ends = torch.zeros(episodes, dtype=torch.bool), []
    at_limit = torch.zeros(episodes, dtype=torch.bool)
    steps_with = torch.zeros(episodes, env.config.agents, len(workers))  # each agent's steps with each worker
    arrived = torch.zeros(episodes, env.config.agents, dtype=torch.bool)
    for batch in collector:
        done = batch.get((keys.NEXT, keys.DONE)).squeeze(-1)
        first = ((done.cumsum(1) - done.long()) == 0) & ~finished[:, None]  # each env's first episode
        ends.append(batch.get(keys.NEXT)[done & first])
        at_limit |= (done & first & (batch.get((keys.NEXT, keys.STEP_COUNT)).squeeze(-1) >= max_steps)).any(1)
        option = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.OPTION))
        steps_with += (torch.nn.functional.one_hot(option, len(workers)) * first[..., None, None]).sum(1)
        reached = batch.get((keys.NEXT, GROUP, "reward_components", "instruction")).squeeze(-1) > 0
        arrived |= (reached & first[..., None]).any(1)
        finished |= done.any(1)
        if finished.all():
            break
    collector.shutdown()
    last = torch.cat(ends)
    components = last.get((GROUP, "reward_components"))
    shares = {
        "success": last.get(keys.SUCCESS).float().mean().item(),
        "wrong beacon": (components.get("instruction") <= -1).squeeze(-1).any(-1).float().mean().item(),
        "lava": (components.get("explore") <= -1).squeeze(-1).any(-1).float().mean().item(),
        "step limit": (last.get(keys.STEP_COUNT).squeeze(-1) >= max_steps).float().mean().item(),
    }
    main_worker = steps_with.argmax(-1)[at_limit]
    reached = arrived[at_limit]
    left_behind = {
        f"{name} {outcome}": int(((main_worker == index) & (reached == (outcome == "arrived"))).sum())
        for index, name in enumerate(workers)
        for outcome in ("arrived", "not arrived")
    }
    return shares, left_behind


def mission_separation(folder: Path) -> dict[str, float] | None:
    """Per worker: between-mission variance of its goal over its mean within-mission variance (None without goals)."""
    scenario = load(folder / "scenario.yaml")
    if scenario.manager.goal is None:
        return None
    seed_everything(SEED)
    env = build_env(scenario, num_envs=32, seed=SEED)
    policy = build_policy(scenario, env)
    policy.load_state_dict(read_newest(folder / CHECKPOINT_FOLDER).state["policy"])
    group = policy.groups[GROUP]
    with torch.no_grad():
        steps = env.rollout(32, policy, break_when_any_done=False).get(GROUP).reshape(-1)
        goals = group.goals(group.encode(TensorDict({GROUP: steps.select(keys.OBSERVATION)}, batch_size=steps.shape[:1])))
    # One row per agent and step: goals [rows, workers, size], missions [rows, length].
    _, mission = torch.unique(steps.get((keys.OBSERVATION, "mission", "input_ids")), dim=0, return_inverse=True)
    separation = {}
    for index, name in enumerate(group.worker_names):
        worker = goals[:, index]
        means = torch.stack([worker[mission == value].mean(0) for value in mission.unique()])
        within = torch.stack([worker[mission == value].var(0, unbiased=False).sum() for value in mission.unique()]).mean()
        separation[name] = (means.var(0, unbiased=False).sum() / within).item()
    return separation


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of a himo/beacon scenario")
    parser.add_argument("--episodes", type=int, default=200)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    shares, left_behind = endings(arguments.run, arguments.episodes)
    print(", ".join(f"{name} {share:.1%}" for name, share in shares.items()))
    print("agents of the episodes at the step limit, by the worker they acted with most: "
          + ", ".join(f"{name} {count}" for name, count in left_behind.items()))
    separation = mission_separation(arguments.run)
    if separation is not None:
        print("goals' mission separation: " + ", ".join(f"{name} {value:.2f}" for name, value in separation.items()))


if __name__ == "__main__":
    main()
