"""The PettingZoo adapter: groups, batched copies with partial resets, seeding, AEC masking, components."""

from __future__ import annotations

import mpe2.simple_speaker_listener_v4 as speaker_listener
import numpy as np
import pytest
import torch
from envs_test_helpers import EPISODE_LENGTH
from torchrl.envs.utils import MarlGroupMapType, check_env_specs

from himo.envs import keys
from himo.envs.pettingzoo_adapter import default_group_map, make_pettingzoo_env
from himo.envs.registry import make_env

SPEAKER_LISTENER = "mpe2.simple_speaker_listener_v4"
MAX_CYCLES = 25  # simple_speaker_listener_v4's default episode length


def fixed_actions(steps: int, num_envs: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "speaker": torch.randint(0, 3, (steps, num_envs, 1), generator=generator),
        "listener": torch.randint(0, 5, (steps, num_envs, 1), generator=generator),
    }


def run(env, actions: dict[str, torch.Tensor]):
    data = env.reset()
    steps = []
    for step in range(len(actions["speaker"])):
        for group, group_actions in actions.items():
            data.set((group, keys.ACTION), group_actions[step])
        out, data = env.step_and_maybe_reset(data)
        steps.append(out.clone())
    return torch.stack(steps, 1)


def test_speaker_listener_groups_keys_and_specs() -> None:
    env = make_env(f"pettingzoo/{SPEAKER_LISTENER}", num_envs=2, seed=0)
    check_env_specs(env)
    assert env.group_map == {"speaker": ["speaker_0"], "listener": ["listener_0"]}
    data = env.rollout(3, break_when_any_done=False)
    assert data["speaker", keys.OBSERVATION, "state"].shape == (2, 3, 1, 3)
    assert data["listener", keys.OBSERVATION, "state"].shape == (2, 3, 1, 11)
    assert data["speaker", keys.ACTION].dtype == torch.int64 and data["speaker", keys.ACTION].shape == (2, 3, 1)
    assert env.full_action_spec["speaker", keys.ACTION].n == 3
    assert env.full_action_spec["listener", keys.ACTION].n == 5
    assert data["next", "listener", keys.REWARD].shape == (2, 3, 1, 1)
    assert data["next", keys.DONE].shape == (2, 3, 1)
    assert data["next", "speaker", keys.DONE].shape == (2, 3, 1, 1)


def test_copies_match_raw_envs_replayed_across_episode_resets() -> None:
    num_envs, steps, seed = 2, MAX_CYCLES * 2 + 5, 11
    actions = fixed_actions(steps, num_envs)
    data = run(make_pettingzoo_env(SPEAKER_LISTENER, num_envs=num_envs, seed=seed), actions)
    done = data["next", keys.DONE][..., 0]
    assert torch.equal(done.nonzero()[:, 1].unique(), torch.tensor([MAX_CYCLES - 1, 2 * MAX_CYCLES - 1]))
    for copy in range(num_envs):
        reference = speaker_listener.parallel_env()
        observations, _ = reference.reset(seed=seed + copy)
        for step in range(steps):
            assert np.allclose(data[copy, step]["listener", keys.OBSERVATION, "state"][0].numpy(), observations["listener_0"])
            step_actions = {f"{group}_0": int(actions[group][step, copy, 0]) for group in actions}
            observations, rewards, terminations, truncations, _ = reference.step(step_actions)
            got = data[copy, step]["next"]
            assert np.allclose(got["speaker", keys.OBSERVATION, "state"][0].numpy(), observations["speaker_0"])
            assert float(got["listener", keys.REWARD]) == pytest.approx(rewards["listener_0"])
            if any(terminations.values()) or any(truncations.values()):
                observations, _ = reference.reset()


def test_seeding_is_deterministic() -> None:
    actions = fixed_actions(10, 2)
    first = run(make_pettingzoo_env(SPEAKER_LISTENER, num_envs=2, seed=1), actions)
    second = run(make_pettingzoo_env(SPEAKER_LISTENER, num_envs=2, seed=1), actions)
    other = run(make_pettingzoo_env(SPEAKER_LISTENER, num_envs=2, seed=2), actions)
    key = ("next", "listener", keys.OBSERVATION, "state")
    assert torch.equal(first[key], second[key])
    assert not torch.equal(first[key], other[key])


def test_group_map_passthrough_and_default() -> None:
    env = make_pettingzoo_env(SPEAKER_LISTENER, num_envs=1, seed=0, group_map=MarlGroupMapType.ONE_GROUP_PER_AGENT)
    assert sorted(env.group_map) == ["listener_0", "speaker_0"]
    assert default_group_map(["agent_0", "agent_1", "adversary_0", "alice"]) == {
        "agent": ["agent_0", "agent_1"],
        "adversary": ["adversary_0"],
        "alice": ["alice"],
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:PettingZoo in TorchRL:UserWarning")
def test_aec_env_through_torchrl_masking() -> None:
    env = make_pettingzoo_env("pettingzoo.classic.rps_v2", num_envs=2, seed=0, api="aec")
    check_env_specs(env)
    assert env.group_map == {"player_0": ["player_0"], "player_1": ["player_1"]}
    data = env.rollout(4, break_when_any_done=False)
    assert data["player_0", keys.OBSERVATION, "state"].shape[:3] == (2, 4, 1)
    # one player acts per step: the masks alternate
    assert torch.equal(data["player_0", "mask"][0, :, 0], ~data["player_1", "mask"][0, :, 0])


def test_reward_components_from_info_reach_their_keys() -> None:
    env = make_pettingzoo_env("envs_test_helpers", num_envs=2, seed=0)
    check_env_specs(env)
    assert env.group_map == {"runner": ["runner_0", "runner_1"]}
    # Declared as observations (the project's convention), zero after a reset.
    assert ("runner", keys.REWARD_COMPONENTS, "effort") in env.full_observation_spec.keys(True, True)
    assert env.reward_keys == [("runner", keys.REWARD)]
    assert torch.all(env.reset()["runner", keys.REWARD_COMPONENTS, "effort"] == 0)
    data = env.rollout(EPISODE_LENGTH + 1, break_when_any_done=False)
    effort = data["next", "runner", keys.REWARD_COMPONENTS, "effort"]
    assert effort.shape == (2, EPISODE_LENGTH + 1, 2, 1)
    assert torch.equal(effort, -data["runner", keys.ACTION].unsqueeze(-1).float())
    assert torch.equal(data["next", "runner", keys.REWARD], data["runner", keys.ACTION].unsqueeze(-1).float())
    assert data["next", keys.DONE][:, EPISODE_LENGTH - 1].all()
    # after the reset the count observation starts again from 0
    assert torch.all(data["runner", keys.OBSERVATION, "state"][:, EPISODE_LENGTH, :, 0] == 0)


def test_missing_module_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match="himo_no_such_module"):
        make_pettingzoo_env("himo_no_such_module.env_v0", num_envs=1, seed=0)


def test_bad_kwargs_of_the_env_constructor_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"parallel_env\(bogus=1\) failed: TypeError: .*bogus"):
        make_pettingzoo_env("mpe2.simple_speaker_listener_v4", num_envs=1, seed=0, bogus=1)
