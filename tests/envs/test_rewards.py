"""Reward channels (mixes of named components) and the registered reward functions."""

from __future__ import annotations

import math

import pytest
import torch
from envs_test_helpers import COMPONENTS_ENV_ID
from tensordict import TensorDict
from torchrl.envs import Compose, RewardSum, TransformedEnv
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.gymnasium_adapter import GROUP, GymnasiumVectorEnv, make_gymnasium_env
from himo.envs.registry import make_env
from himo.envs.rewards import (
    REWARD_FUNCTIONS,
    REWARD_LIMIT,
    RewardChannels,
    RewardFunctionError,
    StepCost,
    make_reward_function,
)


def components_env(mixes, functions=None) -> TransformedEnv:
    base = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=2, seed=0)
    return TransformedEnv(base, RewardChannels(mixes, functions=functions))


def step_pair(observation_before: torch.Tensor, observation_after: torch.Tensor, action: torch.Tensor | None = None):
    """A ``(tensordict, next_tensordict)`` pair for group ``"g"`` with ``[N, A, ...]`` observations ``"x"``."""
    batch = observation_before.shape[:2]
    before = TensorDict({"g": TensorDict({keys.OBSERVATION: {"x": observation_before}}, batch)}, batch[:1])
    if action is not None:
        before["g", keys.ACTION] = action
    after = TensorDict(
        {"g": TensorDict({keys.OBSERVATION: {"x": observation_after}, keys.REWARD: torch.zeros(*batch, 1)}, batch)},
        batch[:1],
    )
    return before, after


def test_channels_mix_env_reward_and_info_components() -> None:
    env = components_env({"image": {"env": 0.5, "bonus": 1.0}, "text": {"penalty": 2.0, "env": -1.0}})
    check_env_specs(env)
    data = env.rollout(4, break_when_any_done=False)
    channels = data["next", GROUP, keys.REWARD_CHANNELS]
    assert channels["image"].shape == (2, 4, 1, 1)
    # reward 1, bonus 2 every step, penalty -0.5 on even steps: image = 0.5 + 2 = 2.5; text = 2 * penalty - 1
    assert torch.all(channels["image"] == 2.5)
    assert torch.equal(channels["text"][0, :, 0, 0], torch.tensor([-1.0, -2.0, -1.0, -2.0]))


def test_reward_functions_become_components_usable_in_mixes() -> None:
    def build() -> TransformedEnv:
        functions = {
            "cost": make_reward_function("step_cost", value=0.25),
            "explore": make_reward_function("novelty", observation="state"),
        }
        return components_env({"worker": {"cost": 2.0, "explore": 1.0}}, functions)

    check_env_specs(build())
    data = build().rollout(3, break_when_any_done=False)
    components = data["next", GROUP, keys.REWARD_COMPONENTS]
    assert torch.all(components["cost"] == -0.25)
    # both copies see observation 1, 2, 3: counts go 2, 2, 2 (two copies per step) -> 1/sqrt(2)
    assert torch.allclose(components["explore"], torch.full((2, 3, 1, 1), 1 / math.sqrt(2)))
    assert torch.allclose(data["next", GROUP, keys.REWARD_CHANNELS, "worker"], -0.5 + components["explore"])


def test_channels_sum_into_episode_returns() -> None:
    channel = (GROUP, keys.REWARD_CHANNELS, "worker")
    base = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=1, seed=0)
    env = TransformedEnv(base, Compose(RewardChannels({"worker": {"bonus": 1.0}}), RewardSum(in_keys=[channel])))
    data = env.rollout(3)
    assert float(data["next", GROUP, keys.REWARD_CHANNELS, "episode_worker"][0, -1]) == 6.0


# (env id, kwargs, groups): every env family, with episodes short enough to end within the rollout.
AUTO_RESET_ENVS = [
    ("gymnasium/CartPole-v1", {"max_episode_steps": 30}, ["agent"]),  # copies end apart: partial resets
    ("gymnasium/BabyAI-GoToRedBallGrey-v0", {"max_steps": 6}, ["agent"]),
    ("pettingzoo/mpe2.simple_speaker_listener_v4", {"max_cycles": 6}, ["speaker", "listener"]),
    ("himo/beacon", {"max_steps": 6}, ["agents"]),
]


@pytest.mark.parametrize(("env_id", "kwargs", "groups"), AUTO_RESET_ENVS, ids=[case[0] for case in AUTO_RESET_ENVS])
def test_components_are_observations_zero_after_reset(env_id: str, kwargs: dict, groups: list[str]) -> None:
    base = make_env(env_id, num_envs=2, seed=0, **kwargs)
    env_components = list(base.full_observation_spec[groups[0]].get(keys.REWARD_COMPONENTS, {}).keys())
    mix = {"env": 1.0, "cost": 1.0, **{name: 0.5 for name in env_components[:1]}}
    env = TransformedEnv(base, RewardChannels({"w": mix}, functions={"cost": StepCost(0.25)}))
    check_env_specs(env)
    for group in groups:
        assert (group, keys.REWARD_COMPONENTS, "cost") in env.full_observation_spec.keys(True)
        assert (group, keys.REWARD_COMPONENTS) not in env.full_reward_spec.keys(True)
    torch.manual_seed(0)
    data = env.rollout(40, break_when_any_done=False)
    done = data["next", keys.DONE][..., 0]
    assert done[:, :-1].any(), "the test needs an auto-reset inside the rollout"
    for group in groups:
        step = data["next", group, keys.REWARD_COMPONENTS]
        # Channel by hand: team reward - 0.25 (+ 0.5 * the env's first component).
        expected = data["next", group, keys.REWARD] - 0.25
        if env_components:
            expected = expected + 0.5 * step[env_components[0]]
        assert torch.allclose(data["next", group, keys.REWARD_CHANNELS, "w"], expected)
        # The root holds the previous step's components, or zeros where that step ended an episode.
        for name in ["cost", *env_components]:
            root = data[group, keys.REWARD_COMPONENTS, name]
            assert torch.all(root[:, 0] == 0)
            following = torch.where(done[:, :-1, None, None], torch.zeros_like(root[:, 1:]), step[name][:, :-1])
            assert torch.equal(root[:, 1:], following)


class RewardSpecComponentsEnv(GymnasiumVectorEnv):
    """Declares its reward components as rewards, which the convention forbids."""

    def _make_specs(self) -> None:
        super()._make_specs()
        observation_spec = self.observation_spec.clone()
        components = observation_spec[GROUP, keys.REWARD_COMPONENTS]
        del observation_spec[GROUP, keys.REWARD_COMPONENTS]
        self.observation_spec = observation_spec
        self.reward_spec[GROUP, keys.REWARD_COMPONENTS] = components


def test_components_declared_as_rewards_are_an_error() -> None:
    vector_env = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=1, seed=0).vector_env
    base = RewardSpecComponentsEnv(vector_env, reward_components=["bonus", "penalty"])
    with pytest.raises(ValueError, match="observation spec"):
        TransformedEnv(base, RewardChannels({"w": {"bonus": 1.0}}))


def test_missing_component_lists_the_available_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown components \['explore'\].*'env', 'bonus', 'penalty'"):
        components_env({"image": {"explore": 1.0}})


def test_unknown_group_and_bad_weight_are_errors() -> None:
    base = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=1, seed=0)
    with pytest.raises(KeyError, match="unknown groups"):
        TransformedEnv(base, RewardChannels({"w": {"env": 1.0}}, groups=["nobody"]))
    with pytest.raises(ValueError, match="not finite"):
        RewardChannels({"w": {"env": float("nan")}})


def test_unknown_reward_function_and_bad_parameters() -> None:
    with pytest.raises(KeyError, match="available: .*novelty"):
        make_reward_function("curiosity")
    with pytest.raises(ValueError, match=r"novelty(.|\n)*temperature"):
        make_reward_function("novelty", observation="x", temperature=2.0)


@pytest.mark.parametrize(
    ("name", "parameters", "fragment"),
    [
        ("alive", {"value": float("nan")}, "finite number"),
        ("alive", {"value": float("inf")}, "finite number"),
        ("alive", {"value": "1.0e308"}, "less than or equal to 1000000"),
        ("step_cost", {"value": -1.0}, "greater than or equal to 0"),
        ("action_cost", {"scale": "lots"}, "valid number"),
        ("novelty", {"observation": "x", "table_size": 2**40}, "less than or equal to 67108864"),
        ("novelty", {"observation": "x", "resolution": 0.0}, "greater than or equal to 0.000001"),
        ("novelty", {}, "observation"),
        ("progress", {"observation": "x", "indices": []}, "at least 1 item"),
    ],
)
def test_reward_function_parameters_are_typed_and_bounded(name: str, parameters: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_reward_function(name, **parameters)


def test_every_reward_function_has_a_documented_config() -> None:
    for name, config in REWARD_FUNCTIONS.items():
        assert config.model_fields["function"].default == name
        for field_name, field in config.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"
    assert make_reward_function("alive", value=REWARD_LIMIT)  # the limit itself is allowed
    assert make_reward_function("progress", observation="x", indices=[0, -1]).indices == [0, -1]


def test_reward_functions_are_checked_against_the_env() -> None:
    base = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=1, seed=0)
    cases = [
        ("novelty", {"observation": "nope"}, "observation", "no observation 'nope'"),
        ("progress", {"observation": "state", "indices": [0, 99]}, "indices", r"indices \[99\] are outside"),
        ("action_cost", {}, "function", "needs continuous actions"),
    ]
    for name, parameters, field, message in cases:
        with pytest.raises(RewardFunctionError, match=f"reward function 'bonus': .*{message}") as caught:
            functions = {"bonus": make_reward_function(name, **parameters)}
            TransformedEnv(base, RewardChannels({"w": {"bonus": 1.0}}, functions=functions))
        assert (caught.value.component, caught.value.field) == ("bonus", field)


def test_novelty_counts_hashed_observations() -> None:
    novelty = make_reward_function("novelty", observation="x", scale=2.0)
    same = torch.zeros(1, 1, 3, dtype=torch.uint8)
    for visits in (1, 2, 3):
        bonus = novelty(*step_pair(same, same), "g")
        assert bonus.shape == (1, 1, 1)
        assert float(bonus) == pytest.approx(2.0 / math.sqrt(visits))
    fresh = torch.tensor([[[1, 2, 3]]], dtype=torch.uint8)
    assert float(novelty(*step_pair(same, fresh), "g")) == pytest.approx(2.0)
    # floats are binned to the resolution: 0.51 and 0.54 fall in the same bin of width 0.1
    floats = make_reward_function("novelty", observation="x", resolution=0.1)
    floats(*step_pair(torch.zeros(1, 1, 1), torch.tensor([[[0.51]]])), "g")
    assert float(floats(*step_pair(torch.zeros(1, 1, 1), torch.tensor([[[0.54]]])), "g")) == pytest.approx(1 / math.sqrt(2))


def test_progress_is_the_decrease_of_a_distance() -> None:
    progress = make_reward_function("progress", observation="x")
    assert float(progress(*step_pair(torch.tensor([[[5.0]]]), torch.tensor([[[3.0]]])), "g")) == pytest.approx(2.0)
    # a relative position: the distance is the norm of the chosen elements
    vector = make_reward_function("progress", observation="x", indices=[1, 2], scale=0.5)
    before, after = torch.tensor([[[9.0, 3.0, 4.0]]]), torch.tensor([[[0.0, 0.0, 0.0]]])
    assert float(vector(*step_pair(before, after), "g")) == pytest.approx(2.5)


def test_alive_and_step_cost_are_constant() -> None:
    pair = step_pair(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1))
    assert torch.all(make_reward_function("alive", value=0.1)(*pair, "g") == 0.1)
    cost = make_reward_function("step_cost")(*pair, "g")
    assert cost.shape == (2, 3, 1) and torch.all(cost == -0.01)


def test_action_cost_is_the_squared_norm_of_continuous_actions() -> None:
    action = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    pair = step_pair(torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), action)
    cost = make_reward_function("action_cost", scale=0.1)(*pair, "g")
    assert torch.allclose(cost[:, 0, 0], torch.tensor([-0.5, 0.0]))
    discrete = step_pair(torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(TypeError, match="continuous"):
        make_reward_function("action_cost")(*discrete, "g")
