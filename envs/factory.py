"""Environments from a plain factory of the user's: ``python/<module>:<callable>``.

The callable is called with the scenario's ``env.kwargs`` (less the adapter's own: ``text_length``,
``vocabularies``, ``reward_components``, ``group_map``) and may return:

- a Gymnasium env: ``num_envs`` copies are stepped as ``gymnasium/...`` envs are (``himo.envs.gymnasium_adapter``);
- a PettingZoo ``ParallelEnv`` or ``AECEnv``: as ``pettingzoo/...`` envs are (``himo.envs.pettingzoo_adapter``);
- a TorchRL ``EnvBase`` already in himo's layout (each agent group's data under the group, ``[num_envs, agents,
  ...]``, a reward per group; see ``himo.envs.keys``): used as it is when its batch size is ``[num_envs]``, or
  ``num_envs`` copies in a ``SerialEnv`` when it is unbatched.

The module is imported from the import path; a scenario's ``env.python_path`` puts the user's folders on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import gymnasium
import torch
from pettingzoo import AECEnv, ParallelEnv
from torchrl.envs import EnvBase, SerialEnv

from himo.envs.constructor_errors import EnvConstructionError
from himo.envs.gymnasium_adapter import make_gymnasium_env
from himo.envs.pettingzoo_adapter import make_pettingzoo_env
from himo.envs.registry import agent_groups

ADAPTER_KWARGS = ("text_length", "vocabularies", "reward_components", "group_map")
"""``env.kwargs`` the adapters read themselves; every other one goes to the factory."""


def find_factory(name: str) -> Callable[..., Any]:
    """The callable ``module:attribute`` names, with a clear error where it cannot be found."""
    module_name, separator, attribute = name.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"a python env id looks like 'python/<module>:<callable>', e.g. python/my_envs:make_env; got {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"cannot import {module_name!r} for python/{name}: {error} (put its folder in env.python_path)"
        ) from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"python/{name}: module {module_name!r} has no callable {attribute!r}")
    return factory


def make_python_env(name: str, *, num_envs: int, seed: int, device: str = "cpu", **kwargs: Any) -> EnvBase:
    """``num_envs`` copies of what the factory ``name`` (``module:callable``) returns, stepped together."""
    factory = find_factory(name)
    adapter = {key: kwargs.pop(key) for key in ADAPTER_KWARGS if key in kwargs}
    try:
        probe = factory(**kwargs)
    except Exception as error:  # noqa: BLE001 - the user's factory runs here and may raise anything
        raise EnvConstructionError(name, None, kwargs, error) from error
    if isinstance(probe, gymnasium.Env):
        probe.close()
        group_map = adapter.pop("group_map", None)
        if group_map is not None:
            raise ValueError(f"python/{name} gives a Gymnasium env (one agent): group_map is for PettingZoo envs")
        return make_gymnasium_env(name, num_envs=num_envs, seed=seed, device=device, constructor=factory, **adapter, **kwargs)
    if isinstance(probe, (ParallelEnv, AECEnv)):
        parallel = isinstance(probe, ParallelEnv)
        provider = SimpleNamespace(**{"parallel_env" if parallel else "env": factory})
        api = "parallel" if parallel else "aec"
        return make_pettingzoo_env(name, num_envs=num_envs, seed=seed, device=device, module=provider, api=api, **adapter, **kwargs)
    if isinstance(probe, EnvBase):
        if adapter:
            raise ValueError(f"python/{name} gives a TorchRL env: {sorted(adapter)} are for Gymnasium and PettingZoo envs")
        return _torchrl_env(name, probe, partial(factory, **kwargs), num_envs, seed, device)
    raise ValueError(
        f"python/{name} returned a {type(probe).__name__}; expected a gymnasium.Env, a PettingZoo ParallelEnv or "
        "AECEnv, or a TorchRL EnvBase"
    )


def _torchrl_env(name: str, probe: EnvBase, factory: Callable[[], EnvBase], num_envs: int, seed: int, device: str) -> EnvBase:
    """The factory's TorchRL env batched ``[num_envs]``, checked for himo's layout."""
    if probe.batch_size == torch.Size([num_envs]):
        env = probe
    elif probe.batch_size == torch.Size([]):
        probe.close()
        env = SerialEnv(num_envs, factory, device=device)
    else:
        raise ValueError(
            f"python/{name} gave a TorchRL env of batch size {list(probe.batch_size)}; expected [] (one copy) or "
            f"[{num_envs}] (env.num_envs)"
        )
    if not agent_groups(env):
        raise ValueError(
            f"python/{name} gave a TorchRL env without agent groups: himo reads each group's data under the group "
            f"(e.g. ('agent', 'observation', ...) [num_envs, agents, ...]) with a reward per group, "
            f"('agent', 'reward'); its reward keys are {list(env.full_reward_spec.keys(True, True))}"
        )
    env.set_seed(seed)
    return env
