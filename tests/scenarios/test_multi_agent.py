"""Parameter sharing within a group: centralised (MAPPO-style) critics and the agent-id input, built from scenarios."""

from __future__ import annotations

import pytest
import torch
from short_runs import SMALL_BEACON
from tensordict import TensorDictBase

from himo.envs import keys
from himo.hierarchy.policy import GroupPolicy
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load
from himo.scenarios.run import train

GROUP = "agents"
WORKER_VALUES = [keys.worker(GROUP, name, keys.STATE_VALUE) for name in ("image", "text", "audio")]
MANAGER_VALUE = keys.manager(GROUP, keys.STATE_VALUE)


def group_policy(overrides: list[str]) -> tuple[GroupPolicy, TensorDictBase]:
    """The beacon scenario's group policy and one reset observation of 3 envs with 2 agents each."""
    seed_everything(0)
    scenario = load("beacon", [*SMALL_BEACON, "env.num_envs=3", *overrides])
    env = build_env(scenario)
    policy = build_policy(scenario, env).groups[GROUP]
    observation = env.reset()
    env.close()
    return policy, observation


def evaluated(policy: GroupPolicy, observation: TensorDictBase) -> TensorDictBase:
    with torch.no_grad():
        return policy.evaluate(observation.clone())


def with_other_agent_changed(observation: TensorDictBase) -> TensorDictBase:
    """Agent 1's observations replaced by another env's, agent 0's kept."""
    changed = observation.clone()
    group = changed.get(GROUP)
    group[:, 1] = group[:, 1].roll(1, dims=0)
    return changed


@pytest.mark.parametrize("critic", ["local", "centralised"])
def test_a_centralised_critic_reads_the_other_agents_and_a_local_one_does_not(critic: str) -> None:
    policy, observation = group_policy([f"multi_agent.critic={critic}"])
    before, after = evaluated(policy, observation), evaluated(policy, with_other_agent_changed(observation))
    for key in [*WORKER_VALUES, MANAGER_VALUE]:
        agent_zero_moved = not torch.allclose(before.get(key)[:, 0], after.get(key)[:, 0])
        assert agent_zero_moved == (critic == "centralised"), key
    # Actors stay local: agent 0's policy does not depend on what agent 1 sees.
    for name in ("image", "text", "audio"):
        logits = keys.worker(GROUP, name, keys.LOGITS)
        assert torch.equal(before.get(logits)[:, 0], after.get(logits)[:, 0])
    assert torch.equal(before.get(keys.manager(GROUP, keys.LOGITS))[:, 0], after.get(keys.manager(GROUP, keys.LOGITS))[:, 0])


@pytest.mark.parametrize("agent_id", [False, True])
def test_the_agent_id_input_lets_agents_with_identical_observations_act_differently(agent_id: bool) -> None:
    policy, observation = group_policy([f"multi_agent.agent_id={str(agent_id).lower()}"])
    twins = observation.clone()
    group = twins.get(GROUP)
    group[:, 1] = group[:, 0]
    outputs = evaluated(policy, twins)
    for key in [keys.worker(GROUP, "audio", keys.LOGITS), keys.manager(GROUP, keys.LOGITS), *WORKER_VALUES]:
        same = torch.allclose(outputs.get(key)[:, 0], outputs.get(key)[:, 1])
        assert same != agent_id, key


def test_agent_id_input_is_a_one_hot_row_per_agent() -> None:
    policy, observation = group_policy(["multi_agent.agent_id=true"])
    identity = evaluated(policy, observation).get(keys.agent_id(GROUP))
    assert torch.equal(identity, torch.eye(2).expand(3, 2, 2))


@pytest.mark.parametrize("mode", ["select-interval", "weighted", "learned"])
def test_centralised_critics_with_agent_id_train_in_every_manager_mode(mode: str, tmp_path) -> None:
    manager = {
        "select-interval": [],
        "weighted": ["manager.mode=weighted"],
        "learned": ["manager.termination={kind: learned}"],
    }[mode]
    overrides = [*SMALL_BEACON, *manager, "multi_agent={critic: centralised, agent_id: true}", f"log.dir={tmp_path}"]
    result = train(load("beacon", overrides), progress=False)
    assert result.frames == 512


def test_an_unknown_critic_kind_is_a_clear_error() -> None:
    from himo.scenarios.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"multi_agent\.critic"):
        load("beacon", ["multi_agent.critic=everyone"])
