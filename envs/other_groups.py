"""What every other agent group observes, as an observation of each group: the input of global critics.

With ``multi_agent.critic: global`` each group's critics read, beside their own features and their group's, the
observations of every other group in the env (MAPPO's global state, across heterogeneous groups: in mpe2's
speaker-listener the speaker observes 3 numbers and the listener 11). :class:`OtherGroups` writes them, flattened over
each group's agents, as ``(group, "observation", "other_groups")`` ``[..., agents, features]``: an observation like
any other, so it is stored with each step, is there at successor states, and reaches learning with no further
plumbing. Only critics read it (``himo.agents.heads``); actors stay decentralised.

It reads the other groups' vector entries (``[..., agents, features]``) that the scenario reads
(``himo.scenarios.build.other_group_keys``), in the order of ``sources``; a group adds nothing to its own view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import Transform

from himo.envs import keys


class OtherGroups(Transform):
    """Writes each group's view of every other group's observations.

    Args:
        sources: ``{group: [observation keys]}``: what each group shows the others, each entry
            ``(group, "observation", key)`` of shape ``[..., agents, features]``.
    """

    def __init__(self, sources: Mapping[str, Sequence[str]]) -> None:
        super().__init__(in_keys=[], out_keys=[])
        if len(sources) < 2:
            raise ValueError(f"a view of the other groups needs at least two agent groups; the env has {list(sources)}")
        self.sources = {group: list(names) for group, names in sources.items()}

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        """Declare ``(group, "observation", "other_groups")`` for every group, after checking what it reads."""
        sizes = {}
        for group, names in self.sources.items():
            size = 0
            for name in names:
                spec = observation_spec[group, keys.OBSERVATION, name]
                group_shape = observation_spec[group].shape
                if spec.ndim != len(group_shape) + 1 or spec.dtype not in (torch.float32, torch.float64):
                    raise ValueError(
                        f"a global critic reads other groups' vector observations, [agents, features] floats; group "
                        f"{group!r} observation {name!r} is {str(spec.dtype).removeprefix('torch.')} of shape "
                        f"{tuple(spec.shape[len(group_shape) :])} per agent"
                    )
                size += group_shape[-1] * spec.shape[-1]
            sizes[group] = size
        for group in self.sources:
            if (group, keys.OBSERVATION, keys.OTHER_GROUPS) in observation_spec.keys(True):
                raise ValueError(f"group {group!r} already has an observation named {keys.OTHER_GROUPS!r}")
            parent = observation_spec[group, keys.OBSERVATION]
            size = sum(other for name, other in sizes.items() if name != group)
            parent[keys.OTHER_GROUPS] = Unbounded(shape=(*parent.shape, size), dtype=torch.float32, device=parent.device)
        return observation_spec

    def observe(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write every group's view of the others into ``tensordict`` (a step's observations, or its successor's)."""
        flat = {}
        for group, names in self.sources.items():
            observation = tensordict.get((group, keys.OBSERVATION))
            batch = observation.batch_size[:-1]
            flat[group] = [observation.get(name).float().reshape(*batch, -1) for name in names]
        for group in self.sources:
            parts = [part for other, entries in flat.items() if other != group for part in entries]
            observation = tensordict.get((group, keys.OBSERVATION))
            view = torch.cat(parts, dim=-1).unsqueeze(-2).expand(*observation.batch_size, -1)
            observation.set(keys.OTHER_GROUPS, view)
        return tensordict

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self.observe(next_tensordict)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self.observe(tensordict_reset)
