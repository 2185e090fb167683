"""Env state outside the TensorDicts: a restored env repeats exactly the steps that followed its capture."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs import TransformedEnv

from himo.envs.builtin import make_builtin_env
from himo.envs.env_state import can_capture, capture_env_state, restore_env_state
from himo.envs.registry import make_env
from himo.envs.rewards import Novelty, RewardChannels


def beacon_with_novelty(**kwargs) -> TransformedEnv:
    # Noise draws from the world's generator at every step; short episodes make partial resets draw layouts.
    base = make_builtin_env("beacon", num_envs=4, seed=0, max_steps=6, noise=0.1, **kwargs)
    channels = RewardChannels({"image": {"novel": 1.0, "explore": 1.0}}, functions={"novel": Novelty("direction")})
    return TransformedEnv(base, channels)


def steps(
    env: TransformedEnv, carried: TensorDictBase, actions: list[torch.Tensor]
) -> tuple[list[TensorDictBase], TensorDictBase]:
    """Each step's data from ``carried`` on, resetting finished envs as a collector does, and where it ends."""
    seen = []
    for action in actions:
        data, carried = env.step_and_maybe_reset(carried.clone().set(("agents", "action"), action))
        seen.append(data.clone())
    return seen, carried


def test_a_restored_env_repeats_the_steps_that_followed_its_capture() -> None:
    env = beacon_with_novelty()
    generator = torch.Generator().manual_seed(1)
    actions = [torch.randint(4, (4, 2), generator=generator) for _ in range(30)]
    _, start = steps(env, env.reset(), actions[:10])
    state = capture_env_state(env)
    first, _ = steps(env, start, actions[10:])
    assert any(data.get(("next", "done")).any() for data in first), "the steps must cross episode ends"
    restore_env_state(env, state)
    again, _ = steps(env, start, actions[10:])
    for expected, actual in zip(first, again, strict=True):
        for key in expected.keys(True, True):
            assert torch.equal(expected.get(key), actual.get(key)), key
    # Without restoring, the same actions lead elsewhere: the worlds and the visit counts moved on.
    moved_on, _ = steps(env, start, actions[10:])
    sound, novel = ("next", "agents", "observation", "sound"), ("next", "agents", "reward_components", "novel")
    assert not all(torch.equal(a.get(sound), b.get(sound)) for a, b in zip(first, moved_on))
    assert not all(torch.equal(a.get(novel), b.get(novel)) for a, b in zip(first, moved_on))


def test_state_of_another_configuration_is_refused() -> None:
    state = capture_env_state(beacon_with_novelty())
    with pytest.raises(ValueError, match="himo/beacon: saved grid"):
        restore_env_state(beacon_with_novelty(size=7), state)


def test_adapters_over_external_libraries_cannot_be_captured() -> None:
    env = make_env("gymnasium/CartPole-v1", num_envs=2, seed=0)
    assert not can_capture(env) and capture_env_state(env)["base"] is None
    assert can_capture(beacon_with_novelty())
