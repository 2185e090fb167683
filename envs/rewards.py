"""Reward channels: each worker learns from its own mix of named reward components.

Components of group ``g`` live at ``("next", g, "reward_components", name)`` ``[..., n_agents, 1]``
and every env declares them in its **observation** spec, the way TorchRL's info readers declare
info entries (as rewards they would make ``env.reward_key`` ambiguous and join ``RewardSum``'s
defaults); a reset writes them as zeros. They are:

- the env's own: the built-in envs write them; the Gymnasium / PettingZoo adapters copy
  ``info["reward_components"]``; the name ``"env"`` always means the team reward ``("next", g, "reward")``;
- computed: named reward functions evaluated on each step's TensorDict. Each function has a
  pydantic config class beside it (its scenario parameters, typed, bounded, with defaults and
  descriptions); ``REWARD_FUNCTIONS`` maps each name to that class.

``RewardChannels`` (a TorchRL transform) computes the functions, writes them as components (declared
next to the env's own, zero after a reset), and writes ``("next", g, "reward_channels", worker) =
sum(weight * component)`` for each worker's mix. Channels are declared in the reward spec, so
``RewardSum`` can sum episode returns per channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import EnvBase, Transform

from himo.envs import keys


class RewardFunction(Protocol):
    """A reward computed from one step: data at ``t`` (``tensordict``) and ``t+1`` (``next_tensordict``)."""

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        """Reward of every agent of ``group``, shaped like the team reward ``[..., n_agents, 1]``."""
        ...

    def check(self, env: EnvBase, group: str) -> None:
        """Raise :class:`RewardFunctionError` if ``env`` lacks what the function reads for ``group``."""
        ...


class RewardFunctionError(ValueError):
    """A reward function does not fit its env; ``field`` is the parameter at fault, ``component`` its name."""

    def __init__(self, message: str, field: str, component: str | None = None) -> None:
        super().__init__(message if component is None else f"reward function {component!r}: {message}")
        self.field = field
        self.component = component


REWARD_LIMIT = 1e6
"""Largest magnitude of a reward parameter or of a reward weight.

Rewards are summed into returns and squared in float32 losses: values far beyond this overflow
float32 (to inf, then nan) during training, so a scenario asking for them is refused up front.
"""


class RewardFunctionConfig(BaseModel):
    """A reward function's scenario section: ``function`` names it, the other fields are its parameters.

    Subclasses narrow ``function`` to their name, add typed parameters and set ``implementation``.
    Non-finite numbers (nan, inf) are refused everywhere: no parameter has a use for them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    implementation: ClassVar[Callable[..., RewardFunction]]
    """The reward function class, called with the parameters."""

    function: str = Field(description="Reward function name (see the reward function tables).")

    @property
    def parameters(self) -> dict[str, Any]:
        """The function's keyword arguments: every field but ``function``."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "function"}

    def build(self) -> RewardFunction:
        """The reward function these parameters describe."""
        return type(self).implementation(**self.parameters)


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


def _observation_features(env: EnvBase, group: str, name: str) -> int:
    """Features per agent of observation ``name`` (token ids for text); a clear error if the env lacks it."""
    observations = env.full_observation_spec[group, keys.OBSERVATION]
    if name not in observations.keys():
        available = sorted(observations.keys())
        message = f"group {group!r} has no observation {name!r}; observations: {available}"
        raise RewardFunctionError(message, "observation")
    spec = observations[name]
    if isinstance(spec, Composite):  # text
        spec = spec[keys.INPUT_IDS]
    return math.prod(spec.shape[len(observations.shape) :])


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

    def check(self, env: EnvBase, group: str) -> None:
        """The env has the counted observation."""
        _observation_features(env, group, self.observation)

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


class NoveltyConfig(RewardFunctionConfig):
    """``novelty``: a count-based exploration bonus ``scale / sqrt(n)``, n = visits of the next observation."""

    implementation: ClassVar[Callable[..., RewardFunction]] = Novelty

    function: Literal["novelty"] = Field("novelty", description="Reward function name.")
    observation: str = Field(min_length=1, description="Observation key whose visits are counted.")
    scale: float = Field(1.0, ge=0.0, le=REWARD_LIMIT, description="Bonus of a first visit, 0 to 1e6.")
    # The visit counts are one float32 tensor of this many entries per group (2**26: 256 MiB).
    table_size: int = Field(2**20, ge=1, le=2**26, description="Hash buckets of the visit counts, 1 to 2**26.")
    resolution: float = Field(
        0.1, ge=1e-6, le=REWARD_LIMIT, description="Bin width of float observations before hashing, 1e-6 to 1e6."
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the hash's multipliers.")


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

    def check(self, env: EnvBase, group: str) -> None:
        """The env has the distance observation, and every index is one of its elements."""
        features = _observation_features(env, group, self.observation)
        outside = [index for index in self.indices or () if not -features <= index < features]
        if outside:
            message = f"indices {outside} are outside observation {self.observation!r} of {features} elements"
            raise RewardFunctionError(message, "indices")

    def _distance(self, tensordict: TensorDictBase, group: str, shape: torch.Size) -> torch.Tensor:
        values = _observation(tensordict, group, self.observation).float().reshape(*shape[:-1], -1)
        if self.indices is not None:
            values = values[..., self.indices]
        return values.norm(dim=-1, keepdim=True) if values.shape[-1] > 1 else values

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        shape = _like_reward(next_tensordict, group).shape
        return self.scale * (self._distance(tensordict, group, shape) - self._distance(next_tensordict, group, shape))


class ProgressConfig(RewardFunctionConfig):
    """``progress``: the decrease of a distance observation, ``scale * (d_t - d_{t+1})``."""

    implementation: ClassVar[Callable[..., RewardFunction]] = Progress

    function: Literal["progress"] = Field("progress", description="Reward function name.")
    observation: str = Field(min_length=1, description="Observation key holding the distance, or a vector (its norm).")
    indices: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        description="Elements of the vector's last dimension that make up the distance (negative: from the end); "
        "null: all.",
    )
    scale: float = Field(1.0, ge=0.0, le=REWARD_LIMIT, description="Reward per unit of distance gained, 0 to 1e6.")


class Alive:
    """``value`` on every step: a survival bonus (for envs whose episode ends on failure)."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def check(self, env: EnvBase, group: str) -> None:
        """Reads only the team reward: fits every env."""

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        return torch.full_like(_like_reward(next_tensordict, group), self.value)


class AliveConfig(RewardFunctionConfig):
    """``alive``: a constant survival bonus on every step."""

    implementation: ClassVar[Callable[..., RewardFunction]] = Alive

    function: Literal["alive"] = Field("alive", description="Reward function name.")
    value: float = Field(1.0, ge=0.0, le=REWARD_LIMIT, description="Bonus per step, 0 to 1e6.")


class StepCost:
    """``-value`` on every step: a time penalty that favours short episodes."""

    def __init__(self, value: float = 0.01) -> None:
        self.value = value

    def check(self, env: EnvBase, group: str) -> None:
        """Reads only the team reward: fits every env."""

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        return torch.full_like(_like_reward(next_tensordict, group), -self.value)


class StepCostConfig(RewardFunctionConfig):
    """``step_cost``: a constant time penalty on every step."""

    implementation: ClassVar[Callable[..., RewardFunction]] = StepCost

    function: Literal["step_cost"] = Field("step_cost", description="Reward function name.")
    value: float = Field(
        0.01, ge=0.0, le=REWARD_LIMIT, description="Penalty per step (the reward is -value), 0 to 1e6."
    )


class ActionCost:
    """``-scale * sum(action ** 2)``: the control cost of continuous actions."""

    def __init__(self, scale: float = 0.001) -> None:
        self.scale = scale

    def check(self, env: EnvBase, group: str) -> None:
        """The group's action is one continuous tensor."""
        action = env.full_action_spec[group, keys.ACTION]
        if isinstance(action, Composite) or not action.dtype.is_floating_point:
            kind = "a composite" if isinstance(action, Composite) else f"{action.dtype}"
            raise RewardFunctionError(f"needs continuous actions; group {group!r} has {kind} actions", "function")

    def __call__(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase, group: str) -> torch.Tensor:
        shape = _like_reward(next_tensordict, group).shape
        action = tensordict.get((group, keys.ACTION))
        if isinstance(action, TensorDictBase):
            raise TypeError(f"action_cost needs continuous actions; group {group!r} has a composite action")
        if not action.is_floating_point():
            raise TypeError(f"action_cost needs continuous actions; group {group!r} has {action.dtype} actions")
        return -self.scale * action.reshape(*shape[:-1], -1).pow(2).sum(-1, keepdim=True)


class ActionCostConfig(RewardFunctionConfig):
    """``action_cost``: the control cost ``-scale * sum(action ** 2)`` of continuous actions."""

    implementation: ClassVar[Callable[..., RewardFunction]] = ActionCost

    function: Literal["action_cost"] = Field("action_cost", description="Reward function name.")
    scale: float = Field(0.001, ge=0.0, le=REWARD_LIMIT, description="Cost per unit of squared action, 0 to 1e6.")


REWARD_FUNCTIONS: dict[str, type[RewardFunctionConfig]] = {
    "novelty": NoveltyConfig,
    "progress": ProgressConfig,
    "alive": AliveConfig,
    "step_cost": StepCostConfig,
    "action_cost": ActionCostConfig,
}
"""Reward function names a scenario may use, each mapped to its config class (the schema's union on ``function``)."""


def make_reward_function(name: str, **parameters: object) -> RewardFunction:
    """Build the registered reward function ``name`` from its ``parameters``, validated by its config class.

    Raises ``KeyError`` for an unknown name and ``ValueError`` for unknown or invalid parameters.
    """
    if name not in REWARD_FUNCTIONS:
        raise KeyError(f"unknown reward function {name!r}; available: {sorted(REWARD_FUNCTIONS)}")
    try:
        config = REWARD_FUNCTIONS[name](function=name, **parameters)
    except ValidationError as error:
        raise ValueError(f"reward function {name!r}: {error}") from None
    return config.build()


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
            self._check_functions(parent)

    def _check_functions(self, env: EnvBase) -> None:
        """Each reward function finds what it reads (else it would fail at the first step, far from its cause)."""
        for group in self._resolved_groups:
            for name, function in self.functions.items():
                try:
                    function.check(env, group)
                except RewardFunctionError as error:
                    raise RewardFunctionError(str(error), error.field, component=name) from None

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
                next_tensordict.set(keys.reward_channel(group, worker), channel)
        return next_tensordict
