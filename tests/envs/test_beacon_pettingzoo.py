"""himo/beacon as a PettingZoo ParallelEnv over the same torch core, alone and through the project's adapter."""

from __future__ import annotations

import numpy as np
import torch
from pettingzoo.test import parallel_api_test
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.builtin import make_builtin_env
from himo.envs.builtin.beacon_config import COLOURS, COMPONENT_NAMES, MISSION_TEMPLATES
from himo.envs.builtin.beacon_pettingzoo import BeaconParallelEnv
from himo.envs.registry import make_env
from himo.envs.text import decode_ids


def test_parallel_api_test_passes():
    parallel_api_test(BeaconParallelEnv(seed=0, max_steps=20), num_cycles=100)


def test_observations_lie_in_their_spaces_and_infos_hold_components():
    env = BeaconParallelEnv(seed=1, agents=3)
    observations, infos = env.reset(seed=5)
    assert env.agents == ["agent_0", "agent_1", "agent_2"]
    for agent in env.agents:
        assert env.observation_space(agent).contains(observations[agent])
        assert set(infos[agent][keys.REWARD_COMPONENTS]) == set(COMPONENT_NAMES)
    observations, rewards, terminations, truncations, infos = env.step(dict.fromkeys(env.agents, 2))
    for agent in observations:
        assert env.observation_space(agent).contains(observations[agent])
        assert isinstance(rewards[agent], float)
        assert set(infos[agent][keys.REWARD_COMPONENTS]) == set(COMPONENT_NAMES)


def test_matches_the_torchrl_env_with_one_world():
    parallel = BeaconParallelEnv(seed=4, max_steps=12)
    batched = make_builtin_env("beacon", num_envs=1, seed=4, max_steps=12)
    observations, _ = parallel.reset()
    td = batched.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):
        for index, agent in enumerate(parallel.possible_agents):
            for name in ("view", "sound", "direction"):
                expected = td.get(("agents", "observation", name))[0, index].numpy()
                assert np.array_equal(observations[agent][name], expected)
            mission = td.get(("agents", "observation", "mission", keys.INPUT_IDS))[0, index].numpy()
            assert np.array_equal(observations[agent]["mission"][keys.INPUT_IDS], mission)
        actions = torch.randint(4, (1, 2), generator=generator)
        observations, rewards, terminations, truncations, _ = parallel.step(
            {agent: int(actions[0, index]) for index, agent in enumerate(parallel.agents)}
        )
        td.set(("agents", "action"), actions)
        following = batched.step(td).get("next")
        assert rewards["agent_0"] == float(following.get(("agents", "reward"))[0, 0, 0])
        if terminations["agent_0"] or truncations["agent_0"]:
            assert parallel.agents == [] and bool(following.get("done"))
            break
        td = following


BEACON_PETTINGZOO = "pettingzoo/himo.envs.builtin.beacon_pettingzoo"


def test_runs_through_the_pettingzoo_adapter_with_the_keys_of_himo_beacon():
    env = make_env(BEACON_PETTINGZOO, num_envs=2, seed=0)
    check_env_specs(env)
    assert env.group_map == {"agent": ["agent_0", "agent_1"]}  # the adapter's default grouping
    reference = make_env("himo/beacon", num_envs=2, seed=0)

    def below_group(spec):
        # Root entries (the built-in world's own "success") are not a group's.
        return {key[1:]: (spec[key].shape, spec[key].dtype) for key in spec.keys(True, True) if isinstance(key, tuple)}

    # Same keys below the group (nested mission and reward components included), shapes and dtypes.
    observations = below_group(env.full_observation_spec)
    assert observations == below_group(reference.full_observation_spec)
    assert below_group(env.full_reward_spec) == below_group(reference.full_reward_spec)
    assert (keys.OBSERVATION, "mission", keys.INPUT_IDS) in observations
    assert {(keys.REWARD_COMPONENTS, name) for name in COMPONENT_NAMES} <= set(observations)
    # The raw env's tokenizer is exposed and decodes the (nested) mission ids.
    tokenizer = env.tokenizers["mission"]
    assert tokenizer is env.envs[0].tokenizers["mission"]
    ids = env.reset()["agent", keys.OBSERVATION, "mission", keys.INPUT_IDS]
    missions = {template.format(colour=colour) for template in MISSION_TEMPLATES for colour in COLOURS}
    assert set(decode_ids(tokenizer, ids.reshape(-1, ids.shape[-1]))) <= missions


def test_adapter_rollout_equals_himo_beacon_with_one_world_across_resets():
    """Same seed and actions: observations, rewards, components and dones match, episode resets included."""
    group_map = {"agents": ["agent_0", "agent_1"]}
    adapted = make_env(BEACON_PETTINGZOO, num_envs=1, seed=3, max_steps=6, group_map=group_map)
    reference = make_env("himo/beacon", num_envs=1, seed=3, max_steps=6)
    actions = torch.randint(4, (20, 1, 2), generator=torch.Generator().manual_seed(0))

    def run(env):
        data, steps = env.reset(), []
        for action in actions:
            data.set(("agents", keys.ACTION), action)
            step, data = env.step_and_maybe_reset(data)
            steps.append(step.clone())
        return torch.stack(steps, 1)

    # The built-in world also reports its own success at the root, which a PettingZoo env has no place for.
    got, expected = run(adapted), run(reference).exclude(keys.SUCCESS, ("next", keys.SUCCESS))
    assert expected["next", "done"].sum() >= 2, "the test needs auto-resets"
    components = ("next", "agents", keys.REWARD_COMPONENTS)
    assert any(expected[(*components, name)].any() for name in COMPONENT_NAMES)
    assert set(got.keys(True, True)) == set(expected.keys(True, True))
    for key in expected.keys(True, True):
        assert torch.equal(got[key].to(expected[key].dtype), expected[key]), key
