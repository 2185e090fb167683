"""The built-in world's composite action (``action_parts=True``): a turn and a move in one step."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.builtin.beacon import BeaconEnv
from himo.envs.builtin.beacon_config import ACTION_PARTS, FORWARD, LEFT, RIGHT, STAY
from himo.envs.builtin.beacon_pettingzoo import BeaconParallelEnv

GROUP = "agents"


def step_plain(env: BeaconEnv, action: int) -> None:
    env.step(TensorDict({GROUP: {keys.ACTION: torch.full((env.num_envs, 2), action)}}, batch_size=[env.num_envs]))


def step_parts(env: BeaconEnv, turn: int, move: int) -> None:
    action = {name: torch.full((env.num_envs, 2), value) for name, value in (("turn", turn), ("move", move))}
    env.step(TensorDict({GROUP: {keys.ACTION: action}}, batch_size=[env.num_envs]))


def test_composite_specs_pass_check_env_specs() -> None:
    env = BeaconEnv(num_envs=3, seed=0, action_parts=True)
    check_env_specs(env)
    assert env.action_parts == ACTION_PARTS and env.action_names == []
    assert set(env.full_action_spec[GROUP, keys.ACTION].keys()) == {"turn", "move"}


@pytest.mark.parametrize(("turn", "plain_turn"), [(0, None), (1, LEFT), (2, RIGHT)])
@pytest.mark.parametrize("move", [0, 1])
def test_a_turn_and_a_move_in_one_step_equal_the_turn_then_the_move(turn: int, plain_turn: int | None, move: int) -> None:
    composite, plain = BeaconEnv(num_envs=8, seed=3, action_parts=True), BeaconEnv(num_envs=8, seed=3)
    composite.reset()
    plain.reset()
    step_parts(composite, turn, move)
    if plain_turn is not None:
        step_plain(plain, plain_turn)
    step_plain(plain, FORWARD if move else STAY)
    assert torch.equal(composite.world.agent_direction, plain.world.agent_direction)
    assert torch.equal(composite.world.agent_position, plain.world.agent_position)


def test_the_single_world_pettingzoo_env_refuses_action_parts() -> None:
    with pytest.raises(ValueError, match="action_parts"):
        BeaconParallelEnv(action_parts=True)


def test_action_parts_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="action_parts must be bool"):
        BeaconEnv(num_envs=1, action_parts=1)
