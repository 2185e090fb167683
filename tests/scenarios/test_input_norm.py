"""Observation normalisation (``modalities.<m>.normalize``): an mlp encoder standardises its input by running
statistics of the observations learned from, folded in after each update and saved with the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from short_runs import newest_checkpoint

from himo.modalities.vector import InputNorm
from himo.scenarios.errors import ScenarioError
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.loader import load
from himo.scenarios.run import train
from himo.scenarios.run_checkpoints import read_named_checkpoint


def test_inputs_pass_unchanged_until_statistics_then_are_standardised_and_clipped() -> None:
    norm = InputNorm(3)
    features = torch.tensor([[1.0, -2.0, 300.0]])
    assert torch.equal(norm(features), features)
    observations = torch.randn(4000, 3) * torch.tensor([1.0, 10.0, 100.0]) + torch.tensor([5.0, 0.0, -50.0])
    norm.update(observations)
    standardised = norm(observations)
    torch.testing.assert_close(standardised.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(standardised.std(0), torch.ones(3), atol=1e-2, rtol=0)
    assert norm(torch.tensor([[1e6, 0.0, 0.0]]))[0, 0] == InputNorm.CLIP


def test_a_run_folds_every_observation_it_learned_from_into_the_statistics(tmp_path: Path) -> None:
    overrides = ["modalities.vector.normalize=true", "env.num_envs=4", "train.frames=512", "train.frames_per_batch=256"]
    result = train(load("cartpole", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    policy = read_named_checkpoint(newest_checkpoint(result.folder)).state["policy"]
    (count,) = [value for key, value in policy.items() if key.endswith("statistics.count")]
    (mean,) = [value for key, value in policy.items() if key.endswith("statistics.mean")]
    assert float(count) == 512 and mean.shape == (4,)
    assert mean.abs().max() < 1.0  # CartPole starts near 0 in every feature


def test_frozen_workers_keep_their_statistics(tmp_path: Path) -> None:
    overrides = ["modalities.vector.normalize=true", "algorithm.workers.frozen=true", "train.frames=256", "train.frames_per_batch=128"]
    result = train(load("cartpole", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    policy = read_named_checkpoint(newest_checkpoint(result.folder)).state["policy"]
    assert [float(value) for key, value in policy.items() if key.endswith("statistics.count")] == [0.0]


def test_normalising_a_categorical_observation_is_refused() -> None:
    scenario = load("babyai-gotoredball", ["env.num_envs=1", "modalities.direction={key: direction, encoder: mlp, normalize: true}"])
    with pytest.raises(ScenarioError, match="normalize is for real-valued vectors"):
        build_policy(scenario, build_env(scenario))
