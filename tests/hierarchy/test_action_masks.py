"""Legal-action masks and turn-based envs: only legal actions are sampled and evaluated, and an agent learns
only from its own turns, through scenario files on small masked envs (``masked_envs``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from one_batch import collect_batch
from masked_envs import MASKED_ENV_ID, MaskedEnv, TurnsEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from himo.envs import keys
from himo.hierarchy.learner import GroupLearner
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.errors import ScenarioError
from himo.scenarios.schema import Scenario
from himo.scenarios.loader import load

TWO_WORKERS = {"a": "{modalities: [vector]}", "b": "{modalities: [vector], actions: [0, 2]}"}


def scenario_text(env_id: str, mode: str = "select", kwargs: str = "{}", workers: str = "ppo") -> str:
    worker_lines = "\n".join(f"  {name}: {section}" for name, section in TWO_WORKERS.items())
    return f"""
name: masked
env: {{id: {env_id}, num_envs: 4, kwargs: {kwargs}}}
modalities:
  vector: {{key: state, encoder: mlp}}
workers:
{worker_lines}
manager: {{mode: {mode}, termination: {{every: 2}}}}
algorithm: {{workers: {workers}, manager: ppo}}
train: {{frames: 256, frames_per_batch: 128}}
"""


def load_text(text: str, folder: Path) -> Scenario:
    path = folder / "masked.yaml"
    path.write_text(text)
    return load(path)


def collect(text: str, folder: Path, frames: int = 256):
    scenario = load_text(text, folder)
    return scenario, *collect_batch(scenario, frames)


@pytest.mark.parametrize("mode", ["select", "weighted"])
def test_only_legal_actions_are_sampled_and_greedy_actions_are_legal(mode: str, tmp_path: Path) -> None:
    MaskedEnv.illegal = 0
    _, policy, batch = collect(scenario_text(f"gymnasium/{MASKED_ENV_ID}", mode), tmp_path)
    assert batch.numel() == 256 and MaskedEnv.illegal == 0
    legal = batch.get(("agent", keys.ACTION_MASK))
    taken = batch.get(("agent", keys.ACTION))
    assert legal.gather(-1, taken.unsqueeze(-1)).all()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = policy(batch[:, 0].exclude(("agent", keys.ACTION)).clone())
    assert legal[:, 0].gather(-1, greedy.get(("agent", keys.ACTION)).unsqueeze(-1)).all()


def test_learning_evaluates_the_masked_policy_that_acted(tmp_path: Path) -> None:
    _, policy, batch = collect(scenario_text(f"gymnasium/{MASKED_ENV_ID}"), tmp_path)
    group = policy.groups["agent"]
    samples = batch.get("agent").select(*group.observed_keys, keys.ACTION)
    with torch.no_grad():
        inputs = group.evaluate_workers(batch.empty().set("agent", samples))
        outputs = group.worker_outputs(inputs)
    legal = batch.get(("agent", keys.ACTION_MASK))
    for name, output in outputs.items():
        stored = batch.get(keys.worker("agent", name, keys.LOG_PROB))
        assert torch.allclose(output.log_prob, stored, atol=1e-5), name
        probabilities = inputs.get(keys.worker("agent", name, keys.LOGITS)).softmax(-1)
        assert probabilities[~legal].max() < 1e-6, name
    # Worker b may take 0 and 2: one of them is legal at every step, so it never acts outside its own subset.
    probabilities_b = inputs.get(keys.worker("agent", "b", keys.LOGITS)).softmax(-1)
    assert probabilities_b[..., [1, 3]].max() < 1e-6


def test_an_agent_decides_ages_and_learns_only_on_its_own_turns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    TurnsEnv.illegal = 0
    scenario, policy, batch = collect(scenario_text("pettingzoo/masked_envs", kwargs="{api: aec}"), tmp_path, frames=128)
    assert TurnsEnv.illegal == 0
    assert list(policy.groups) == ["player_0", "player_1"]  # an AEC env's agents are one group each
    continuing = ~batch.get((keys.NEXT, keys.DONE))
    for group in policy.groups:
        data = batch.get(group)
        acting = data.get(keys.ACTING)
        assert acting.any() and (~acting).any()
        decision = data.get((keys.MANAGER, keys.DECISION))
        assert decision.any() and not (decision & ~acting).any()
        age, next_age = data.get((keys.MANAGER, keys.AGE)), batch.get((keys.NEXT, group, keys.MANAGER, keys.AGE))
        idle = ~acting & continuing & (age > 0)
        assert idle.any() and (next_age[idle] == age[idle]).all(), "an option does not age off its agent's turns"
        assert (next_age[acting & ~decision] == age[acting & ~decision] + 1).all()

        problems = []
        learner = GroupLearner(policy.groups[group], scenario.algorithm.manager, scenario.algorithm.workers, 0.99, 128)
        update = learner.workers.update
        monkeypatch.setattr(learner.workers, "update", lambda problem, frames: problems.append(problem) or update(problem, frames))
        learner.update(batch, 128)
        (problem,) = problems
        for name in ("a", "b"):
            weight = problem.targets[name].get("weight").reshape(acting.shape)
            assert (weight[~acting] == 0).all() and weight[acting].sum() > 0, (group, name)

def test_sac_workers_refuse_a_turn_based_env(tmp_path: Path) -> None:
    scenario = load_text(scenario_text("pettingzoo/masked_envs", kwargs="{api: aec}", workers="sac"), tmp_path)
    with pytest.raises(ScenarioError, match="algorithm.workers.name: .*turn-based"):
        build_policy(scenario, build_env(scenario))

