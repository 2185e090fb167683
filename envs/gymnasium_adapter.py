"""Gymnasium single-agent environments as batched TorchRL environments of one group ``"agent"``.

``num_envs`` copies run in a ``gymnasium.vector.SyncVectorEnv`` with auto-reset disabled; one
TensorDict step advances all of them, and TorchRL's partial resets (``_reset`` entries) reset only
the copies that finished, through the vector env's ``reset_mask``. So the observation stored after a
done is the first one of the next episode, as TorchRL expects, and no step is wasted.

Keys (``N = num_envs``, one agent per copy):

- ``("agent", "observation", name)``: ``[N, 1, ...]`` per entry (``himo.envs.spaces`` describes the layout:
  ``Dict`` entries, ``"state"``, channels-first images, text as ``input_ids`` + ``attention_mask``);
- ``("agent", "action")``: ``[N, 1]`` int64 for ``Discrete`` actions, ``[N, 1, d]`` for ``Box``;
- ``("agent", "action_mask")``: ``[N, 1, actions]`` bool, the legal actions, where a ``Dict`` observation has an
  ``"action_mask"`` entry (it is then not an observation);
- ``("agent", "reward")``: ``[N, 1, 1]``;
- ``("agent", "reward_components", name)``: ``[N, 1, 1]`` for each component the env reports in
  ``info["reward_components"]``, declared in the **observation** spec (like the built-in envs and
  TorchRL's info readers, so the reward spec keeps one reward per group) and zero after a reset;
- ``done`` / ``terminated`` / ``truncated``: ``[N, 1]`` at the root and ``[N, 1, 1]`` under ``"agent"``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.libs.gym import _gym_to_torchrl_spec_transform, set_gym_backend
from transformers import PreTrainedTokenizerBase

from himo.envs import keys
from himo.envs.constructor_errors import EnvConstructionError
from himo.envs.spaces import ObservationConverter, done_specs, reset_mask

GROUP = "agent"
# Environment id prefixes that need an optional package, and the pip extra that installs it.
OPTIONAL_PACKAGES = {"MiniGrid-": ("minigrid", "minigrid"), "BabyAI-": ("minigrid", "minigrid")}


def import_optional(module: str, extra: str, needed_for: str) -> Any:
    """Import ``module``, or raise an ``ImportError`` naming the pip extra that installs it."""
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"{needed_for} needs the optional package {module!r}: pip install 'himo[{extra}]'"
        ) from error


def declared_reward_components(metadata: Mapping[str, Any], reward_components: Sequence[str] | None) -> list[str]:
    """Reward component names: given explicitly, else the env's ``metadata["reward_components"]``."""
    if reward_components is None:
        reward_components = metadata.get("reward_components", ())
    return list(dict.fromkeys(reward_components))


class GymnasiumVectorEnv(EnvBase):
    """A ``gymnasium.vector.SyncVectorEnv`` as a TorchRL env with one group ``"agent"`` of one agent.

    Args:
        vector_env: the vector env; it must have ``autoreset_mode=AutoresetMode.DISABLED``.
        text_length: tokens per text observation.
        vocabularies: per text observation name, its words, a word-list file or a tokenizer folder
            (MiniGrid missions have a default).
        reward_components: names of the reward components the env reports in
            ``info["reward_components"]`` (a component missing from a step's info counts 0).
        quiet_reset: swallow what the envs print on stdout while resetting (BabyAI's rejection sampling).
        device: device of the tensors.
    """

    def __init__(
        self,
        vector_env: gymnasium.vector.SyncVectorEnv,
        *,
        text_length: int = 64,
        vocabularies: Mapping[str, Sequence[str] | str] | None = None,
        reward_components: Sequence[str] = (),
        quiet_reset: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        if vector_env.autoreset_mode != gymnasium.vector.AutoresetMode.DISABLED:
            raise ValueError("GymnasiumVectorEnv needs a vector env with autoreset_mode=AutoresetMode.DISABLED")
        num_envs = vector_env.num_envs
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.vector_env = vector_env
        self.num_envs = num_envs
        self.quiet_reset = quiet_reset
        self.reward_components = list(reward_components)
        space = vector_env.single_observation_space
        # A Dict observation's "action_mask" is the legal actions, (group, "action_mask"), not an observation.
        self.action_mask_size = (
            int(space[keys.ACTION_MASK].shape[-1])
            if isinstance(space, gymnasium.spaces.Dict) and keys.ACTION_MASK in space.spaces
            else None
        )
        self.converter = ObservationConverter(
            space, text_length=text_length, vocabularies=vocabularies, exclude=(keys.ACTION_MASK,), device=self.device
        )
        self._pending_seed: int | None = None
        self._make_specs()

    @property
    def tokenizers(self) -> dict[str, PreTrainedTokenizerBase]:
        """Tokenizer of each text observation, keyed by observation name."""
        return self.converter.tokenizers

    @property
    def untokenized(self) -> list[str]:
        """Text observations left out for want of a vocabulary (``env.kwargs.vocabularies``)."""
        return self.converter.untokenized

    def _make_specs(self) -> None:
        agent_shape = (self.num_envs, 1)
        with set_gym_backend("gymnasium"):
            action = _gym_to_torchrl_spec_transform(
                self.vector_env.single_action_space, device=self.device, categorical_action_encoding=True
            )
        self.action_spec = Composite(
            {GROUP: Composite({keys.ACTION: action.expand(*agent_shape, *action.shape)}, shape=agent_shape)},
            shape=self.batch_size,
        )
        group_observation: dict[str, Composite] = {keys.OBSERVATION: self.converter.spec.expand(*agent_shape)}
        if self.action_mask_size is not None:
            group_observation[keys.ACTION_MASK] = Categorical(
                2, shape=(*agent_shape, self.action_mask_size), dtype=torch.bool, device=self.device
            )
        if self.reward_components:
            group_observation[keys.REWARD_COMPONENTS] = Composite(
                {name: Unbounded(shape=(*agent_shape, 1), device=self.device) for name in self.reward_components},
                shape=agent_shape,
            )
        self.observation_spec = Composite(
            {GROUP: Composite(group_observation, shape=agent_shape)}, shape=self.batch_size
        )
        self.reward_spec = Composite(
            {GROUP: Composite({keys.REWARD: Unbounded(shape=(*agent_shape, 1), device=self.device)}, shape=agent_shape)},
            shape=self.batch_size,
        )
        self.done_spec = Composite(
            {
                **done_specs(self.batch_size, self.device),
                GROUP: Composite(done_specs(agent_shape, self.device), shape=agent_shape),
            },
            shape=self.batch_size,
        )

    def _set_seed(self, seed: int | None) -> None:
        # Gymnasium seeds at reset: copy i gets seed + i at the next reset.
        self._pending_seed = seed

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = reset_mask(tensordict, [GROUP], self.num_envs)
        seed, self._pending_seed = self._pending_seed, None
        with contextlib.redirect_stdout(io.StringIO()) if self.quiet_reset else contextlib.nullcontext():
            observations, _ = self.vector_env.reset(seed=seed, options={"reset_mask": mask})
        done = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        return self._output(observations, None, done, done, {})

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, keys.ACTION))[:, 0].cpu().numpy()
        observations, reward, terminated, truncated, info = self.vector_env.step(action)
        as_column = partial(torch.tensor, device=self.device)
        return self._output(
            observations,
            as_column(reward, dtype=torch.float32).reshape(self.num_envs, 1),
            as_column(terminated, dtype=torch.bool).reshape(self.num_envs, 1),
            as_column(truncated, dtype=torch.bool).reshape(self.num_envs, 1),
            info,
        )

    def _output(
        self,
        observations: Any,
        reward: torch.Tensor | None,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        info: Mapping[str, Any],
    ) -> TensorDictBase:
        agent_shape = (self.num_envs, 1)
        done = terminated | truncated
        group: dict[str, Any] = {
            keys.OBSERVATION: self.converter.convert(observations, agent_shape),
            keys.DONE: done.unsqueeze(-1),
            keys.TERMINATED: terminated.unsqueeze(-1),
            keys.TRUNCATED: truncated.unsqueeze(-1),
        }
        if reward is not None:
            group[keys.REWARD] = reward.unsqueeze(-1)
        if self.action_mask_size is not None:
            legal = torch.as_tensor(np.asarray(observations[keys.ACTION_MASK]), dtype=torch.bool, device=self.device)
            group[keys.ACTION_MASK] = legal.reshape(*agent_shape, self.action_mask_size)
        if self.reward_components:
            # After a reset (no reward yet) every component is 0: the reset info is not a step's.
            reported = info.get(keys.REWARD_COMPONENTS, {}) if reward is not None else {}
            group[keys.REWARD_COMPONENTS] = self._components(reported)
        return TensorDict(
            {GROUP: TensorDict(group, batch_size=agent_shape, device=self.device),
             keys.DONE: done, keys.TERMINATED: terminated, keys.TRUNCATED: truncated},
            batch_size=self.batch_size,
            device=self.device,
        )

    def _components(self, reported: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        # A vector env's info holds one array per name plus a "_name" mask of the copies that reported it.
        unknown = [name for name in reported if not name.startswith("_") and name not in self.reward_components]
        if unknown:
            raise KeyError(
                f"env reported undeclared reward components {unknown}; declare them with "
                f"reward_components=[...] or the env's metadata['reward_components'] (declared: {self.reward_components})"
            )
        components = {}
        for name in self.reward_components:
            value = reported.get(name)
            if value is None:
                components[name] = torch.zeros(self.num_envs, 1, 1, device=self.device)
            else:
                present = reported.get(f"_{name}", True)
                value = np.where(present, np.asarray(value, dtype=np.float32), 0.0)
                components[name] = torch.tensor(value, dtype=torch.float32, device=self.device).reshape(self.num_envs, 1, 1)
        return components

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Close the vector env and its copies."""
        self.vector_env.close()
        super().close(raise_if_closed=raise_if_closed)


def make_gymnasium_env(
    name: str,
    *,
    num_envs: int,
    seed: int,
    device: str = "cpu",
    text_length: int = 64,
    vocabularies: Mapping[str, Sequence[str] | str] | None = None,
    reward_components: Sequence[str] | None = None,
    constructor: Callable[..., gymnasium.Env] | None = None,
    **kwargs: Any,
) -> GymnasiumVectorEnv:
    """Build ``num_envs`` copies of the gymnasium env ``name``, stepped together (see the module doc).

    Args:
        name: a gymnasium id, e.g. ``"CartPole-v1"``, ``"BabyAI-GoToRedBallGrey-v0"``,
            ``"MiniGrid-DoorKey-5x5-v0"`` (MiniGrid/BabyAI need the ``minigrid`` extra).
        num_envs: number of copies advanced by one TensorDict step.
        seed: copy ``i`` is seeded with ``seed + i`` at the first reset.
        device: device of the tensors.
        text_length: tokens per text observation (64 covers every BabyAI mission).
        vocabularies: per text observation, its words, a word-list file or a tokenizer folder; MiniGrid
            missions use ``himo.envs.vocabularies.MINIGRID_WORDS``.
        reward_components: names reported in ``info["reward_components"]``; defaults to the env's
            ``metadata["reward_components"]``.
        constructor: builds one copy from ``kwargs`` instead of ``gymnasium.make(name, ...)`` (a user's factory).
        **kwargs: passed to ``gymnasium.make`` (or ``constructor``).
    """
    for prefix, (module, extra) in OPTIONAL_PACKAGES.items():
        if name.startswith(prefix):
            import_optional(module, extra, f"gymnasium env {name!r}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    try:
        vector_env = gymnasium.vector.SyncVectorEnv(
            [partial(constructor, **kwargs) if constructor else partial(gymnasium.make, name, **kwargs)] * num_envs,
            copy=False,  # the adapter copies into tensors
            autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED,
        )
    except Exception as error:  # noqa: BLE001 - the env's own constructor runs here and may raise anything
        raise EnvConstructionError(name if constructor else "gymnasium.make", None if constructor else name, kwargs, error) from error
    env = GymnasiumVectorEnv(
        vector_env,
        text_length=text_length,
        vocabularies=vocabularies,
        reward_components=declared_reward_components(vector_env.metadata, reward_components),
        quiet_reset=name.startswith("BabyAI-"),
        device=device,
    )
    env.set_seed(seed)
    return env
