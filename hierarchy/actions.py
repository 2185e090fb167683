"""A group's discrete action as parts: one categorical, or the named parts of a composite action.

A plain categorical action ``(group, "action")`` is one unnamed part. A composite action holds one
categorical per named part, ``(group, "action", part)``. Policy heads give logits for every part,
concatenated in part order; a worker controls some of the parts (all by default). In the
hierarchy a part that the acting worker does not control takes its default, index 0, and adds
nothing to the action's log-probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical, Composite, TensorSpec

from envs import keys


@dataclass(frozen=True)
class ActionParts:
    """The parts of a group's discrete action.

    Attributes:
        group: the agent group.
        names: part names; ``()`` for a plain categorical action (one unnamed part).
        sizes: number of choices of each part.
    """

    group: str
    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @classmethod
    def from_spec(cls, group: str, spec: TensorSpec) -> ActionParts:
        """The parts of ``(group, "action")``'s spec: a ``Categorical``, or a ``Composite`` of them.

        Raises ``TypeError`` naming the part that is not categorical.
        """
        if isinstance(spec, Categorical):
            return cls(group, (), (int(spec.space.n),))
        if isinstance(spec, Composite):
            names = tuple(spec.keys())
            for name in names:
                if not isinstance(spec[name], Categorical):
                    raise TypeError(f"action part {name!r} is {type(spec[name]).__name__}; only categorical parts are supported")
            return cls(group, names, tuple(int(spec[name].space.n) for name in names))
        raise TypeError(f"{type(spec).__name__} actions; only discrete (categorical) actions are supported yet")

    @property
    def composite(self) -> bool:
        """Whether the action has named parts."""
        return bool(self.names)

    @property
    def count(self) -> int:
        """Number of parts."""
        return len(self.sizes)

    @property
    def total(self) -> int:
        """Number of logits over all parts."""
        return sum(self.sizes)

    def offsets(self) -> list[int]:
        """Index of each part's first logit."""
        starts = [0]
        for size in self.sizes[:-1]:
            starts.append(starts[-1] + size)
        return starts

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Logits ``[..., total]`` as one tensor ``[..., size]`` per part."""
        return list(logits.split(self.sizes, dim=-1))

    def read(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The action of every agent as ``[..., parts]`` indices."""
        if not self.composite:
            return tensordict.get((self.group, keys.ACTION)).unsqueeze(-1)
        return torch.stack([tensordict.get((self.group, keys.ACTION, name)) for name in self.names], dim=-1)

    def write(self, tensordict: TensorDictBase, action: torch.Tensor) -> None:
        """Write ``[..., parts]`` indices as the env's action."""
        if not self.composite:
            tensordict.set((self.group, keys.ACTION), action.squeeze(-1))
            return
        for index, name in enumerate(self.names):
            tensordict.set((self.group, keys.ACTION, name), action[..., index])

    def action_keys(self) -> list[tuple[str, ...]]:
        """The env keys the action is written to."""
        if not self.composite:
            return [(self.group, keys.ACTION)]
        return [(self.group, keys.ACTION, name) for name in self.names]

    def part_log_probs(self, logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[..., parts]`` of each part of ``action`` under the categorical ``logits [..., total]``."""
        return torch.stack(
            [
                part.log_softmax(-1).gather(-1, action[..., index : index + 1]).squeeze(-1)
                for index, part in enumerate(self.split(logits))
            ],
            dim=-1,
        )

    def part_entropies(self, logits: torch.Tensor) -> torch.Tensor:
        """Entropy ``[..., parts]`` of each part's categorical under ``logits [..., total]``."""
        return torch.stack([torch.distributions.Categorical(logits=part).entropy() for part in self.split(logits)], dim=-1)

    def control_mask(self, controlled: Sequence[str] | None) -> torch.Tensor:
        """Boolean ``[parts]``: the parts a worker acts on (``None``: all).

        Raises ``ValueError`` naming an unknown part.
        """
        if controlled is None:
            return torch.ones(self.count, dtype=torch.bool)
        unknown = [name for name in controlled if name not in self.names]
        if unknown:
            known = list(self.names) if self.composite else "none (the action has no named parts)"
            raise ValueError(f"unknown action part {unknown[0]!r}; parts are {known}")
        return torch.tensor([name in controlled for name in self.names], dtype=torch.bool)
