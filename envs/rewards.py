"""Reward channels: each worker learns from its own mix of named reward components.

Components of group ``g`` live at ``("next", g, "reward_components", name)`` ``[..., n_agents, 1]``
and every env declares them in its **observation** spec, the way TorchRL's info readers declare
info entries (as rewards they would make ``env.reward_key`` ambiguous and join ``RewardSum``'s
defaults); a reset writes them as zeros. They are:

- the env's own: the built-in envs write them; the Gymnasium / PettingZoo adapters copy
  ``info["reward_components"]``; the name ``"env"`` always means the team reward ``("next", g, "reward")``;
- computed: named reward functions (``REWARD_FUNCTIONS``) evaluated on each step's TensorDict.

``RewardChannels`` (a TorchRL transform) computes the functions, writes them as components (declared
next to the env's own, zero after a reset), and writes ``("next", g, "reward_channels", worker) =
sum(weight * component)`` for each worker's mix. Channels are declared in the reward spec, so
``RewardSum`` can sum episode returns per channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import Transform

from himo.envs import keys


class RewardFunction(Protocol):
    """A reward computed from one step: data at ``t`` (``tensordict``) and ``t+1`` (``next_tensordict``)."""

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        """Reward of every agent of ``group``, shaped like the team reward ``[..., n_agents, 1]``."""
        ...


def _like_reward(next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
    return next_tensordict.get((group, keys.REWARD))


def _observation(tensordict: TensorDictBase, group: str, name: str) -> torch.Tensor:
    value = tensordict.get((group, keys.OBSERVATION, name), None)
    if value is None:
        available = list(tensordict.get((group, keys.OBSERVATION)).keys())
        raise KeyError(f"reward function needs observation {name!r} of group {group!r}; observations: {available}")
    if isinstance(value, TensorDictBase):  # text: count / compare its token ids
        value = value.get(keys.INPUT_IDS)
    return value


class Novelty:
    """Count-based exploration bonus ``scale / sqrt(n(s'))`` (#Exploration, Tang et al. 2017).

    ``n`` counts visits of the next observation ``observation`` (per group, over all envs and
    episodes), hashed into ``table_size`` buckets; floats are binned to ``resolution`` first.
    """

    def __init__(
        self, observation: str, scale: float = 1.0, table_size: int = 2**20, resolution: float = 0.1, seed: int = 0
    ) -> None:
        self.observation = observation
        self.scale = scale
        self.table_size = table_size
        self.resolution = resolution
        self.seed = seed
        self.counts: dict[str, torch.Tensor] = {}
        self._weights: dict[int, torch.Tensor] = {}

    def _hash(self, values: torch.Tensor) -> torch.Tensor:
        width = values.shape[-1]
        if width not in self._weights:
            generator = torch.Generator().manual_seed(self.seed)
            # Odd 62-bit multipliers; int64 products wrap around, which is a fine (deterministic) hash.
            self._weights[width] = torch.randint(0, 2**61, (width,), generator=generator) * 2 + 1
        weights = self._weights[width].to(values.device)
        return (values * weights).sum(-1).remainder(self.table_size)

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        reward = _like_reward(next_tensordict, group)
        values = _observation(next_tensordict, group, self.observation)
        values = values.reshape(*reward.shape[:-1], -1)
        if values.is_floating_point():
            values = torch.round(values / self.resolution)
        buckets = self._hash(values.long())
        counts = self.counts.get(group)
        if counts is None:
            counts = self.counts[group] = torch.zeros(self.table_size, dtype=torch.float32, device=reward.device)
        counts.index_put_((buckets.reshape(-1),), torch.ones(buckets.numel(), device=counts.device), accumulate=True)
        return (self.scale / counts[buckets].sqrt()).unsqueeze(-1)


class Progress:
    """Decrease of a distance observation, ``scale * (d_t - d_{t+1})``: positive when getting closer.

    ``observation`` holds the distance, or a vector whose Euclidean norm is the distance (only the
    elements ``indices`` of its last dimension if given, e.g. a relative position to the goal).
    It is the potential-based shaping term for the potential ``-d``, so it keeps optimal policies.
    """

    def __init__(self, observation: str, indices: Sequence[int] | None = None, scale: float = 1.0) -> None:
        self.observation = observation
        self.indices = list(indices) if indices is not None else None
        self.scale = scale

    def _distance(self, tensordict: TensorDictBase, group: str, shape: torch.Size) -> torch.Tensor:
        values = _observation(tensordict, group, self.observation).float().reshape(*shape[:-1], -1)
        if self.indices is not None:
            values = values[..., self.indices]
        return values.norm(dim=-1, keepdim=True) if values.shape[-1] > 1 else values

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        shape = _like_reward(next_tensordict, group).shape
        return self.scale * (self._distance(tensordict, group, shape) - self._distance(next_tensordict, group, shape))


class Alive:
    """``value`` on every step: a survival bonus (for envs whose episode ends on failure)."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        return torch.full_like(_like_reward(next_tensordict, group), self.value)


class StepCost:
    """``-value`` on every step: a time penalty that favours short episodes."""

    def __init__(self, value: float = 0.01) -> None:
        self.value = value

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        return torch.full_like(_like_reward(next_tensordict, group), -self.value)


class ActionCost:
    """``-scale * sum(action ** 2)``: the control cost of continuous actions."""

    def __init__(self, scale: float = 0.001) -> None:
        self.scale = scale

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        shape = _like_reward(next_tensordict, group).shape
        action = tensordict.get((group, keys.ACTION))
        if isinstance(action, TensorDictBase):
            raise TypeError(f"action_cost needs continuous actions; group {group!r} has a composite action")
        if not action.is_floating_point():
            raise TypeError(f"action_cost needs continuous actions; group {group!r} has {action.dtype} actions")
        return -self.scale * action.reshape(*shape[:-1], -1).pow(2).sum(-1, keepdim=True)


REWARD_FUNCTIONS: dict[str, Callable[..., RewardFunction]] = {
    "novelty": Novelty,
    "progress": Progress,
    "alive": Alive,
    "step_cost": StepCost,
    "action_cost": ActionCost,
}


def make_reward_function(name: str, **parameters: object) -> RewardFunction:
    """Build the registered reward function ``name`` with its ``parameters`` (a clear error otherwise)."""
    if name not in REWARD_FUNCTIONS:
        raise KeyError(f"unknown reward function {name!r}; available: {sorted(REWARD_FUNCTIONS)}")
    try:
        return REWARD_FUNCTIONS[name](**parameters)
    except TypeError as error:
        raise TypeError(f"reward function {name!r}: {error}") from error


class RewardChannels(Transform):
    """Writes each worker's reward channel, mixed from named reward components.

    Args:
        mixes: ``{worker: {component: weight}}``; a component is ``"env"`` (the team reward), a
            component the env reports, or a key of ``functions``.
        functions: ``{component: reward function}`` computed each step and written as components.
        groups: agent groups to write channels for; default every group with a team reward.
    """

    def __init__(
        self,
        mixes: Mapping[str, Mapping[str, float]],
        *,
        functions: Mapping[str, RewardFunction] | None = None,
        groups: Sequence[str] | None = None,
    ) -> None:
        super().__init__(in_keys=[], out_keys=[])
        self.mixes = {worker: {name: float(weight) for name, weight in mix.items()} for worker, mix in mixes.items()}
        self.functions = dict(functions or {})
        self.requested_groups = list(groups) if groups is not None else None
        clash = [name for name in self.functions if name == keys.ENV_REWARD_COMPONENT]
        if clash:
            raise ValueError(f"a reward function cannot be named {keys.ENV_REWARD_COMPONENT!r} (the team reward)")
        for worker, mix in self.mixes.items():
            bad = [name for name, weight in mix.items() if not math.isfinite(weight)]
            if bad:
                raise ValueError(f"worker {worker!r}: weights of {bad} are not finite numbers")

    def set_container(self, container: Transform | object) -> None:
        """Attach to an env; checks the mixes against the env's components right away when it can."""
        super().set_container(container)
        parent = self.parent
        if parent is not None:
            self.transform_output_spec(parent.output_spec)

    def _groups(self, reward_spec: Composite) -> list[str]:
        available = [group for group in reward_spec.keys() if (group, keys.REWARD) in reward_spec.keys(True)]
        if self.requested_groups is None:
            return available
        missing = [group for group in self.requested_groups if group not in available]
        if missing:
            raise KeyError(f"reward channels for unknown groups {missing}; groups with a reward: {available}")
        return self.requested_groups

    def transform_output_spec(self, output_spec: Composite) -> Composite:
        """Declare the computed components (observation spec, next to the env's) and the channels (reward spec)."""
        output_spec = output_spec.clone()
        reward_spec = output_spec["full_reward_spec"]
        observation_spec = output_spec["full_observation_spec"]
        self._resolved_groups = self._groups(reward_spec)
        self._component_leaves: dict[str, Unbounded] = {}
        for group in self._resolved_groups:
            components_key = (group, keys.REWARD_COMPONENTS)
            if components_key in reward_spec.keys(True):
                raise ValueError(
                    f"the env declares {components_key} in its reward spec; reward components belong in the "
                    "observation spec (see himo.envs.rewards)"
                )
            declared = components_key in observation_spec.keys(True)
            env_components = list(observation_spec[components_key].keys()) if declared else []
            available = [keys.ENV_REWARD_COMPONENT, *env_components, *self.functions]
            for worker, mix in self.mixes.items():
                missing = [name for name in mix if name not in available]
                if missing:
                    raise KeyError(
                        f"reward channel of worker {worker!r} (group {group!r}) uses unknown components {missing}; "
                        f"available: {available} (env components from the env, others from reward functions)"
                    )
            group_spec = reward_spec[group]
            reward = group_spec[keys.REWARD]
            leaf = Unbounded(shape=reward.shape, dtype=reward.dtype, device=reward.device)
            if self.functions and not declared:
                observation_spec[components_key] = Composite(shape=group_spec.shape, device=group_spec.device)
            for name in self.functions:
                observation_spec[(*components_key, name)] = leaf.clone()
            self._component_leaves[group] = leaf
            group_spec[keys.REWARD_CHANNELS] = Composite(
                {worker: leaf.clone() for worker in self.mixes}, shape=group_spec.shape, device=group_spec.device
            )
        return output_spec

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        # Computed components are observations, so a reset must write them too: 0, as the env's own.
        for group, leaf in getattr(self, "_component_leaves", {}).items():
            for name in self.functions:
                tensordict_reset.set((group, keys.REWARD_COMPONENTS, name), leaf.zero())
        return tensordict_reset

    def _component(self, next_tensordict: TensorDictBase, group: str, name: str) -> torch.Tensor:
        if name == keys.ENV_REWARD_COMPONENT:
            return next_tensordict.get((group, keys.REWARD))
        return next_tensordict.get((group, keys.REWARD_COMPONENTS, name))

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        groups = getattr(self, "_resolved_groups", None)
        if groups is None:
            groups = self._groups(self.parent.output_spec["full_reward_spec"])
        for group in groups:
            for name, function in self.functions.items():
                next_tensordict.set((group, keys.REWARD_COMPONENTS, name), function(tensordict, next_tensordict, group))
            for worker, mix in self.mixes.items():
                channel = torch.zeros_like(next_tensordict.get((group, keys.REWARD)))
                for name, weight in mix.items():
                    channel = channel + weight * self._component(next_tensordict, group, name)
                next_tensordict.set((group, keys.REWARD_CHANNELS, worker), channel)
        return next_tensordict
