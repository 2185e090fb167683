"""Ray: collection in Ray actors (``train.backend: ray``) and tuning trials as Ray tasks, on a local Ray runtime
with 2 CPUs and no dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import ray
import torch

from himo.envs import keys
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.collection import make_collector
from himo.scenarios.errors import RunError, ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import resume, train
from himo.scenarios.tune import tune

RAY = ["train.backend=ray", "train.collectors=2"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ppo_collects_from_every_actor_and_pushes_the_weights_after_an_update() -> None:
    scenario = load("cartpole", [*RAY, "train.frames_per_batch=256"])
    env = build_env(scenario, seed=0)
    policy = build_policy(scenario, env)
    collector = make_collector(scenario, env, policy, frames=0)
    try:
        batches = iter(collector)
        batch = next(batches)
        # Two actors of 8 envs each, 16 steps: one batch of 16 envs, as the local backend's.
        assert batch.batch_size == torch.Size([16, 16])
        first_states = batch.get(("agent", keys.OBSERVATION, "state"))[:, 0]
        assert not torch.allclose(first_states[:8], first_states[8:])  # the actors' envs are seeded apart
        with torch.no_grad():
            for parameter in policy.parameters():
                parameter.add_(0.5)
        collector.update_policy_weights_()
        remotes = collector.get_distant_attr("policy")
        assert len(remotes) == 2
        for remote in remotes:
            copy = remote.state_dict()
            assert list(copy) == list(policy.state_dict())
            for name, local in policy.state_dict().items():
                torch.testing.assert_close(copy[name], local, msg=name)
    finally:
        collector.shutdown()


def test_cartpole_trains_on_ray_and_resumes(tmp_path: Path) -> None:
    scenario = load("cartpole", [*RAY, "train.frames=1024", "train.frames_per_batch=512", f"log.dir={tmp_path}"])
    result = train(scenario, tmp_path / "run", progress=False)
    assert result.frames == 1024 and result.returns
    assert sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir())[-1] == "frames-0000001024.pt"
    run_file = tmp_path / "run" / "scenario.yaml"
    run_file.write_text(run_file.read_text().replace("frames: 1024", "frames: 1536"))
    resumed = resume(tmp_path / "run", progress=False)
    assert resumed.frames == 1536


def test_the_built_in_world_trains_on_ray(tmp_path: Path) -> None:
    overrides = [*RAY, "train.frames=512", "train.frames_per_batch=256", "env.num_envs=4", "env.kwargs.max_steps=8",
                 "algorithm.workers.epochs=1", "algorithm.manager.epochs=1", f"log.dir={tmp_path}"]
    result = train(load("beacon", overrides), tmp_path / "run", progress=False)
    assert result.frames == 512


@pytest.mark.parametrize("algorithm", ["a2c", "trpo", "sac"])
def test_the_other_algorithms_that_collect_in_the_training_process_run_on_ray(tmp_path: Path, algorithm: str) -> None:
    overrides = [*RAY, f"algorithm.workers={{name: {algorithm}}}", "train.frames=1024", "train.frames_per_batch=256",
                 f"log.dir={tmp_path}"]
    result = train(load("cartpole", overrides), tmp_path / "run", progress=False)
    assert result.frames == 1024


def test_impala_actors_run_on_ray(tmp_path: Path) -> None:
    overrides = [*RAY, "algorithm.workers={name: impala}", "train.frames=1536", "train.frames_per_batch=256",
                 f"log.dir={tmp_path}"]
    result = train(load("cartpole", overrides), tmp_path / "run", progress=False)
    assert result.frames == 1536 and result.returns


def test_more_collectors_than_the_cluster_has_cpus_is_an_error(tmp_path: Path) -> None:
    scenario = load("cartpole", ["train.backend=ray", "train.collectors=4", f"log.dir={tmp_path}"])
    with pytest.raises(RunError, match="train.collectors is 4 but the Ray cluster has 2 CPUs"):
        train(scenario, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.collectors=2"], "train.collectors is for backend ray"),
        (["train.ray_address=auto"], "train.ray_address is for backend ray"),
        ([*RAY, "algorithm.workers={name: impala}", "train.actors=2"], "train.collectors sets how many actors collect"),
        ([*RAY, "algorithm.workers={name: a3c}"], "a3c's actor-learners compute gradients next to their envs"),
        ([*RAY, "train.frames_per_batch=1001"], r"make train.frames_per_batch \(1001\) a multiple of train.collectors"),
    ],
)
def test_ray_settings_that_do_not_fit_are_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load("cartpole", overrides)


def test_tuning_trials_run_as_ray_tasks(tmp_path: Path) -> None:
    overrides = ["train.frames=1024", "train.frames_per_batch=512", "tune.report_every=512", "tune.pruner={kind: none}"]
    summary = tune("cartpole", trials=2, output=tmp_path, overrides=overrides, jobs=2, backend="ray")
    assert [trial.state for trial in summary.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert sorted(path.name for path in tmp_path.glob("trial-*")) == ["trial-0000", "trial-0001"]
    assert (tmp_path / "best.yaml").is_file()
