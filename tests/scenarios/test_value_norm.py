"""Value normalisation (``algorithm.<level>.value_norm``): critics regress on standardised returns and give values in
return units, at both levels, with every on-policy algorithm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from himo.agents.base import HeadOutputs
from himo.agents.declaration import Targets
from himo.agents.heads import ActorCriticHeads, CriticView
from himo.agents.registry import ALGORITHMS
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train
from himo.scenarios.run_checkpoints import read_named_checkpoint
from short_runs import newest_checkpoint

ON_POLICY = [name for name, declaration in ALGORITHMS.items() if declaration.targets is not Targets.REPLAY]
TWO_WORKERS = ["workers={a: {modalities: [vector]}, b: {modalities: [vector]}}", "env.num_envs=4", "train.frames_per_batch=256"]


@pytest.mark.parametrize("kind", ["popart", "running"])
def test_the_critic_regresses_on_standardised_returns_and_reads_back_values(kind: str) -> None:
    seed_everything(0)
    heads = ActorCriticHeads(6, 3, (16,), critic=CriticView(value_norm=kind))
    returns = torch.randn(256) * 40.0 + 100.0
    heads.value_norm.update(returns.reshape(-1, 1))
    features = torch.randn(256, 6)
    _, value = heads(features)
    raw = heads.critic(features)
    torch.testing.assert_close(value, heads.value_norm.denormalize(raw))
    output = HeadOutputs(torch.zeros(256), torch.zeros(256), value.squeeze(-1), (), value_scale=heads.value_scale())
    standardised = heads.value_norm.normalize(returns.reshape(-1, 1)).squeeze(-1)
    # The loss's error is the raw output's error on standardised returns: its gradient does not grow with the returns.
    torch.testing.assert_close(output.value_error(returns), raw.squeeze(-1) - standardised, rtol=1e-4, atol=1e-4)
    assert 30.0 < float(heads.value_scale()) < 50.0


def test_without_value_normalisation_the_error_is_in_return_units() -> None:
    heads = ActorCriticHeads(6, 3, (16,))
    _, value = heads(torch.randn(8, 6))
    output = HeadOutputs(torch.zeros(8), torch.zeros(8), value.squeeze(-1), (), value_scale=heads.value_scale())
    torch.testing.assert_close(output.value_error(value.squeeze(-1) + 2.0), torch.full((8,), -2.0))


@pytest.mark.parametrize("algorithm", ON_POLICY)
def test_every_on_policy_algorithm_learns_with_value_normalisation_at_both_levels(algorithm: str, tmp_path: Path) -> None:
    level = f"{{name: {algorithm}, value_norm: running}}"
    overrides = [*TWO_WORKERS, "train.frames=512", f"algorithm.workers={level}", f"algorithm.manager={level}"]
    if algorithm == "a3c":
        overrides.append("train.actors=2")
    result = train(load("cartpole", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    policy = read_named_checkpoint(newest_checkpoint(result.folder)).state["policy"]
    counts = {key: float(value) for key, value in policy.items() if key.endswith("value_norm.count")}
    # Both workers' and the manager's normalisers have seen every return they learned from (CartPole's are 1 to ~40).
    assert len(counts) == 3 and all(count > 0 for count in counts.values()), counts
    # Their means are those of the returns: a mean above CartPole's early returns means targets that do not follow
    # from the rewards (values and successor values from different parameters, as an asynchronous run risks).
    means = [float(value) for key, value in policy.items() if key.endswith("value_norm.mean")]
    assert all(1.0 < mean < 40.0 for mean in means), means


def test_a_frozen_level_keeps_its_statistics(tmp_path: Path) -> None:
    overrides = [*TWO_WORKERS, "train.frames=512", "algorithm.workers={name: ppo, value_norm: running, frozen: true}"]
    result = train(load("cartpole", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    policy = read_named_checkpoint(newest_checkpoint(result.folder)).state["policy"]
    assert [float(value) for key, value in policy.items() if key.endswith("value_norm.count")] == [0.0, 0.0]


def test_a_level_without_a_state_value_critic_refuses_value_normalisation() -> None:
    with pytest.raises(ScenarioError, match=r"algorithm\.workers.*value_norm"):
        load("cartpole", ["algorithm.workers={name: sac, value_norm: running}"])
