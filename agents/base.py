"""The one small interface every learning algorithm implements, usable at either level of the hierarchy.

A level (the workers, or the manager) hands its algorithm a :class:`LevelProblem`: the samples to
learn from (rows, minibatched along their first dimension), each policy head's targets aligned with
them (advantage, critic return, behaviour log-probability, actor weight), and a function that
evaluates the current heads on some rows (:class:`HeadOutputs`, differentiable). A head is one
actor-critic: a worker, or the manager. The algorithm owns its optimiser(s) and returns its metrics
keyed by TensorBoard tags. How the targets are estimated (GAE or V-trace) is declared with the
algorithm (``himo.agents.declaration``); the hierarchy computes them (per-channel returns for workers,
the semi-MDP for the manager). Off-policy algorithms (SAC, ``Targets.REPLAY``) learn from a :class:`ReplayProblem`
instead: the level's new transitions, which they store, and a function that evaluates every head's
critic features and policy on any stored transitions.

Every algorithm is built from the level's :class:`LevelModel`: its parameters by role (encoders,
actors, critics) and the shape of each head, for algorithms that build critics of their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import torch
from tensordict import TensorDictBase
from torch import nn
from torch.distributions import Distribution, kl_divergence

from himo.agents.optim import LevelOptimizer, NonFiniteLossError
from himo.agents.soft_policies import CategoricalPolicy, SquashedGaussianPolicy
from himo.agents import tags
from himo.agents.tags import level_metric

__all__ = [
    "GradientAlgorithm",
    "HeadOutputs",
    "HeadShape",
    "LevelAlgorithm",
    "LevelMetrics",
    "LevelModel",
    "LevelProblem",
    "ReplayProblem",
    "NonFiniteLossError",
    "LossTerms",
    "gradient_epochs",
    "head_loss_epochs",
    "minibatches",
]


@dataclass
class HeadOutputs:
    """One head evaluated on a minibatch of rows, with gradient.

    Attributes:
        log_prob: log-probability of the action (or option) the row took, ``[rows, ...]``.
        entropy: entropy of the head's policy, same shape.
        value: the critic's value, same shape.
        distributions: the head's policy as distributions (e.g. one per action part it controls),
            for measuring the KL divergence between two evaluations.
        auxiliary_losses: critic-side losses the head adds to its level's, by name (the manager's
            ``option_value`` regression under learned termination); logged as ``loss/<level>/<name>``.
        value_scale: what the critic's loss divides a value error by (its value normaliser's scale; 1 without),
            so that it regresses on standardised returns.
    """

    log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor
    distributions: tuple[Distribution, ...]
    auxiliary_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    value_scale: torch.Tensor | float = 1.0

    def value_error(self, returns: torch.Tensor) -> torch.Tensor:
        """The critic's error on ``returns``, in the units it regresses in (standardised under value normalisation)."""
        return (self.value - returns) / self.value_scale

    def auxiliary_loss(self) -> torch.Tensor:
        """The sum of the auxiliary losses (0 when there are none)."""
        return sum(self.auxiliary_losses.values(), torch.zeros(()))

    def kl_from(self, old: HeadOutputs) -> torch.Tensor:
        """``KL(old || self)`` per row, summed over the distributions (parts are independent)."""
        return sum(kl_divergence(before, after) for before, after in zip(old.distributions, self.distributions))


@dataclass
class LevelProblem:
    """What one level learns from in one update.

    Attributes:
        level: ``"workers"`` or ``"manager"`` (the tag prefix of its metrics).
        rows: number of sample rows; minibatches index ``range(rows)``.
        targets: head name -> TensorDict of ``advantage``, ``returns``, ``old_log_prob`` and ``weight``
            (the actor's per-sample weight: its share of the action), rows along the first dimension.
        evaluate: evaluates every head on the given row indices (with gradient).
        rows_per_minibatch: the level's minibatch size in rows.
        runs: ``[rows]`` the sequence each row belongs to, where the level has memory: a minibatch then holds whole
            sequences, each in order (``evaluate`` re-runs the recurrent cores over them); ``None``: rows are
            independent and shuffled one by one.
    """

    level: str
    rows: int
    targets: dict[str, TensorDictBase]
    evaluate: Callable[[torch.Tensor], dict[str, HeadOutputs]]
    rows_per_minibatch: int
    runs: torch.Tensor | None = None


@dataclass(frozen=True)
class HeadShape:
    """What one head's critic reads and what its policy chooses.

    Attributes:
        features: size of the features its critic reads (a centralised critic's include the group's).
        choices: discrete: number of choices; continuous: number of action dimensions.
        allowed: discrete: how many of the choices the head may take; continuous: equal to ``choices``.
        continuous: whether the head's action is a bounded vector.
        hidden_sizes: hidden layer sizes of the head's networks.
    """

    features: int
    choices: int
    allowed: int
    continuous: bool
    hidden_sizes: tuple[int, ...]


@dataclass(frozen=True)
class LevelModel:
    """The parameters of one level by role, and its heads' shapes.

    Attributes:
        encoder: what the level's heads read through (workers: the modality encoders; manager: the fusion).
        actor: the policy heads.
        critic: the value heads (and the manager's option-critic heads under learned termination).
        heads: head name -> its shape.
        head_parameters: head name -> its own actor and critic parameters.
    """

    encoder: list[nn.Parameter]
    actor: list[nn.Parameter]
    critic: list[nn.Parameter]
    heads: dict[str, HeadShape]
    head_parameters: dict[str, list[nn.Parameter]] = field(default_factory=dict)
    """Each head's own actor and critic parameters (with several heads: their gradient norms are logged apart)."""

    @property
    def policy(self) -> list[nn.Parameter]:
        """The parameters the policy acts through: the encoder's, then the actor's."""
        return [*self.encoder, *self.actor]


@dataclass
class SoftHeadOutputs:
    """One head on a minibatch of stored states: its critic's features, its policy and its state value.

    Attributes:
        features: ``[..., features]`` what the head's critics read (with gradient into the level's encoder).
        policy: the head's policy at the same states, computed from detached features (gradient into its actor only).
        value: ``[...]`` the head's own value head on the detached features.
    """

    features: torch.Tensor
    policy: CategoricalPolicy | SquashedGaussianPolicy
    value: torch.Tensor


@dataclass
class ReplayProblem:
    """What an off-policy level stores and learns from in one update.

    Attributes:
        level: ``"workers"`` or ``"manager"``.
        transitions: the new transitions, rows along the first dimension: whatever ``evaluate`` reads, and per head
            ``(head, "action")``, ``(head, "reward")``, ``(head, "discount")`` (the bootstrap's discount, ``gamma^k``
            for the manager) and ``(head, "terminated")``.
        evaluate: ``evaluate(transitions, successor)`` gives every head on the transitions' states, or on their
            successor states when ``successor`` is true.
    """

    level: str
    transitions: TensorDictBase
    evaluate: Callable[[TensorDictBase, bool], dict[str, SoftHeadOutputs]]


class LevelMetrics:
    """Running means of one level's metrics over its updates, and its count of skipped updates."""

    def __init__(self, level: str) -> None:
        self.level = level
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.skipped = 0

    def add(self, terms: dict[str, float]) -> None:
        """The terms of one update (each tag is averaged over the updates that reported it)."""
        for tag, value in terms.items():
            self.sums[tag] += value
            self.counts[tag] += 1

    def result(self, lr: float) -> dict[str, float]:
        """Means by tag, with the level's skipped updates and learning rate."""
        metrics = {tag: value / self.counts[tag] for tag, value in self.sums.items()}
        metrics[level_metric("skipped_updates", self.level)] = float(self.skipped)
        metrics[level_metric("lr", self.level)] = lr
        return metrics


class LevelAlgorithm(Protocol):
    """A level's learning algorithm (see ``himo.agents.registry.ALGORITHMS``).

    What it learns from (a :class:`LevelProblem` of GAE or V-trace targets, or a :class:`ReplayProblem`) is
    its declaration's ``targets``.
    """

    optimizer: LevelOptimizer
    """The level's gradient optimiser (other passes of the level, e.g. learned termination, use it too)."""

    def update(self, problem: LevelProblem | ReplayProblem, frames: int) -> LevelMetrics:
        """Learn from ``problem`` at ``frames`` env frames; returns the update's metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Optimiser and schedule state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        ...


class GradientAlgorithm:
    """An algorithm whose whole level (policy and critics) takes gradient steps with one optimiser."""

    def __init__(self, settings: Any, model: LevelModel, total_frames: int, name: str) -> None:
        self.settings = settings
        self.total_frames = total_frames
        parts = model.head_parameters if len(model.head_parameters) > 1 else None
        self.optimizer = LevelOptimizer.from_settings(
            [*model.policy, *model.critic], settings, total_frames, name=name, parts=parts
        )

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])


def head_diagnostics(terms: dict[str, torch.Tensor | float], output: HeadOutputs) -> dict[str, torch.Tensor | float]:
    """A head's loss terms and diagnostics, with its auxiliary losses as ``loss_<name>`` (detached)."""
    return terms | {f"loss_{name}": loss.detach() for name, loss in output.auxiliary_losses.items()}


def minibatches(size: int, minibatch_size: int, epochs: int, runs: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Shuffled index minibatches over ``size`` samples, ``epochs`` times.

    With ``runs`` (``[size]``, each sample's sequence) the sequences are shuffled, not the samples: a minibatch is
    whole sequences, as many as hold about ``minibatch_size`` samples (at least one), each sequence's samples in
    their order.
    """
    if runs is None:
        for _ in range(epochs):
            permutation = torch.randperm(size)
            for start in range(0, size, minibatch_size):
                yield permutation[start : start + minibatch_size]
        return
    _, run = torch.unique(runs, return_inverse=True)
    count = int(run.max()) + 1 if size else 0
    runs_per_minibatch = max(1, round(minibatch_size * count / max(size, 1)))
    for _ in range(epochs):
        rank = torch.empty(count, dtype=torch.long)
        rank[torch.randperm(count)] = torch.arange(count)
        # Sorting by (rank of the sequence, position) keeps each sequence's samples together and in order.
        ranked = rank[run]
        order = torch.argsort(ranked * size + torch.arange(size))
        sizes = torch.bincount(ranked[order] // runs_per_minibatch)
        yield from torch.split(order, sizes.tolist())


def gradient_epochs(
    optimizer: LevelOptimizer,
    rows: int,
    rows_per_minibatch: int,
    epochs: int,
    loss_of: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    frames: int,
    metrics: LevelMetrics,
    runs: torch.Tensor | None = None,
) -> LevelMetrics:
    """Minibatch gradient steps: ``loss_of(indices)`` on each shuffled minibatch of rows, ``epochs`` times (of whole
    sequences where ``runs`` gives each row's: see :func:`minibatches`).

    A step whose loss or gradient is not finite is skipped and counted; too many in a row raise
    :class:`NonFiniteLossError`.
    """
    for indices in minibatches(rows, rows_per_minibatch, epochs, runs):
        loss, terms = loss_of(indices)
        report = optimizer.step(loss, frames)
        optimizer.raise_if_diverged()
        # A skipped update's terms are not finite: it is counted, not averaged in.
        if report.skipped:
            metrics.skipped += 1
            continue
        own_norms = {tags.head_metric("grad_norm", metrics.level, head): norm for head, norm in report.part_norms.items()}
        metrics.add({**terms, level_metric("grad_norm", metrics.level): report.grad_norm, **own_norms})
    return metrics


def parameters_of(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """Every parameter of ``modules``, in order."""
    return [parameter for module in modules for parameter in module.parameters()]


class LossTerms:
    """A dataclass of one head's loss terms on a minibatch: ``loss_*`` fields are summed into the loss, the others
    are diagnostics (detached)."""

    def total(self) -> torch.Tensor:
        """The sum of the ``loss_*`` terms."""
        return sum(value for name, value in self.as_dict().items() if name.startswith("loss_"))

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Every term by name."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def add_terms(metrics: dict[str, float], level: str, terms: dict[str, torch.Tensor | float], heads: Sequence[str], head: str) -> None:
    """Accumulate one head's diagnostics into a minibatch's metrics, by tag.

    ``loss_<term>`` goes to ``loss/<level>/<term>``, ``entropy`` to ``<level>/entropy`` and any other
    name to ``<name>/<level>``, each the mean over the level's ``heads``. Where a level has several heads
    (the workers), each one's terms are also logged on their own, as ``loss/<level>/<head>/<term>``,
    ``<level>/<head>/entropy`` and ``<name>/<level>/<head>`` (e.g. ``kl/workers/<worker>``): each worker
    learns its own reward channel with its own policy, so its terms are read on their own.
    """
    for name, value in terms.items():
        value = float(value.detach() if isinstance(value, torch.Tensor) else value)
        if name.startswith("loss_"):
            term = name.removeprefix("loss_")
            tag, own = tags.loss(level, term), tags.head_loss(level, head, term)
        elif name == "entropy":
            tag, own = tags.entropy(level), tags.head_entropy(level, head)
        else:
            tag, own = tags.level_metric(name, level), tags.head_metric(name, level, head)
        metrics[tag] = metrics.get(tag, 0.0) + value / len(heads)
        if own is not None and len(heads) > 1:
            metrics[own] = value


def head_loss_epochs(
    optimizer: LevelOptimizer,
    problem: LevelProblem,
    frames: int,
    rows_per_minibatch: int,
    epochs: int,
    terms_of: Callable[[HeadOutputs, TensorDictBase], LossTerms],
) -> LevelMetrics:
    """Minibatch epochs of the sum over the level's heads of ``terms_of(head's outputs, head's targets)``.

    The per-head loss loop of the gradient algorithms (PPO, A2C, A3C, IMPALA): each head's terms and its
    auxiliary losses are added to the minibatch's loss and logged (see :func:`add_terms`).
    """

    def loss_of(indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        outputs = problem.evaluate(indices)
        loss, metrics = torch.zeros(()), {}
        for head, output in outputs.items():
            terms = terms_of(output, problem.targets[head][indices])
            loss = loss + terms.total() + output.auxiliary_loss()
            add_terms(metrics, problem.level, head_diagnostics(terms.as_dict(), output), list(outputs), head)
        return loss, metrics

    metrics = LevelMetrics(problem.level)
    return gradient_epochs(optimizer, problem.rows, rows_per_minibatch, epochs, loss_of, frames, metrics, problem.runs)
