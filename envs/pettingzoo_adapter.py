"""PettingZoo environments as batched multi-agent TorchRL environments.

``name`` is the module of a PettingZoo environment, e.g. ``"mpe2.simple_speaker_listener_v4"``.

- **Parallel** envs (the module has ``parallel_env``): ``PettingZooParallelBatchEnv`` steps
  ``num_envs`` raw copies in one TensorDict step and writes the batch straight into tensors.
  A copy's episode ends when any of its agents is done (TorchRL's ``done_on_any`` for parallel
  envs) and only the finished copies are reset.
- **AEC** envs (``api="aec"``, or a module without ``parallel_env``): TorchRL's
  ``PettingZooWrapper(use_mask=True)``, which masks the agents not acting, ``num_envs`` times in a
  ``SerialEnv``. ``(group, "mask")`` says which agent acts.

Agents are grouped the TorchRL way (``group_map``; by default by name prefix before ``_<index>``,
so ``speaker_0`` -> ``speaker``). Keys (``N = num_envs``, ``A`` agents in the group):
``(group, "observation", name)`` ``[N, A, ...]`` (layout of ``himo.envs.spaces``, nested ``Dict`` spaces
included), ``(group, "action")`` ``[N, A]`` int64 for discrete actions, ``(group, "action_mask")``
where the env provides one, ``(group, "reward")`` ``[N, A, 1]``, and ``done``/``terminated``/
``truncated`` ``[N, 1]`` at the root and ``[N, A, 1]`` per group.

Reward components (parallel envs): the names in ``metadata["reward_components"]``, read from
``infos[agent]["reward_components"]``, become ``(group, "reward_components", name)`` ``[N, A, 1]``,
declared in the **observation** spec (like the built-in envs and TorchRL's info readers) and zero
after a reset.

Text an env emits already tokenized: a parallel env may carry ``tokenizers`` (``{name: tokenizer}``,
e.g. ``himo.envs.builtin.beacon_pettingzoo``); ``env.tokenizers`` then includes them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase, PettingZooWrapper, SerialEnv
from torchrl.envs.libs.gym import _gym_to_torchrl_spec_transform, set_gym_backend
from torchrl.envs.utils import MarlGroupMapType, check_marl_grouping
from transformers import PreTrainedTokenizerBase

from himo.envs import keys
from himo.envs.constructor_errors import EnvConstructionError
from himo.envs.gymnasium_adapter import declared_reward_components, import_optional
from himo.envs.spaces import STATE, ObservationConverter, done_specs, reset_mask

# Module prefixes that live in an optional package, and the pip extra that installs it.
OPTIONAL_PACKAGES = {"mpe2": "mpe"}
GroupMap = Mapping[str, Sequence[str]] | MarlGroupMapType | None


def default_group_map(agent_names: Sequence[str]) -> dict[str, list[str]]:
    """TorchRL's default grouping for parallel envs: ``"name_<int>"`` agents share group ``"name"``."""
    group_map: dict[str, list[str]] = {}
    for agent in agent_names:
        prefix, separator, index = agent.rpartition("_")
        group = prefix if separator and prefix and index.isdigit() else agent
        group_map.setdefault(group, []).append(agent)
    return group_map


def resolve_group_map(group_map: GroupMap, agent_names: Sequence[str]) -> dict[str, list[str]]:
    """A checked ``{group: [agent, ...]}`` from a mapping, a ``MarlGroupMapType`` or ``None`` (default)."""
    if group_map is None:
        resolved = default_group_map(agent_names)
    elif isinstance(group_map, MarlGroupMapType):
        resolved = group_map.get_group_map(list(agent_names))
    else:
        resolved = {group: list(agents) for group, agents in group_map.items()}
    check_marl_grouping(resolved, list(agent_names))
    return resolved


class PettingZooParallelBatchEnv(EnvBase):
    """``num_envs`` copies of a PettingZoo parallel env advanced together in one TensorDict step.

    Args:
        envs: the copies (``pettingzoo.ParallelEnv``), all built the same way.
        group_map: agents per group (see ``resolve_group_map``).
        text_length: tokens per text observation.
        vocabularies: per text observation name, its words, a word-list file or a tokenizer folder.
        reward_components: names the env reports in ``infos[agent]["reward_components"]``
            (a component missing from a step's info counts 0).
        device: device of the tensors.
    """

    def __init__(
        self,
        envs: Sequence[Any],
        *,
        group_map: GroupMap = None,
        text_length: int = 64,
        vocabularies: Mapping[str, Sequence[str] | str] | None = None,
        reward_components: Sequence[str] = (),
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(device=device, batch_size=torch.Size([len(envs)]))
        self.envs = list(envs)
        self.num_envs = len(envs)
        first = self.envs[0]
        self.group_map = resolve_group_map(group_map, first.possible_agents)
        self.reward_components = list(reward_components)
        self._converter_options = dict(
            text_length=text_length, vocabularies=vocabularies, exclude=(keys.ACTION_MASK,), device=self.device
        )
        self.converters: dict[str, ObservationConverter] = {}
        self.action_masks: dict[str, bool] = {}
        for group, agents in self.group_map.items():
            space = first.observation_space(agents[0])
            self.action_masks[group] = isinstance(space, gymnasium.spaces.Dict) and keys.ACTION_MASK in space.spaces
            # Agents of a group share the conversion; their specs are stacked (bounds may differ).
            self.converters[group] = ObservationConverter(space, **self._converter_options)
        self._observations: list[dict[str, Any]] = [{} for _ in self.envs]
        self._pending_seed: int | None = None
        self._make_specs()

    @property
    def tokenizers(self) -> dict[str, PreTrainedTokenizerBase]:
        """Tokenizer of each text observation, keyed by observation name (over all groups).

        The raw env's own ``tokenizers`` attribute (for text it emits as token ids) comes first;
        text spaces tokenized here are added.
        """
        provided = getattr(self.envs[0], "tokenizers", None)
        tokenizers = dict(provided) if isinstance(provided, Mapping) else {}
        for converter in self.converters.values():
            tokenizers.update(converter.tokenizers)
        return tokenizers

    @property
    def untokenized(self) -> list[str]:
        """Text observations left out for want of a vocabulary (``env.kwargs.vocabularies``), over all groups."""
        return sorted({name for converter in self.converters.values() for name in converter.untokenized})

    def _agent_shape(self, group: str) -> tuple[int, int]:
        return (self.num_envs, len(self.group_map[group]))

    def _make_specs(self) -> None:
        first = self.envs[0]
        action, observation, reward = (Composite(shape=self.batch_size) for _ in range(3))
        done = Composite(done_specs(self.batch_size, self.device), shape=self.batch_size)
        for group, agents in self.group_map.items():
            shape = self._agent_shape(group)
            with set_gym_backend("gymnasium"):
                agent_actions = [
                    _gym_to_torchrl_spec_transform(
                        first.action_space(agent), device=self.device, categorical_action_encoding=True
                    )
                    for agent in agents
                ]
            group_action = torch.stack(agent_actions, 0)
            action[group] = Composite({keys.ACTION: group_action.expand(self.num_envs, *group_action.shape)}, shape=shape)
            agent_observations = [
                ObservationConverter(first.observation_space(agent), **self._converter_options).spec for agent in agents
            ]
            group_observation = {keys.OBSERVATION: torch.stack(agent_observations, 0).expand(*shape)}
            if self.action_masks[group]:
                group_observation[keys.ACTION_MASK] = Categorical(
                    2, shape=(*shape, first.action_space(agents[0]).n), dtype=torch.bool, device=self.device
                )
            if self.reward_components:
                group_observation[keys.REWARD_COMPONENTS] = Composite(
                    {name: Unbounded(shape=(*shape, 1), device=self.device) for name in self.reward_components}, shape=shape
                )
            observation[group] = Composite(group_observation, shape=shape)
            reward[group] = Composite({keys.REWARD: Unbounded(shape=(*shape, 1), device=self.device)}, shape=shape)
            done[group] = Composite(done_specs(shape, self.device), shape=shape)
        self.action_spec, self.observation_spec, self.reward_spec, self.done_spec = action, observation, reward, done

    def _set_seed(self, seed: int | None) -> None:
        # Copy i gets seed + i at the next reset, as gymnasium vector envs do.
        self._pending_seed = seed

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = reset_mask(tensordict, list(self.group_map), self.num_envs)
        seed, self._pending_seed = self._pending_seed, None
        for index in np.flatnonzero(mask):
            observations, _ = self.envs[index].reset(seed=None if seed is None else seed + int(index))
            self._observations[index] = dict(observations)
        return self._output(None, None, None, None)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions = {group: tensordict.get((group, keys.ACTION)).cpu().numpy() for group in self.group_map}
        rewards, terminations, truncations, infos = [], [], [], []
        for index, env in enumerate(self.envs):
            action_dict = {
                agent: actions[group][index, position]
                for group, agents in self.group_map.items()
                for position, agent in enumerate(agents)
            }
            observations, reward, terminated, truncated, info = env.step(action_dict)
            # An agent absent from the step's observations keeps its last one.
            self._observations[index].update(observations)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            infos.append(info)
        return self._output(rewards, terminations, truncations, infos)

    def _per_agent(self, group: str, dicts: Sequence[Mapping[str, Any]], missing: Any, dtype: torch.dtype) -> torch.Tensor:
        """``[N, A, 1]`` tensor of ``dicts[copy][agent]`` (``missing`` where an agent is absent)."""
        values = [[copy.get(agent, missing) for agent in self.group_map[group]] for copy in dicts]
        return torch.tensor(values, dtype=dtype, device=self.device).unsqueeze(-1)

    def _output(
        self,
        rewards: Sequence[Mapping[str, float]] | None,
        terminations: Sequence[Mapping[str, bool]] | None,
        truncations: Sequence[Mapping[str, bool]] | None,
        infos: Sequence[Mapping[str, Any]] | None,
    ) -> TensorDictBase:
        output = TensorDict(batch_size=self.batch_size, device=self.device)
        any_terminated = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        any_truncated = any_terminated.clone()
        for group, agents in self.group_map.items():
            shape = self._agent_shape(group)
            group_data: dict[str, Any] = {keys.OBSERVATION: self._observation(group)}
            if self.action_masks[group]:
                masks = [[copy[agent][keys.ACTION_MASK] for agent in agents] for copy in self._observations]
                group_data[keys.ACTION_MASK] = torch.tensor(np.asarray(masks), dtype=torch.bool, device=self.device)
            if rewards is None:
                terminated = torch.zeros(*shape, 1, dtype=torch.bool, device=self.device)
                truncated = terminated.clone()
            else:
                terminated = self._per_agent(group, terminations, True, torch.bool)
                truncated = self._per_agent(group, truncations, True, torch.bool)
                group_data[keys.REWARD] = self._per_agent(group, rewards, 0.0, torch.float32)
            if self.reward_components:
                group_data[keys.REWARD_COMPONENTS] = self._components(group, infos)
            group_data.update({keys.DONE: terminated | truncated, keys.TERMINATED: terminated, keys.TRUNCATED: truncated})
            output.set(group, TensorDict(group_data, batch_size=shape, device=self.device))
            any_terminated |= terminated.any(1)
            any_truncated |= truncated.any(1)
        output.update(
            {keys.DONE: any_terminated | any_truncated, keys.TERMINATED: any_terminated, keys.TRUNCATED: any_truncated}
        )
        return output

    def _observation(self, group: str) -> TensorDictBase:
        converter = self.converters[group]
        items = [copy[agent] for copy in self._observations for agent in self.group_map[group]]
        return converter.convert(converter.collate(items), self._agent_shape(group))

    def _components(self, group: str, infos: Sequence[Mapping[str, Any]] | None) -> dict[str, torch.Tensor]:
        """``{name: [N, A, 1]}`` from the step's infos; zeros after a reset (``infos`` is ``None``)."""
        if infos is None:
            shape = (*self._agent_shape(group), 1)
            return {name: torch.zeros(shape, device=self.device) for name in self.reward_components}
        reported = [
            {agent: info.get(agent, {}).get(keys.REWARD_COMPONENTS, {}) for agent in self.group_map[group]} for info in infos
        ]
        unknown = {name for copy in reported for agent in copy.values() for name in agent} - set(self.reward_components)
        if unknown:
            raise KeyError(
                f"env reported undeclared reward components {sorted(unknown)}; declare them with "
                f"reward_components=[...] or the env's metadata['reward_components'] (declared: {self.reward_components})"
            )
        return {
            name: torch.tensor(
                [[copy[agent].get(name, 0.0) for agent in self.group_map[group]] for copy in reported],
                dtype=torch.float32, device=self.device,
            ).unsqueeze(-1)
            for name in self.reward_components
        }

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Close every copy."""
        for env in self.envs:
            env.close()
        super().close(raise_if_closed=raise_if_closed)


def _dict_observations(env: Any) -> Any:
    """Wrap an AEC env so that a non-``Dict`` observation becomes ``{"state": observation}``."""
    from pettingzoo.utils.wrappers import BaseWrapper

    class DictObservations(BaseWrapper):
        def observation_space(self, agent: str) -> gymnasium.Space:
            space = self.env.observation_space(agent)
            return space if isinstance(space, gymnasium.spaces.Dict) else gymnasium.spaces.Dict({STATE: space})

        def observe(self, agent: str) -> Any:
            observation = self.env.observe(agent)
            if isinstance(self.env.observation_space(agent), gymnasium.spaces.Dict):
                return observation
            return {STATE: observation}

    return DictObservations(env)


def _make_aec_copy(module: Any, group_map: GroupMap, kwargs: Mapping[str, Any]) -> PettingZooWrapper:
    return PettingZooWrapper(
        _dict_observations(module.env(**kwargs)), use_mask=True, group_map=group_map, categorical_actions=True
    )


def make_pettingzoo_env(
    name: str,
    *,
    num_envs: int,
    seed: int,
    device: str = "cpu",
    group_map: GroupMap = None,
    api: str | None = None,
    text_length: int = 64,
    vocabularies: Mapping[str, Sequence[str] | str] | None = None,
    reward_components: Sequence[str] | None = None,
    module: Any = None,
    **kwargs: Any,
) -> EnvBase:
    """Build ``num_envs`` copies of the PettingZoo env module ``name`` stepped together (see the module doc).

    Args:
        name: the env's module, e.g. ``"mpe2.simple_speaker_listener_v4"`` (mpe2 needs the ``mpe`` extra).
        num_envs: copies advanced by one TensorDict step.
        seed: copy ``i`` is seeded with ``seed + i`` at the first reset.
        device: device of the tensors.
        group_map: ``{group: [agent, ...]}`` or a ``MarlGroupMapType``; default groups by name prefix.
        api: ``"parallel"`` or ``"aec"``; default parallel when the module has ``parallel_env``.
        text_length: tokens per text observation (parallel envs).
        vocabularies: per text observation name, its words, a word-list file or a tokenizer folder
            (parallel envs).
        reward_components: names reported in ``infos[agent]["reward_components"]`` (parallel envs);
            defaults to the env's ``metadata["reward_components"]``.
        module: what provides ``parallel_env`` or ``env`` instead of the module ``name`` (a user's factory).
        **kwargs: passed to ``parallel_env(...)`` / ``env(...)``.
    """
    root = name.split(".")[0]
    if module is None and root in OPTIONAL_PACKAGES:
        import_optional(root, OPTIONAL_PACKAGES[root], f"pettingzoo env {name!r}")
    try:
        module = module or importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"cannot import the PettingZoo env module {name!r}: {error}") from error
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    if api is None:
        api = "parallel" if hasattr(module, "parallel_env") else "aec"
    if api == "parallel":
        try:
            envs = [module.parallel_env(**kwargs) for _ in range(num_envs)]
        except Exception as error:  # noqa: BLE001 - the env's own constructor runs here and may raise anything
            raise EnvConstructionError(f"{name}.parallel_env", None, kwargs, error) from error
        env: EnvBase = PettingZooParallelBatchEnv(
            envs,
            group_map=group_map,
            text_length=text_length,
            vocabularies=vocabularies,
            reward_components=declared_reward_components(envs[0].metadata, reward_components),
            device=device,
        )
    elif api == "aec":
        if reward_components:
            raise ValueError("reward components from info are supported for parallel PettingZoo envs only")
        try:  # SerialEnv builds one copy right away to read its specs
            env = SerialEnv(num_envs, partial(_make_aec_copy, module, group_map, kwargs), device=device)
        except Exception as error:  # noqa: BLE001 - the env's own constructor runs here and may raise anything
            raise EnvConstructionError(f"{name}.env", None, kwargs, error) from error
        env.set_seed(seed)
        # SerialEnv forwards attributes to its copies as lists: keep one group map and no text.
        env.group_map = env.group_map[0]
        env.tokenizers = {}
        env.untokenized = []
        return env
    else:
        raise ValueError(f"api must be 'parallel' or 'aec', got {api!r}")
    env.set_seed(seed)
    return env
