"""What an env holds between steps outside the collector's TensorDict, captured so that a run resumes exactly.

A TorchRL collector carries the TensorDict each step starts from, and the transforms keep their running
values in it (step counts, episode returns, the option state). What it does not carry lives in env objects:

- the base env's own state: the built-in worlds' tensors and random generator, the last observation;
  an env offers it by implementing :class:`CapturableEnv`. The adapters over external libraries
  (Gymnasium, PettingZoo) do not: their state lives in those libraries' objects;
- the state of reward functions (``novelty``'s visit counts): plain Python objects, copied whole.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from torchrl.envs import Compose, EnvBase, Transform, TransformedEnv

from himo.envs.rewards import RewardChannels


@runtime_checkable
class CapturableEnv(Protocol):
    """An env whose state between steps can be copied and restored."""

    def capture_state(self) -> dict[str, Any]:
        """A copy of the state, unaffected by later steps (it may be saved with ``torch.save``)."""
        ...

    def restore_state(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`capture_state` returned, as if the steps since had not happened."""
        ...


def base_env(env: EnvBase) -> EnvBase:
    """The env under all of ``env``'s transforms."""
    return env.base_env if isinstance(env, TransformedEnv) else env


def can_capture(env: EnvBase) -> bool:
    """Whether the state of ``env`` (under its transforms) can be captured."""
    return isinstance(base_env(env), CapturableEnv)


def _reward_channels(env: EnvBase) -> Iterator[RewardChannels]:
    def walk(transform: Transform) -> Iterator[RewardChannels]:
        if isinstance(transform, Compose):
            for part in transform.transforms:
                yield from walk(part)
        elif isinstance(transform, RewardChannels):
            yield transform

    if isinstance(env, TransformedEnv):
        yield from walk(env.transform)


def capture_env_state(env: EnvBase) -> dict[str, Any]:
    """The state of ``env`` that its TensorDicts do not hold (``"base"`` is None when the base env offers none)."""
    base = base_env(env)
    return {
        "base": base.capture_state() if isinstance(base, CapturableEnv) else None,
        "reward_functions": [copy.deepcopy(channels.functions) for channels in _reward_channels(env)],
    }


def restore_env_state(env: EnvBase, state: dict[str, Any], *, restore_base: bool = True) -> None:
    """Restore what :func:`capture_env_state` returned: reward functions, and the base env's if ``restore_base``.

    Raises ``ValueError`` when the state belongs to an env built differently.
    """
    channels = list(_reward_channels(env))
    saved_functions = state["reward_functions"]
    if len(saved_functions) != len(channels) or any(
        set(functions) != set(transform.functions) for functions, transform in zip(saved_functions, channels)
    ):
        raise ValueError("the saved reward functions are not this env's")
    for functions, transform in zip(saved_functions, channels):
        transform.functions.update(copy.deepcopy(functions))
    if restore_base:
        own = base_env(env)
        if state["base"] is None or not isinstance(own, CapturableEnv):
            raise ValueError(f"no saved state for {type(own).__name__} to restore")
        own.restore_state(state["base"])
