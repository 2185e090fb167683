"""Continuous actions through scenario files: every manager mode and algorithm runs, and a flat agent learns Pendulum."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchrl.collectors import Collector

from himo.agents.registry import ALGORITHMS
from himo.envs import keys
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.evaluate import evaluate
from himo.scenarios.loader import load
from himo.scenarios.run import train
from short_runs import both_levels, level

TWO_WORKERS = ["workers={a: {modalities: [vector]}, b: {modalities: [vector]}}", "env.num_envs=4"]
SHORT = ["train.frames=512", "train.frames_per_batch=256"]
MODES = {
    "select": ["manager.termination.every=4"],
    "weighted": ["manager.mode=weighted", "manager.termination.every=4"],
    "learned": ["manager.termination={kind: learned}"],
}


def scalars(folder: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [point.value for point in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


RUNS = [("weighted", algorithm) for algorithm in ALGORITHMS] + [("select", "ppo"), ("learned", "ppo"), ("select", "sac")]
"""Every algorithm on the weighted product of Gaussians (the composition that differs from the discrete one);
the other modes with PPO (their continuous path is the active worker's own Gaussian), and SAC in select mode at both
levels (a sac manager chooses one worker; in weighted mode its workers run under a ppo manager)."""


@pytest.mark.parametrize(("mode", "algorithm"), RUNS)
def test_two_continuous_workers_train_in_every_mode_with_every_algorithm(mode: str, algorithm: str, tmp_path: Path) -> None:
    levels = both_levels(algorithm)
    if algorithm == "sac" and mode == "weighted":
        levels = [level("workers", "sac"), level("manager", "ppo")]
    scenario = load("pendulum", [*TWO_WORKERS, *MODES[mode], *levels, *SHORT, f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert result.frames == 512
    for tag, values in scalars(result.folder).items():
        assert all(math.isfinite(value) for value in values), f"{tag}: {values}"
    evaluation = evaluate(result.folder, episodes=2)
    assert math.isfinite(evaluation.groups["agent"].team_return)


PENDULUM_FRAMES = 100_000
"""Flat PPO on Pendulum (the ``pendulum`` scenario): the mean return of the first batches is about -1220. With the
suite's settings (one thread, AVX2 kernels), at `edb7399`: at 50k frames the last batches averaged -788, -760 and
-977 (seeds 0, 1, 2; greedy -682, -837, -960), too close to the bounds below for a test; at 100k -315, -237 and
-214 (greedy -213, -232, -228). (Before `edb7399` the flat agent also built a manager network, which changed the
workers' initial weights: seed 0 then reached -412 at 50k, seed 2 -992.)"""


def test_a_flat_agent_learns_pendulum_with_a_continuous_action(tmp_path: Path) -> None:
    result = train(load("pendulum", [f"train.frames={PENDULUM_FRAMES}", f"log.dir={tmp_path}"]), progress=False)
    curve = [value for _, value in result.returns]
    first, last = sum(curve[:2]) / 2, sum(curve[-2:]) / 2
    greedy = evaluate(result.folder, episodes=8).groups["agent"].team_return
    assert first < -1000 and last >= first + 500 and greedy >= -600, (result.summary(), greedy)


@pytest.mark.parametrize("scenario_name", ["pendulum", "cartpole"])
def test_in_weighted_mode_a_worker_learns_through_the_exact_combined_log_probability(scenario_name: str) -> None:
    seed_everything(0)
    scenario = load(scenario_name, [*TWO_WORKERS, *MODES["weighted"]])
    env = build_env(scenario)
    policy = build_policy(scenario, env).groups["agent"]
    collector = Collector(env, policy, frames_per_batch=64, total_frames=64, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    inputs = batch.get("agent").select(keys.OBSERVATION, keys.ACTION).reshape(-1, 1)
    after = batch.get((keys.NEXT, "agent")).reshape(-1, 1)
    inputs.set((keys.MANAGER, keys.WEIGHTS), after.get((keys.MANAGER, keys.WEIGHTS)))
    inputs.set((keys.MANAGER, keys.OPTION), after.get((keys.MANAGER, keys.OPTION)))
    evaluated = policy.evaluate_workers(TensorDict({"agent": inputs}, batch_size=inputs.shape[:1]))
    outputs = policy.worker_outputs(evaluated)
    for name in ("a", "b"):
        # The acting policy's exact log-probability, as stored when the batch was collected.
        assert torch.allclose(outputs[name].log_prob, batch.get(("agent", keys.LOG_PROB)).reshape(-1, 1), atol=1e-4)
        own = list(policy.workers[name].parameters())
        other = list(policy.workers["b" if name == "a" else "a"].parameters())
        gradients = torch.autograd.grad(outputs[name].log_prob.sum(), own + other, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in gradients[: len(own)])
        assert all(g is None or g.abs().sum() == 0 for g in gradients[len(own) :]), "another worker's outputs are constants"
