"""A group's action space as the hierarchy composes it: discrete (single or composite) or continuous.

Each family says how a worker's heads parametrise its policy, how the acting policy is composed
from the workers' (``select``: the active worker's; ``weighted``: a mixture for discrete actions,
a weighted product of Gaussians for continuous ones, each with an exact log-probability), and how
a worker's own policy scores an action.

- :class:`DiscreteActions`: a plain categorical action ``(group, "action")`` is one unnamed part; a
  composite action holds one categorical per named part, ``(group, "action", part)``. Heads give
  logits for every part, concatenated in part order; a worker controls some of the parts (all by
  default). While a worker acts alone (select), a part it does not control takes its default,
  index 0, and adds nothing to the action's log-probability.
- :class:`ContinuousActions` (``himo.hierarchy.continuous``): a bounded vector ``(group, "action")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from tensordict import TensorDictBase
from torch import nn
from torch.distributions import Categorical, Distribution
from torchrl.data import Bounded, Categorical as CategoricalSpec, Composite, TensorSpec

from himo.agents.heads import ActorCriticHeads, CriticView
from himo.agents.soft_policies import CategoricalPolicy, SquashedGaussianPolicy
from himo.envs import keys


def categorical(logits: torch.Tensor) -> Categorical:
    """A categorical over ``logits`` without argument validation.

    The logits come from the policy's own heads; validating them costs about 0.1 ms per
    distribution, several times per step. Sampling from NaN logits still raises.
    """
    return Categorical(logits=logits, validate_args=False)


def normalised(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` as log-probabilities over the last dim, computed as ``Categorical`` normalises them, so what acting
    stores equals bit for bit what learning's distributions give."""
    return logits - logits.logsumexp(-1, keepdim=True)


def log_prob_of(log_probs: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """The log-probability ``[...]`` of ``choice`` (indices, broadcast against ``log_probs``' leading dims) under the
    normalised ``log_probs [..., choices]``."""
    index = choice.long().unsqueeze(-1).expand(*log_probs.shape[:-1], 1)
    return log_probs.gather(-1, index).squeeze(-1)


def sample_categorical(log_probs: torch.Tensor) -> torch.Tensor:
    """A draw ``[...]`` from the categorical of normalised ``log_probs [..., choices]``, as ``Categorical.sample`` draws
    it (one multinomial draw per row): acting draws without building a distribution object at every step.
    Non-finite probabilities raise."""
    rows = log_probs.exp().reshape(-1, log_probs.shape[-1])
    return torch.multinomial(rows, 1, True).reshape(log_probs.shape[:-1])


class ActingPolicy(Protocol):
    """The policy that acts at a step, composed from the workers' (see the module docstring)."""

    def sample(self) -> torch.Tensor:
        """A random action."""
        ...

    def mode(self) -> torch.Tensor:
        """The greedy action."""
        ...

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """The exact log-probability of ``action``."""
        ...


@dataclass
class WorkerPolicy:
    """One worker's own policy at some steps: what its actor learns through.

    Attributes:
        distributions: its independent parts (discrete: one categorical per part it controls;
            continuous: the Gaussian before squashing), for entropies and KL divergences.
        scorer: the log-probability of an action under its policy.
    """

    distributions: tuple[Distribution, ...]
    scorer: Callable[[torch.Tensor], torch.Tensor]

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``action`` (of the parts it controls)."""
        return self.scorer(action)

    def entropy(self) -> torch.Tensor:
        """Entropy of its policy (before squashing, for continuous actions)."""
        return sum(distribution.entropy() for distribution in self.distributions)


class ActionSpace(Protocol):
    """What the policy, the selector and the learner need to know of a group's actions."""

    group: str

    @property
    def count(self) -> int:
        """Number of independently controllable parts."""
        ...

    def worker_heads(
        self, in_features: int, hidden_sizes: Sequence[int], allowed: Sequence[int] | None, critic: CriticView
    ) -> nn.Module:
        """A worker's actor-critic heads: the policy parameters (:meth:`worker_keys`), then the value."""
        ...

    def worker_keys(self, worker: str) -> list[tuple[str, ...]]:
        """Keys of a worker's policy parameters."""
        ...

    def action_keys(self) -> list[tuple[str, ...]]:
        """The env keys the action is written to."""
        ...

    def read(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The action of every agent."""
        ...

    def write(self, tensordict: TensorDictBase, action: torch.Tensor) -> None:
        """Write the action for the env."""
        ...

    def control_mask(self, controlled: Sequence[str] | None) -> torch.Tensor:
        """Boolean ``[count]``: the parts a worker acts on (``None``: all)."""
        ...

    def acting(
        self, tensordict: TensorDictBase, workers: Sequence[str], option: torch.Tensor, weights: torch.Tensor, mode: str, control: torch.Tensor
    ) -> ActingPolicy:
        """The acting policy at each step, from the workers' outputs in ``tensordict``."""
        ...

    def worker_policies(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor
    ) -> dict[str, WorkerPolicy]:
        """Each worker's own policy, from its outputs in ``tensordict``."""
        ...

    def worker_log_probs(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """Every worker's log-probability ``[..., workers]`` of ``action`` under its own policy (of the parts it
        controls), from the workers' outputs in ``tensordict``: what acting stores for each worker."""
        ...

    def soft_policy(self, tensordict: TensorDictBase, worker: str) -> CategoricalPolicy | SquashedGaussianPolicy:
        """A worker's own policy from its outputs in ``tensordict``, as soft actor-critic reads it."""
        ...


def legal_logits(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """``logits [..., actions]`` with the illegal actions (``legal`` False) at the dtype's lowest value.

    A worker restricted to a subset of actions (its own logits already at the lowest value outside it)
    that has no legal action in its subset at some step acts uniformly among the legal ones there.
    """
    floor = torch.finfo(logits.dtype).min
    masked = logits.masked_fill(~legal, floor)
    stranded = (masked == floor).all(-1, keepdim=True)
    return torch.where(stranded, torch.zeros_like(logits).masked_fill(~legal, floor), masked)


def mixture_log_probs(weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``log sum_k w_k softmax(logits_k)`` of the mixture over actions.

    Args:
        weights: ``[..., workers]``, on the simplex.
        logits: ``[..., workers, actions]``, each worker's (masked) logits.

    Returns:
        ``[..., actions]``, normalised log-probabilities.
    """
    return torch.logsumexp(weights.log().unsqueeze(-1) + logits.log_softmax(-1), dim=-2)


def action_space(group: str, spec: TensorSpec) -> ActionSpace:
    """The action space of ``(group, "action")``'s spec: categorical, a composite of categoricals, or bounded.

    Raises ``TypeError`` naming what is not supported.
    """
    from himo.hierarchy.continuous import ContinuousActions

    if isinstance(spec, Bounded) and spec.dtype.is_floating_point:
        return ContinuousActions.from_spec(group, spec)
    return DiscreteActions.from_spec(group, spec)


@dataclass(frozen=True)
class DiscreteActions:
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
    def from_spec(cls, group: str, spec: TensorSpec) -> DiscreteActions:
        """The parts of a ``Categorical`` spec, or a ``Composite`` of them; ``TypeError`` names a part that is not."""
        if isinstance(spec, CategoricalSpec):
            return cls(group, (), (int(spec.space.n),))
        if isinstance(spec, Composite):
            names = tuple(spec.keys())
            for name in names:
                if not isinstance(spec[name], CategoricalSpec):
                    raise TypeError(f"action part {name!r} is {type(spec[name]).__name__}; only categorical parts are supported")
            return cls(group, names, tuple(int(spec[name].space.n) for name in names))
        raise TypeError(f"{type(spec).__name__} actions are not supported (categorical, composite or bounded are)")

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

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Logits ``[..., total]`` as one tensor ``[..., size]`` per part."""
        return list(logits.split(self.sizes, dim=-1))

    def worker_heads(
        self, in_features: int, hidden_sizes: Sequence[int], allowed: Sequence[int] | None, critic: CriticView
    ) -> nn.Module:
        """Logits over every part (the disallowed ones masked) and a value."""
        return ActorCriticHeads(in_features, self.total, hidden_sizes, allowed, critic)

    def worker_keys(self, worker: str) -> list[tuple[str, ...]]:
        """The worker's logits."""
        return [keys.worker(self.group, worker, keys.LOGITS)]

    def action_keys(self) -> list[tuple[str, ...]]:
        """``(group, "action")``, or one key per part."""
        if not self.composite:
            return [(self.group, keys.ACTION)]
        return [(self.group, keys.ACTION, name) for name in self.names]

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

    def part_log_probs(self, logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[..., parts]`` of each part of ``action [..., parts]`` (broadcast against the logits'
        leading dims) under the categorical ``logits [..., total]``."""
        return torch.stack(
            [log_prob_of(normalised(part), action[..., index]) for index, part in enumerate(self.split(logits))], dim=-1
        )

    def control_mask(self, controlled: Sequence[str] | None) -> torch.Tensor:
        """Boolean ``[parts]``: the parts a worker acts on (``None``: all); ``ValueError`` names an unknown part."""
        if controlled is None:
            return torch.ones(self.count, dtype=torch.bool)
        unknown = [name for name in controlled if name not in self.names]
        if unknown:
            known = list(self.names) if self.composite else "none (the action has no named parts)"
            raise ValueError(f"unknown action part {unknown[0]!r}; parts are {known}")
        return torch.tensor([name in controlled for name in self.names], dtype=torch.bool)

    def stacked_logits(self, tensordict: TensorDictBase, workers: Sequence[str]) -> torch.Tensor:
        """Every worker's (masked) logits, ``[..., workers, total]``."""
        return torch.stack([tensordict.get(self.worker_keys(name)[0]) for name in workers], dim=-2)

    def acting(
        self, tensordict: TensorDictBase, workers: Sequence[str], option: torch.Tensor, weights: torch.Tensor, mode: str, control: torch.Tensor
    ) -> DiscreteActing:
        """Select: the active worker's parts it controls (the others default); weighted: per part, the mixture of
        the workers that control it, their weights renormalised (``log sum_k w_k p_k(a)``)."""
        table = [normalised(part) for part in self.split(self.stacked_logits(tensordict, workers))]
        if mode == "select":
            parts = [part.gather(-2, option[..., None, None].expand(*option.shape, 1, part.shape[-1])).squeeze(-2) for part in table]
            return DiscreteActing(parts, control[option])
        mixtures = []
        for part, workers_log_probs in enumerate(table):
            # Workers that do not control this part get weight 0 (log-weight -inf) in its mixture.
            part_weights = weights * control[:, part].to(weights.dtype)
            part_weights = part_weights / part_weights.sum(-1, keepdim=True)
            mixtures.append(mixture_log_probs(part_weights, workers_log_probs))
        return DiscreteActing(mixtures, torch.ones(*option.shape, self.count, dtype=torch.bool, device=option.device))

    def worker_log_probs(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """Every worker's log-probability ``[..., workers]`` of ``action``: the sum over the parts it controls."""
        chosen = self.part_log_probs(self.stacked_logits(tensordict, workers), action.unsqueeze(-2))
        return torch.where(control, chosen, torch.zeros_like(chosen)).sum(-1)

    def worker_policies(
        self, tensordict: TensorDictBase, workers: Sequence[str], control: torch.Tensor
    ) -> dict[str, WorkerPolicy]:
        """Each worker's categoricals over the parts it controls."""
        policies = {}
        for index, name in enumerate(workers):
            on = control[index].tolist()
            parts = [part for part, controlled in zip(self.split(tensordict.get(self.worker_keys(name)[0])), on) if controlled]
            indices = [part for part, controlled in enumerate(on) if controlled]
            distributions = tuple(categorical(part) for part in parts)
            policies[name] = WorkerPolicy(distributions, _PartsScorer(distributions, indices))
        return policies

    def soft_policy(self, tensordict: TensorDictBase, worker: str) -> CategoricalPolicy:
        """The worker's categorical over a plain action (``ValueError`` for a composite one)."""
        if self.composite:
            raise ValueError(f"soft actor-critic needs a single categorical action; this one has parts {list(self.names)}")
        return CategoricalPolicy(tensordict.get(self.worker_keys(worker)[0]).log_softmax(-1))


@dataclass
class _PartsScorer:
    distributions: tuple[Categorical, ...]
    indices: list[int]

    def __call__(self, action: torch.Tensor) -> torch.Tensor:
        return sum(distribution.log_prob(action[..., index]) for distribution, index in zip(self.distributions, self.indices))


@dataclass
class DiscreteActing:
    """The acting policy of each part, as normalised log-probabilities ``[..., size]``, and which parts it samples
    (``[..., parts]``; the others default)."""

    log_probs: list[torch.Tensor]
    sampled: torch.Tensor

    def sample(self) -> torch.Tensor:
        """Each sampled part drawn, the others at 0."""
        return self._defaulted(torch.stack([sample_categorical(part) for part in self.log_probs], dim=-1))

    def mode(self) -> torch.Tensor:
        """Each sampled part's most likely choice, the others at 0."""
        return self._defaulted(torch.stack([part.argmax(-1) for part in self.log_probs], dim=-1))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """The sum over the sampled parts of their log-probabilities."""
        log_probs = torch.stack([log_prob_of(part, action[..., index]) for index, part in enumerate(self.log_probs)], dim=-1)
        return torch.where(self.sampled, log_probs, torch.zeros_like(log_probs)).sum(-1)

    def _defaulted(self, drawn: torch.Tensor) -> torch.Tensor:
        return torch.where(self.sampled, drawn, torch.zeros_like(drawn))
