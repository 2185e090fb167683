"""Environment families, keyed by the prefix of a scenario's ``env.id`` (``family/name``).

Every factory takes the name after the prefix and returns a batched TorchRL ``EnvBase`` whose
batch size is ``[num_envs]``; per-agent data lives under each group with dims
``[num_envs, n_agents]`` (see ``himo.envs.keys``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from torchrl.envs import EnvBase

from himo.envs import keys


def _make_himo(name: str, *, num_envs: int, seed: int, device: str, **kwargs: Any) -> EnvBase:
    from himo.envs.builtin import make_builtin_env

    return make_builtin_env(name, num_envs=num_envs, seed=seed, device=device, **kwargs)


def _make_gymnasium(name: str, *, num_envs: int, seed: int, device: str, **kwargs: Any) -> EnvBase:
    from himo.envs.gymnasium_adapter import make_gymnasium_env

    return make_gymnasium_env(name, num_envs=num_envs, seed=seed, device=device, **kwargs)


def _make_pettingzoo(name: str, *, num_envs: int, seed: int, device: str, **kwargs: Any) -> EnvBase:
    from himo.envs.pettingzoo_adapter import make_pettingzoo_env

    return make_pettingzoo_env(name, num_envs=num_envs, seed=seed, device=device, **kwargs)


def _make_python(name: str, *, num_envs: int, seed: int, device: str, **kwargs: Any) -> EnvBase:
    from himo.envs.factory import make_python_env

    return make_python_env(name, num_envs=num_envs, seed=seed, device=device, **kwargs)


ENV_FAMILIES: dict[str, Callable[..., EnvBase]] = {
    "himo": _make_himo,
    "gymnasium": _make_gymnasium,
    "pettingzoo": _make_pettingzoo,
    "python": _make_python,
}


def split_env_id(env_id: str) -> tuple[str, str]:
    """Split ``"family/name"`` into its parts; raises ``ValueError`` naming the valid families."""
    family, separator, name = env_id.partition("/")
    if not separator or not name:
        raise ValueError(f"env id {env_id!r} must look like 'family/name', family one of {sorted(ENV_FAMILIES)}")
    if family not in ENV_FAMILIES:
        raise ValueError(f"unknown env family {family!r} in {env_id!r}; expected one of {sorted(ENV_FAMILIES)}")
    return family, name


def make_env(env_id: str, *, num_envs: int, seed: int, device: str = "cpu", **kwargs: Any) -> EnvBase:
    """Build the batched TorchRL environment named by ``env_id`` (e.g. ``"himo/beacon"``)."""
    family, name = split_env_id(env_id)
    return ENV_FAMILIES[family](name, num_envs=num_envs, seed=seed, device=device, **kwargs)


def put_on_import_path(folders: Sequence[str]) -> None:
    """Put ``folders`` at the front of the import path (the first named first, each once): where a user's env
    module is imported from (a scenario's ``env.python_path``)."""
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def agent_groups(env: EnvBase) -> list[str]:
    """The agent groups of a built env: the sub-tensordicts that hold a reward."""
    return [key[0] for key in env.full_reward_spec.keys(True, True) if len(key) == 2 and key[1] == keys.REWARD]
