"""Global critics (``multi_agent.critic: global``): every critic also reads the other agent groups' observations.

mpe2's speaker-listener has two groups of different shapes (speaker 3 numbers, listener 11): each group's critics
must move with what the other group observes, its actors must not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from short_runs import level
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded

from himo.agents.registry import ALGORITHMS
from himo.envs import keys
from himo.envs.other_groups import OtherGroups
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train

GROUPS = {"speaker": "listener", "listener": "speaker"}  # each group, and the other one
TWO_WORKERS = "workers={a: {modalities: [vector]}, b: {modalities: [vector]}}"
SHORT = ["env.num_envs=2", "env.kwargs.max_cycles=10", "train.frames=200", "train.frames_per_batch=100"]


def policy_and_reset(critic: str) -> tuple[HierarchicalPolicy, TensorDictBase, list[OtherGroups]]:
    """Speaker-listener with two workers per group (so the manager has a critic too), and a reset of 3 envs."""
    seed_everything(0)
    scenario = load("speaker-listener", ["env.num_envs=3", TWO_WORKERS, f"multi_agent.critic={critic}"])
    env = build_env(scenario)
    views = [transform for transform in env.transform if isinstance(transform, OtherGroups)]
    return build_policy(scenario, env), env.reset(), views


@pytest.mark.parametrize("critic", ["local", "centralised", "global"])
def test_only_a_global_critic_reads_the_other_group(critic: str) -> None:
    policy, observation, views = policy_and_reset(critic)
    assert len(views) == (critic == "global")
    for group, other in GROUPS.items():
        changed = observation.clone()
        state = (other, keys.OBSERVATION, "state")
        changed.set(state, changed.get(state) + 1.0)
        for view in views:  # what the env shows of the other group, as it would after such a step
            view.observe(changed)
        before = policy.groups[group].evaluate(observation.clone())
        after = policy.groups[group].evaluate(changed)
        values = [keys.worker(group, name, keys.STATE_VALUE) for name in ("a", "b")] + [keys.manager(group, keys.STATE_VALUE)]
        for key in values:
            assert (not torch.allclose(before.get(key), after.get(key))) == (critic == "global"), key
        # Actors stay decentralised.
        for key in [keys.worker(group, name, keys.LOGITS) for name in ("a", "b")] + [keys.manager(group, keys.LOGITS)]:
            assert torch.equal(before.get(key), after.get(key)), key


def test_each_group_sees_the_other_groups_observations_flattened() -> None:
    _, observation, _ = policy_and_reset("global")
    for group, other in GROUPS.items():
        seen = observation.get((group, keys.OBSERVATION, keys.OTHER_GROUPS))
        state = observation.get((other, keys.OBSERVATION, "state"))
        agents = observation.get(group).batch_size[-1]
        assert torch.equal(seen, state.reshape(3, -1).unsqueeze(1).expand(3, agents, -1))


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_global_critics_train_with_every_algorithm_at_both_levels(algorithm: str, tmp_path: Path) -> None:
    overrides = [*SHORT, TWO_WORKERS, "multi_agent.critic=global", level("workers", algorithm), level("manager", algorithm)]
    if algorithm == "a3c":
        overrides.append("train.actors=2")
    result = train(load("speaker-listener", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    assert result.frames >= 200


def test_global_critics_train_with_learned_termination_and_memory(tmp_path: Path) -> None:
    overrides = [
        *SHORT,
        TWO_WORKERS,
        "multi_agent={critic: global, agent_id: true}",
        "workers.a.memory={hidden: 8}",
        "manager.mode=weighted",
    ]
    assert train(load("speaker-listener", [*overrides, f"log.dir={tmp_path}"]), progress=False).frames == 200
    learned = [*SHORT, TWO_WORKERS, "multi_agent.critic=global", "manager.termination={kind: learned}"]
    assert train(load("speaker-listener", [*learned, f"log.dir={tmp_path}"]), progress=False).frames == 200


def test_a_global_critic_needs_other_groups() -> None:
    scenario = load("beacon", ["env.num_envs=2", "multi_agent.critic=global"])
    with pytest.raises(ScenarioError, match=r"multi_agent\.critic.*only \['agents'\]"):
        build_env(scenario)


def test_a_global_critic_reads_only_vector_observations() -> None:
    spec = Composite(
        {
            "left": Composite({keys.OBSERVATION: Composite({"view": Unbounded(shape=(2, 3, 4, 4))}, shape=(2,))}, shape=(2,)),
            "right": Composite({keys.OBSERVATION: Composite({"view": Unbounded(shape=(1, 3, 4, 4))}, shape=(1,))}, shape=(1,)),
        }
    )
    with pytest.raises(ValueError, match=r"vector observations.*group 'left' observation 'view'.*\(3, 4, 4\)"):
        OtherGroups({"left": ["view"], "right": ["view"]}).transform_observation_spec(spec)
