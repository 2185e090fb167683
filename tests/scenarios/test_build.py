"""Building a scenario's environment: every built-in scenario runs, bad references get clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.registry import agent_groups
from himo.scenarios.build import build_env
from himo.scenarios.catalog import DEFAULT_SCENARIO, builtin_scenarios
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.rollout import random_rollout
from himo.scenarios.run import train

HIMO = str(Path(sys.executable).parent / "himo")


@pytest.mark.parametrize("name", list(builtin_scenarios()))
def test_every_builtin_scenario_builds_and_rolls_out(name: str) -> None:
    scenario = load(name, ["env.num_envs=2"])
    env = build_env(scenario)
    check_env_specs(env)
    summary = random_rollout(scenario, steps=20)
    assert summary.frames == 40
    for group in agent_groups(env):
        assert set(summary.groups[group].channels) == set(scenario.workers)
        assert all(torch.isfinite(torch.tensor(value)) for value in summary.groups[group].channels.values())
    env.close()


@pytest.mark.parametrize("name", list(builtin_scenarios()))
def test_every_builtin_scenario_trains_two_small_batches(name: str, tmp_path: Path) -> None:
    small = ["env.num_envs=2", "train.frames=128", "train.frames_per_batch=64", f"log.dir={tmp_path}"]
    result = train(load(name, small), progress=False)
    assert result.frames == 128
    assert (result.folder / "checkpoints").is_dir()


def test_reward_function_declared_in_scenario_feeds_a_channel(tmp_path: Path) -> None:
    path = tmp_path / "costly.yaml"
    path.write_text(
        "extends: cartpole\nname: costly\n"
        "rewards: {cost: {function: step_cost, value: 0.5}}\n"
        "workers: {vector: {reward: {env: 1.0, cost: 2.0}}}\n"
    )
    env = build_env(load(path, ["env.num_envs=2"]))
    rollout = env.rollout(5)
    channel = rollout.get((keys.NEXT, "agent", keys.REWARD_CHANNELS, "vector"))
    team = rollout.get((keys.NEXT, "agent", keys.REWARD))
    torch.testing.assert_close(channel, team - 1.0)


def test_unknown_reward_function_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("extends: cartpole\nname: typo\nrewards:\n  bonus: {function: novelty_}\n")
    with pytest.raises(ScenarioError, match=r"typo.yaml:4: rewards.bonus.function: .*did you mean 'novelty'"):
        load(path)


def test_missing_observation_key_names_the_modality() -> None:
    scenario = load(DEFAULT_SCENARIO, ["env.num_envs=1", "modalities.image.key=veiw"])
    with pytest.raises(ScenarioError, match=r"modalities.image.key: .*no observation 'veiw'.*did you mean 'view'"):
        build_env(scenario)


def test_unknown_reward_component_lists_the_available_ones() -> None:
    scenario = load(DEFAULT_SCENARIO, ["env.num_envs=1", "workers.image.reward={explor: 1.0}"])
    with pytest.raises(ScenarioError, match=r"workers: .*unknown components \['explor'\].*'explore'"):
        build_env(scenario)


def test_bad_env_kwargs_name_the_env() -> None:
    scenario = load(DEFAULT_SCENARIO, ["env.num_envs=1", "env.kwargs.sizes=9"])
    with pytest.raises(ScenarioError, match=r"env: cannot build himo/beacon: .*sizes"):
        build_env(scenario)


def test_rollout_command_prints_every_reward_channel() -> None:
    result = subprocess.run(
        [HIMO, "rollout", DEFAULT_SCENARIO, "--steps", "10", "--set", "env.num_envs=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "20 frames with random actions" in result.stdout
    for worker in load(DEFAULT_SCENARIO).workers:
        assert f"reward channel {worker}:" in result.stdout
