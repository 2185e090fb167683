"""Built-in multimodal multi-agent environments, reached as ``himo/<name>`` (see ``himo.envs.registry``).

``BUILTIN_ENVS`` maps each name to its TorchRL ``EnvBase`` class; every class takes
``num_envs``, ``seed``, ``device`` and its own validated kwargs.
"""

from __future__ import annotations

from typing import Any

from torchrl.envs import EnvBase

from himo.envs.builtin.beacon import BeaconEnv

BUILTIN_ENVS: dict[str, type[EnvBase]] = {"beacon": BeaconEnv}


def make_builtin_env(name: str, *, num_envs: int, seed: int, device: str = "cpu", **kwargs: Any) -> EnvBase:
    """Build the built-in env ``name`` with ``num_envs`` parallel copies.

    Unknown names, unknown kwargs and invalid values raise ``ValueError`` naming what is valid.
    """
    if name not in BUILTIN_ENVS:
        raise ValueError(f"unknown built-in env {name!r} (id 'himo/{name}'); valid names are {sorted(BUILTIN_ENVS)}")
    return BUILTIN_ENVS[name](num_envs=num_envs, seed=seed, device=device, **kwargs)


__all__ = ["BUILTIN_ENVS", "BeaconEnv", "make_builtin_env"]
