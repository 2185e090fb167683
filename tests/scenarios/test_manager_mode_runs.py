"""Weighted mode and learned termination from scenario overrides: short runs with finite tags, and the switching cost at work."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from short_runs import SMALL_BEACON
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensordict import TensorDict, TensorDictBase
from torchrl.collectors import Collector

from himo.agents import tags
from himo.hierarchy.learner import GroupLearner
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load
from himo.scenarios.run import train

WEIGHTED = ["manager.mode=weighted"]
LEARNED = ["manager.termination={kind: learned}"]
SHORT = {
    "beacon": SMALL_BEACON,
    "speaker-listener": ["env.num_envs=2", "train.frames=200", "train.frames_per_batch=100", "algorithm.workers.epochs=1"],
}
TWO_WORKER_CARTPOLE = ["workers={a: {modalities: [vector]}, b: {modalities: [vector]}}", "env.num_envs=4", "train.frames_per_batch=256"]


def scalars(folder: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [point.value for point in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("mode", ["weighted", "learned"])
@pytest.mark.parametrize("name", list(SHORT))
def test_a_few_batches_run_with_every_tag_finite(name: str, mode: str, tmp_path: Path) -> None:
    scenario = load(name, [*SHORT[name], *(WEIGHTED if mode == "weighted" else LEARNED), f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert result.frames == scenario.train.frames
    logged = scalars(result.folder)
    for tag, values in logged.items():
        assert len(values) == 2 and all(math.isfinite(value) for value in values), f"{tag}: {values}"
    if name == "beacon":  # three workers: the manager learns
        if mode == "learned":
            expected = {tags.loss("manager", "termination"), tags.loss("manager", "option_value")}
            expected |= {tags.TERMINATION_PROBABILITY, tags.TERMINATION_ADVANTAGE}
            assert expected <= logged.keys(), sorted(logged)
            assert all(0 < value < 1 for value in logged[tags.TERMINATION_PROBABILITY])
        else:
            # Mean weights at the decisions: on the simplex, and none is a sure choice.
            shares = [logged[tags.option_frequency(worker)] for worker in ("image", "text", "audio")]
            assert all(sum(batch) == pytest.approx(1.0, abs=1e-5) for batch in zip(*shares))
            assert all(0 < share < 1 for worker in shares for share in worker)
    else:  # two groups of one worker each: every tag is per group, and the manager has nothing to learn
        shared = {tags.FPS, tags.COLLECT_SECONDS, tags.EPISODE_LENGTH, tags.EPISODE_COUNT}
        assert all(tag.split("/")[0] in ("speaker", "listener") for tag in logged.keys() - shared)
        assert not any("loss/manager" in tag for tag in logged)
        for group in ("speaker", "listener"):
            assert logged[f"{group}/{tags.option_frequency('vector')}"] == pytest.approx([1.0, 1.0])


def mean_termination_probability(learner: GroupLearner, batch: TensorDictBase) -> float:
    """Mean ``beta_o(s_t)`` over the steps of ``batch`` that feed the termination gradient."""
    samples = learner.manager_level.termination_samples(batch)
    with torch.no_grad():
        inputs = learner.policy.evaluate_manager(TensorDict({learner.group: samples}, batch_size=samples.shape))
        return learner.manager_level.termination_loss(inputs)[1][tags.TERMINATION_PROBABILITY]


def test_a_switching_cost_lowers_the_termination_probability_in_one_update() -> None:
    after = {}
    for cost in (0.0, 10.0):
        scenario = load(
            "cartpole",
            [*TWO_WORKER_CARTPOLE, f"manager.termination={{kind: learned, switching_cost: {cost}}}", "algorithm.manager.lr=3e-3"],
        )
        seed_everything(0)
        env = build_env(scenario)
        policy = build_policy(scenario, env)
        (group,) = policy.groups
        collector = Collector(env, policy, frames_per_batch=256, total_frames=256, auto_register_policy_transforms=False)
        batch = next(iter(collector))
        collector.shutdown()
        algorithm = scenario.algorithm
        learner = GroupLearner(policy.groups[group], algorithm.manager, algorithm.workers, scenario.train.gamma, 256)
        before = mean_termination_probability(learner, batch)
        learner.update(batch, 256)
        after[cost] = mean_termination_probability(learner, batch)
    # Same batch, same start: only the cost differs, and it makes ending an option less likely.
    assert after[10.0] < before - 0.02 and after[10.0] < after[0.0] - 0.02, (before, after)


def test_with_a_large_switching_cost_options_get_longer(tmp_path: Path) -> None:
    scenario = load(
        "cartpole",
        [
            *TWO_WORKER_CARTPOLE,
            "manager.termination={kind: learned, switching_cost: 10}",
            "algorithm.manager.lr=3e-3",
            "train.frames=2048",
            f"log.dir={tmp_path}",
        ],
    )
    logged = scalars(train(scenario, progress=False).folder)
    lengths, beta = logged[tags.OPTION_LENGTH], logged[tags.TERMINATION_PROBABILITY]
    assert lengths[0] < 2.5 and sum(lengths[-2:]) / 2 > 3 * lengths[0], lengths
    assert beta[0] > 0.4 and beta[-1] < 0.1, beta
