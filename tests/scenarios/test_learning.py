"""Learning is proved by learning: on CartPole the trained greedy policy's return is far above a random policy's.

Both runs are deterministic with seed 0; the budgets are the smallest that passed with a margin
(flat 20k frames: greedy return 232 with seed 0, 188-412 with seeds 1-3; hierarchical 20k frames:
346 with seed 0, 160-249 with seeds 1-2; a random policy returns about 22).

The other manager modes on the same two workers, greedy return over 8 episodes at 10k / 15k / 20k
frames (seeds 0-2 / 0-4 / 0-3 or 0-4): learned termination 161, 182, 59 / 130, 224, 119, 192, 113 /
119, 378, 63, 226, 75; weighted mode (interval 4, workers learning through the exact mixture
log-probability) at 15k: 244, 235, 66, 355, 91 (seeds 0-4). The test runs seed 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from himo.envs import keys
from himo.scenarios.build import build_env
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.evaluate import evaluate
from himo.scenarios.loader import load
from himo.scenarios.run import train

FRAMES = 20_000
MODE_FRAMES = 15_000
MODES = {
    "weighted": ["manager.mode=weighted", "manager.termination.every=4"],
    "learned": ["manager.termination={kind: learned}"],
}
HIERARCHICAL = [
    "workers={a: {modalities: [vector]}, b: {modalities: [vector]}}",
    "manager.termination.every=4",
]


def random_policy_return() -> float:
    """Mean episode return of uniformly random actions on the scenario's own env."""
    scenario = load("cartpole")
    seed_everything(0)
    env = build_env(scenario)
    rollout = env.rollout(200, break_when_any_done=False)
    ended = rollout.get((keys.NEXT, keys.DONE)).squeeze(-1)
    returns = rollout.get((keys.NEXT, "agent", keys.EPISODE_REWARD))[ended]
    env.close()
    assert returns.numel() >= 20
    return returns.mean().item()


def test_flat_agent_learns_cartpole(tmp_path: Path) -> None:
    baseline = random_policy_return()
    assert 10 < baseline < 40
    scenario = load("cartpole", [f"train.frames={FRAMES}", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    evaluation = evaluate(result.folder, episodes=8)
    greedy = evaluation.groups["agent"].team_return
    assert greedy >= 150 and greedy >= 5 * baseline, evaluation.summary()
    assert evaluation.groups["agent"].option_frequency == {"vector": 1.0}


def test_hierarchical_agent_learns_cartpole(tmp_path: Path) -> None:
    scenario = load("cartpole", [*HIERARCHICAL, f"train.frames={FRAMES}", f"log.dir={tmp_path}"])
    assert list(scenario.workers) == ["a", "b"]
    result = train(scenario, progress=False)
    curve = [value for _, value in result.returns]
    first, last = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    assert first < 40 and last >= 2 * first, result.summary()
    evaluation = evaluate(result.folder, episodes=8)
    group = evaluation.groups["agent"]
    assert group.team_return >= 100, evaluation.summary()
    assert set(group.channel_returns) == {"a", "b"}
    assert sum(group.option_frequency.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("mode", list(MODES))
def test_weighted_mode_and_learned_termination_learn_cartpole(mode: str, tmp_path: Path) -> None:
    scenario = load("cartpole", [*HIERARCHICAL[:1], *MODES[mode], f"train.frames={MODE_FRAMES}", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    curve = [value for _, value in result.returns]
    first, last = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    assert first < 40 and last >= 1.5 * first, result.summary()
    evaluation = evaluate(result.folder, episodes=8)
    group = evaluation.groups["agent"]
    assert group.team_return >= 100, evaluation.summary()
    assert sum(group.option_frequency.values()) == pytest.approx(1.0)
    if mode == "weighted":  # mean greedy weights: both workers take part
        assert all(0.2 < share < 0.8 for share in group.option_frequency.values()), evaluation.summary()


TEAM_FRAMES = 20_000
SMALL_TEAM = [
    "env.kwargs={agents: 2, size: 5, beacons: 1, hazards: 0, max_steps: 16, action_parts: true}",
    "env.num_envs=16",
    "workers={audio: {shared: [direction], reward: {env: 1.0}}}",
    "train.frames_per_batch=1024",
    "algorithm.workers.minibatch_size=256",
    "multi_agent={critic: centralised, agent_id: true}",
]
"""Two agents in a 5x5 room with one beacon, sharing a policy that turns and moves in one composite action.

Greedy team return after 20k frames (32 episodes): 0.782 (seed 0), 0.807 (seed 1); the first batches
(a near-random policy) average 0.24-0.26.
"""


def test_two_agents_with_centralised_critics_learn_the_small_beacon_world(tmp_path: Path) -> None:
    scenario = load("beacon", [*SMALL_TEAM, f"train.frames={TEAM_FRAMES}", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    first = result.returns[0][1]
    evaluation = evaluate(result.folder, episodes=32)
    greedy = evaluation.groups["agents"].team_return
    assert greedy >= 0.6 and greedy >= 2 * first, f"{result.summary()}\n{evaluation.summary()}"


ALGORITHM_RUNS = {
    "a2c": (
        50_000,
        ["train.frames_per_batch=40", "algorithm.workers={name: a2c, optimizer: rmsprop, lr: 7.0e-4, entropy_coef: 0.0}"],
        75,
    ),
    "a3c": (
        80_000,
        [
            "train.frames_per_batch=40",
            "train.actors=2",
            "algorithm.workers={name: a3c, optimizer: rmsprop, lr: 7.0e-4, entropy_coef: 0.0}",
        ],
        75,
    ),
    "trpo": (20_000, ["algorithm.workers.name=trpo"], 200),
    "impala": (40_000, ["train.frames_per_batch=256", "train.actors=2", "algorithm.workers={name: impala, lr: 1.0e-3}"], 50),
    "sac": (16_384, ["train.frames_per_batch=256", "algorithm.workers={name: sac, gradient_steps: 32}"], 150),
}
"""Frames, overrides and the greedy return each algorithm must reach on CartPole (PPO: see above).

Greedy return over 8 episodes, seeds 0 / 1 / 2: a2c at 50k frames 189, 174, 105; a3c (2 processes, asynchronous,
so not reproducible) at 50k 112 (seed 0), and at `edb7399` 317, 374, 181, 176, 409 (seed 0), 138 (seed 1), 500 (seed
2), but once 10.9 in a fresh-clone suite run beside a training (its sampling policy's return had risen to 144); at 80k
500, 432 (seed 0), 282 (seed 1), 467 (seed 2), and with its values evaluated again before each update 207, 500
(seed 0), 232 (seed 1), 9.4, 292, 241 (seed 2); trpo at 20k 417, 395,
447; impala (2 actors) at 30k 247, 222, 189; discrete sac (32 gradient steps per 256-frame batch) at 16k 398, 365,
201. IMPALA's actors run asynchronously, so its runs are not reproducible even with one seed: seed 0 at 30k
frames gave 199, 443, 300, 413, 500, 134 and once 66.5 (a fresh-clone suite run), at 40k 500, 85, 342; hence
40k frames and a threshold of 50 (a random policy returns about 22).
"""


@pytest.mark.parametrize("algorithm", list(ALGORITHM_RUNS))
def test_each_algorithm_learns_cartpole(algorithm: str, tmp_path: Path) -> None:
    frames, overrides, threshold = ALGORITHM_RUNS[algorithm]
    scenario = load("cartpole", [*overrides, f"train.frames={frames}", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    evaluation = evaluate(result.folder, episodes=8)
    greedy = evaluation.groups["agent"].team_return
    assert greedy >= threshold, f"{result.summary()}\n{evaluation.summary()}"
