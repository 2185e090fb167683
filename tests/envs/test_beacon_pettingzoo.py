"""himo/beacon as a PettingZoo ParallelEnv over the same torch core."""

from __future__ import annotations

import numpy as np
import torch
from pettingzoo.test import parallel_api_test

from envs import keys
from envs.builtin import make_builtin_env
from envs.builtin.beacon_config import COMPONENT_NAMES
from envs.builtin.beacon_pettingzoo import BeaconParallelEnv


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
