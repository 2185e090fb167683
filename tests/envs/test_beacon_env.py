"""himo/beacon as a TorchRL env: specs, keys, rollouts, seeding, partial resets and the rules."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.builtin import BUILTIN_ENVS, make_builtin_env
from himo.envs.builtin.beacon import BeaconEnv
from himo.envs.builtin.beacon_config import COLOURS, COMPONENT_NAMES, FORWARD, STAY
from himo.envs.builtin.beacon_world import BEACON, FLOOR, LAVA, WALL
from himo.envs.registry import make_env
from himo.envs.text import decode_ids

GROUP = "agents"


def make(num_envs: int = 3, seed: int = 0, **kwargs) -> BeaconEnv:
    return make_builtin_env("beacon", num_envs=num_envs, seed=seed, **kwargs)


def random_actions(generator: torch.Generator, env: BeaconEnv) -> torch.Tensor:
    return torch.randint(len(env.action_names), (env.num_envs, env.config.agents), generator=generator)


def test_specs_pass_check_env_specs():
    check_env_specs(make(num_envs=3, agents=2))


def test_keys_shapes_and_dtypes():
    env = make_env("himo/beacon", num_envs=3, seed=0, agents=2)
    assert BUILTIN_ENVS["beacon"] is BeaconEnv and env.batch_size == torch.Size([3])
    assert env.action_names == ["left", "right", "forward", "stay"]
    td = env.reset()
    expected = {
        keys.observation(GROUP, "view"): ((3, 2, 3, 20, 20), torch.uint8),
        (*keys.observation(GROUP, "mission"), keys.INPUT_IDS): ((3, 2, 5), torch.int64),
        (*keys.observation(GROUP, "mission"), keys.ATTENTION_MASK): ((3, 2, 5), torch.bool),
        keys.observation(GROUP, "sound"): ((3, 2, 2, 256), torch.float32),
        keys.observation(GROUP, "direction"): ((3, 2, 4), torch.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert td.get(key).shape == shape and td.get(key).dtype == dtype, key
    td.set((GROUP, keys.ACTION), torch.full((3, 2), STAY))
    following = env.step(td).get(keys.NEXT)
    assert following.get((GROUP, keys.REWARD)).shape == (3, 2, 1)
    for name in COMPONENT_NAMES:
        assert keys.reward_component(GROUP, name) == (keys.NEXT, GROUP, keys.REWARD_COMPONENTS, name)
        assert following.get((GROUP, keys.REWARD_COMPONENTS, name)).shape == (3, 2, 1)
    for flag in (keys.DONE, keys.TERMINATED, keys.TRUNCATED):
        assert following.get(flag).shape == (3, 1) and following.get((GROUP, flag)).shape == (3, 2, 1)
    input_ids = td.get((*keys.observation(GROUP, "mission"), keys.INPUT_IDS))
    texts = decode_ids(env.tokenizers["mission"], input_ids.flatten(0, 1))
    target_colours = env.world.target_colour().flatten()
    assert [text.split()[-2] for text in texts] == [COLOURS[colour] for colour in target_colours]


def test_rollout_with_random_actions_auto_resets():
    env = make(num_envs=3, max_steps=8)
    rollout = env.rollout(30, break_when_any_done=False)
    assert rollout.batch_size == torch.Size([3, 30])
    assert rollout.get((keys.NEXT, keys.DONE)).sum() >= 3  # every env ends at least once in 30 > 8 steps
    assert int(env.world.step_count.max()) <= 8


def test_unknown_name_and_bad_kwargs_raise_clear_errors():
    with pytest.raises(ValueError, match="valid names are \\['beacon'\\]"):
        make_builtin_env("beacons", num_envs=1, seed=0)
    with pytest.raises(ValueError, match="did you mean 'agents'"):
        make(agent=3)
    with pytest.raises(ValueError, match="view must be odd"):
        make(view=4)
    with pytest.raises(ValueError, match="size must be an int|size must be int"):
        make(size=9.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 100_000}, "size must be in 5..64"),
        ({"view": 101}, "view must be odd and in 3..31"),
        ({"tile": 1000}, "tile must be in 1..32"),
        ({"max_steps": 10**20}, "max_steps must be in 1..1000000"),
        ({"samples": 0}, "samples must be in 1..65536"),
        ({"samples": 10**10}, "samples must be in 1..65536"),
        ({"noise": 1e308}, "noise must be a finite number in 0..100"),
        ({"agents": 10**5}, "agents must be in 1..256"),
    ],
)
def test_values_that_would_fail_later_are_refused_up_front(kwargs: dict, message: str) -> None:
    # Each would otherwise pass here and fail later: an allocation too large, or a step count beyond int64.
    with pytest.raises(ValueError, match=message):
        make(num_envs=1, **kwargs)


def test_same_seed_same_trajectory_other_seed_differs():
    def play(seed: int) -> list[torch.Tensor]:
        env = make(num_envs=4, seed=seed, max_steps=6)
        generator = torch.Generator().manual_seed(123)
        td = env.reset()
        out = []
        for _ in range(15):
            td.set((GROUP, keys.ACTION), random_actions(generator, env))
            stepped, td = env.step_and_maybe_reset(td)
            following = stepped.get(keys.NEXT)
            out += [following.get(keys.observation(GROUP, "view")), following.get(keys.observation(GROUP, "sound"))]
            out += [following.get((GROUP, keys.REWARD)), td.get(keys.observation(GROUP, "view"))]
        return out

    first, again, other = play(7), play(7), play(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_partial_reset_resets_only_flagged_envs():
    env = make(num_envs=3)
    td = env.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        td.set((GROUP, keys.ACTION), random_actions(generator, env))
        td = env.step(td).get(keys.NEXT)
    world = env.world
    before = {name: getattr(world, name).clone() for name in ("grid", "agent_position", "agent_direction", "seen")}
    mask = torch.tensor([True, False, True])
    reset = env.reset(td.clone().set("_reset", mask.unsqueeze(-1)))
    assert world.step_count.tolist() == [0, 3, 0]
    for name, value in before.items():
        assert torch.equal(getattr(world, name)[1], value[1]), name
    for key in (keys.observation(GROUP, "view"), keys.observation(GROUP, "sound")):
        assert torch.equal(reset.get(key)[1], td.get(key)[1])
    fresh = env._observe()  # what the flagged envs must now show
    assert torch.equal(reset.get(keys.observation(GROUP, "view")), fresh["view"])
    assert not reset.get(keys.DONE).any()


def place(env: BeaconEnv, env_index: int, agents: list[tuple[int, int, int]], beacons: list[tuple[int, int, int]]):
    """Empty room; agents as (x, y, direction), beacons as (x, y, colour); agent i targets beacon i."""
    world = env.world
    world.grid[env_index, 1:-1, 1:-1] = FLOOR
    for index, (x, y, colour) in enumerate(beacons):
        world.grid[env_index, y, x] = BEACON + colour
        world.beacon_position[env_index, index] = torch.tensor([x, y])
        world.beacon_colour[env_index, index] = colour
    for index, (x, y, direction) in enumerate(agents):
        world.agent_position[env_index, index] = torch.tensor([x, y])
        world.agent_direction[env_index, index] = direction
        world.target[env_index, index] = index
    world.arrived[env_index] = False
    world.step_count[env_index] = 0
    world.seen[env_index] = False


def step(env: BeaconEnv, actions: list[list[int]]):
    td = TensorDict({GROUP: {keys.ACTION: torch.tensor(actions)}}, batch_size=[env.num_envs])
    return env.step(td).get(keys.NEXT)


def test_team_reward_pays_each_arrival_its_share():
    env = make(num_envs=1, agents=2, beacons=2, max_steps=10)
    # Agent 0 faces its beacon; agent 1 is one step away from facing its own.
    place(env, 0, [(2, 2, 0), (5, 5, 1)], [(3, 2, 0), (5, 7, 1)])
    first = step(env, [[FORWARD, FORWARD]])
    assert torch.allclose(first.get((GROUP, keys.REWARD))[0, :, 0], torch.full((2,), 0.5 * (1 - 0.9 * 1 / 10)))
    assert not first.get(keys.TERMINATED).any()
    second = step(env, [[FORWARD, FORWARD]])
    assert torch.allclose(second.get((GROUP, keys.REWARD))[0, :, 0], torch.full((2,), 0.5 * (1 - 0.9 * 2 / 10)))
    assert second.get(keys.TERMINATED).all()


def test_rules_success_wrong_beacon_lava_and_components():
    env = make(num_envs=3, agents=2, beacons=2, max_steps=10)
    # env 0: both agents face their own beacon -> team success on step 1.
    place(env, 0, [(2, 2, 0), (5, 5, 1)], [(3, 2, 0), (5, 6, 1)])
    # env 1: agent 0 faces the other agent's beacon -> failure; agent 1 walks north toward its beacon.
    place(env, 1, [(2, 2, 0), (3, 6, 3)], [(7, 7, 0), (3, 2, 1)])
    # env 2: agent 0 walks into lava -> failure.
    place(env, 2, [(2, 2, 1), (6, 6, 3)], [(7, 7, 0), (7, 1, 1)])
    env.world.grid[2, 3, 2] = LAVA
    following = step(env, [[FORWARD, FORWARD]] * 3)
    components = following.get((GROUP, keys.REWARD_COMPONENTS))
    reward = following.get((GROUP, keys.REWARD))[..., 0]
    assert torch.allclose(reward[0], torch.full((2,), 1 - 0.9 * 1 / 10)) and (reward[1:] == 0).all()
    assert following.get(keys.TERMINATED).squeeze(-1).tolist() == [True, True, True]
    assert components.get("instruction")[..., 0].tolist() == [[1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]]
    assert components.get("explore")[2, 0, 0] == -1.0 and components.get("explore")[1, 1, 0] > 0
    assert components.get("approach_sound")[1, 1, 0] == pytest.approx(1.0)  # 4 cells away, then 3
    assert env.world.agent_position[2, 0].tolist() == [2, 3]


def test_arrived_agent_waits_and_walls_block():
    env = make(num_envs=1, agents=2, beacons=2, max_steps=10)
    place(env, 0, [(2, 2, 0), (1, 5, 2)], [(3, 2, 0), (7, 7, 1)])
    following = step(env, [[FORWARD, FORWARD]])
    assert env.world.arrived[0].tolist() == [True, False] and not following.get(keys.DONE).any()
    assert env.world.grid[0, 5, 0] == WALL and env.world.agent_position[0, 1].tolist() == [1, 5]
    step(env, [[FORWARD, STAY]])  # an arrived agent ignores its actions
    assert env.world.agent_position[0, 0].tolist() == [2, 2] and env.world.arrived[0].tolist() == [True, False]
