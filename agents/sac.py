"""SAC for one level: soft actor-critic from a replay buffer, discrete or continuous, with an automatic temperature.

Each head (a worker, or the manager) gets twin Q-functions of its own, built here over the features its
critic reads (discrete: ``Q(s, .)`` over its choices; continuous: ``Q(s, a)``), and their target copies
(Polyak averaging at rate ``tau``). Every collected batch's transitions go into a TorchRL
``ReplayBuffer``; then ``gradient_steps`` minibatch updates each take, per head:

- critic: ``Q_i(s, a) -> r + discount (1 - terminated) V'(s')`` with ``V'(s') = E_{a'~pi}[min_i Q'_i(s', a')
  - alpha log pi(a'|s')]`` (an exact sum over discrete choices, one reparameterised sample otherwise); the
  level's encoder learns through this loss. The head's own value head regresses on the soft value
  ``E_a[min_i Q_i(s, a) - alpha log pi(a|s)]``, so the value the policy reports stays meaningful;
- actor: ``E_{a~pi}[alpha log pi(a|s) - min_i Q_i(s, a)]`` on detached features;
- temperature: ``log alpha`` moves the policy's entropy towards ``target_entropy``.

The discount is ``gamma`` for a worker and ``gamma^k`` for the manager's option transitions (the semi-MDP).
TorchRL's ``SACLoss`` and ``DiscreteSACLoss`` own their actor and Q modules and read one observation key;
here the heads read what the hierarchy encoded, so the losses are written out below.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any, Literal

import torch
from pydantic import Field
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.modules import MLP

from himo.agents.base import HeadShape, LevelMetrics, LevelModel, ReplayProblem, SoftHeadOutputs, add_terms
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.optim import LevelOptimizer
from himo.agents.settings import LevelAlgorithmConfig
from himo.agents.soft_policies import CategoricalPolicy
from himo.agents.tags import level_metric


class ReplayBufferTooLarge(MemoryError):
    """A level's replay buffer would not fit in the memory available."""


class SACConfig(LevelAlgorithmConfig):
    """Soft actor-critic: twin Q-functions per head learn from a replay buffer; automatic temperature."""

    name: Literal["sac"]
    max_grad_norm: float | None = Field(None, gt=0.0, description="Gradient clipping by global norm; null: none.")
    buffer_size: int = Field(100_000, ge=1, description="sac: transitions the replay buffer holds (env steps; options for the manager).")
    minibatch_size: int = Field(256, ge=1, description="sac: transitions per gradient step.")
    gradient_steps: int = Field(64, ge=1, description="sac: gradient steps after each collected batch.")
    learning_starts: int = Field(1000, ge=1, description="sac: transitions stored before the first gradient step.")
    tau: float = Field(0.005, gt=0.0, le=1.0, description="sac: Polyak rate of the target Q-functions.")
    initial_temperature: float = Field(1.0, gt=0.0, description="sac: the entropy temperature alpha at the start.")
    target_entropy: float | None = Field(
        None, description="sac: entropy the temperature steers the policy to; null: -dimensions (continuous) or "
        "target_entropy_weight * log(choices) (discrete).",
    )
    target_entropy_weight: float = Field(
        0.5, gt=0.0, le=1.0, description="sac: the automatic discrete target entropy's share of the uniform policy's."
    )
    hidden_sizes: tuple[int, ...] | None = Field(
        None, description="sac: hidden layers of each Q-function; null: those of the head's own networks."
    )


class TwinQ(nn.Module):
    """Two independent Q-functions of one head: over its choices (discrete) or of a state and an action (continuous).

    Args:
        shape: the head's shape.
        hidden_sizes: hidden layer sizes of each Q-function.
    """

    def __init__(self, shape: HeadShape, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.continuous = shape.continuous
        inputs = shape.features + (shape.choices if shape.continuous else 0)
        outputs = 1 if shape.continuous else shape.choices
        self.functions = nn.ModuleList(
            MLP(in_features=inputs, out_features=outputs, num_cells=list(hidden_sizes), activation_class=nn.ReLU)
            for _ in range(2)
        )

    def forward(self, features: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """``[2, ..., choices]`` (discrete) or ``[2, ...]`` (continuous, of ``action [..., size]``)."""
        if not self.continuous:
            return torch.stack([function(features) for function in self.functions])
        inputs = torch.cat([features, action.to(features.dtype)], dim=-1)
        return torch.stack([function(inputs).squeeze(-1) for function in self.functions])


def automatic_target_entropy(shape: HeadShape, weight: float) -> float:
    """``-dimensions`` for a continuous head; ``weight * log(allowed choices)`` for a discrete one."""
    return -float(shape.choices) if shape.continuous else weight * math.log(max(shape.allowed, 1))


class SAC:
    """Soft actor-critic of one level, its heads learning from one replay buffer of the level's transitions."""

    def __init__(self, settings: SACConfig, model: LevelModel, total_frames: int, name: str) -> None:
        self.settings = settings
        self.critics = nn.ModuleDict(
            {head: TwinQ(shape, settings.hidden_sizes or shape.hidden_sizes) for head, shape in model.heads.items()}
        )
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        start = math.log(settings.initial_temperature)
        self.log_temperature = nn.ParameterDict({head: nn.Parameter(torch.tensor(start)) for head in model.heads})
        self.target_entropy = {
            head: settings.target_entropy if settings.target_entropy is not None
            else automatic_target_entropy(shape, settings.target_entropy_weight)
            for head, shape in model.heads.items()
        }
        critic = [*model.encoder, *model.critic, *self.critics.parameters()]
        self.critic_optimizer = LevelOptimizer.from_settings(critic, settings, total_frames, name=f"{name} critic")
        self.optimizer = LevelOptimizer.from_settings(model.actor, settings, total_frames, name=f"{name} actor")
        self.temperature_optimizer = LevelOptimizer(
            self.log_temperature.parameters(), lr=settings.lr, lr_schedule=settings.lr_schedule,
            lr_final=settings.lr_final, total_frames=total_frames, frozen=settings.frozen, name=f"{name} temperature",
        )
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(settings.buffer_size), batch_size=settings.minibatch_size)

    def update(self, problem: ReplayProblem, frames: int) -> LevelMetrics:
        """Store the new transitions, then ``gradient_steps`` minibatch updates once the buffer holds enough."""
        metrics = LevelMetrics(problem.level)
        if self.settings.frozen:
            return metrics
        if not len(self.buffer):
            _check_buffer_fits(problem.transitions, self.settings.buffer_size, problem.level)
        self.buffer.extend(problem.transitions)
        metrics.add({level_metric("replay_size", problem.level): float(len(self.buffer))})
        if len(self.buffer) < self.settings.learning_starts:
            return metrics
        for _ in range(self.settings.gradient_steps):
            self._step(problem, self.buffer.sample(), frames, metrics)
        return metrics

    def _step(self, problem: ReplayProblem, sample: TensorDictBase, frames: int, metrics: LevelMetrics) -> None:
        level = problem.level
        temperatures = {head: parameter.exp().detach() for head, parameter in self.log_temperature.items()}
        with torch.no_grad():
            successors = problem.evaluate(sample, True)
            targets = {head: self._critic_target(head, sample.get(head), output, temperatures[head])
                       for head, output in successors.items()}
        outputs = problem.evaluate(sample, False)
        terms: dict[str, float] = {}
        critic_loss = torch.zeros(())
        for head, output in outputs.items():
            critics, features, temperature = self.critics[head], output.features.detach(), temperatures[head]
            taken = self._q_of_taken(head, output, sample.get((head, "action")))
            q_loss = 0.5 * ((taken - targets[head]) ** 2).sum(0).mean()
            with torch.no_grad():
                soft_value, _ = self._soft_value(critics, features, output.policy, temperature)
            value_loss = 0.5 * ((output.value - soft_value) ** 2).mean()
            critic_loss = critic_loss + q_loss + value_loss
            head_terms = {
                "loss_critic": q_loss.detach(), "loss_value": value_loss.detach(), "q_value": taken.detach().mean()
            }
            add_terms(terms, level, head_terms, list(outputs), head)
        critic_report = self.critic_optimizer.step(critic_loss, frames)

        actor_loss, temperature_loss = torch.zeros(()), torch.zeros(())
        for head, output in outputs.items():
            # The actor's loss E[alpha log pi - min_i Q_i] is the negated soft value, on detached features.
            features = output.features.detach()
            soft_value, entropy = self._soft_value(self.critics[head], features, output.policy, temperatures[head])
            objective, entropy = -soft_value.mean(), entropy.mean()
            actor_loss = actor_loss + objective
            shortfall = (entropy.detach() - self.target_entropy[head])
            head_temperature_loss = self.log_temperature[head] * shortfall
            temperature_loss = temperature_loss + head_temperature_loss
            head_terms = {"loss_objective": objective.detach(), "loss_temperature": head_temperature_loss.detach(),
                          "entropy": entropy.detach(), "temperature": temperatures[head]}
            add_terms(terms, level, head_terms, list(outputs), head)
        actor_report = self.optimizer.step(actor_loss, frames)
        temperature_report = self.temperature_optimizer.step(temperature_loss, frames)
        for optimizer in (self.critic_optimizer, self.optimizer, self.temperature_optimizer):
            optimizer.raise_if_diverged()
        if critic_report.skipped or actor_report.skipped or temperature_report.skipped:
            metrics.skipped += 1
            return
        with torch.no_grad():
            for target, current in zip(self.target_critics.parameters(), self.critics.parameters()):
                target.lerp_(current, self.settings.tau)
        terms[level_metric("grad_norm", level)] = critic_report.grad_norm
        terms[level_metric("actor_grad_norm", level)] = actor_report.grad_norm
        metrics.add(terms)

    def _q_of_taken(self, head: str, output: SoftHeadOutputs, action: torch.Tensor) -> torch.Tensor:
        """``[2, ...]``: both Q-functions at the stored action."""
        if isinstance(output.policy, CategoricalPolicy):
            q = self.critics[head](output.features)
            return q.gather(-1, action.long().unsqueeze(0).unsqueeze(-1).expand(2, *action.shape, 1)).squeeze(-1)
        return self.critics[head](output.features, action)

    @staticmethod
    def _soft_value(
        critics: TwinQ, features: torch.Tensor, policy: Any, temperature: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``E_{a~pi}[min_i Q_i(s, a) - alpha log pi(a|s)]`` and the policy's entropy, per state (for a continuous
        policy, both from one reparameterised sample)."""
        if isinstance(policy, CategoricalPolicy):
            value = policy.expectation(critics(features).min(0).values - temperature * policy.log_probs)
            return value, policy.entropy()
        action, log_prob = policy.sample()
        return critics(features, action).min(0).values - temperature * log_prob, -log_prob

    def _critic_target(
        self, head: str, transition: TensorDictBase, successor: SoftHeadOutputs, temperature: torch.Tensor
    ) -> torch.Tensor:
        """``r + discount (1 - terminated) V'(s')`` with the target Q-functions."""
        value, _ = self._soft_value(self.target_critics[head], successor.features, successor.policy, temperature)
        continues = 1.0 - transition.get("terminated").to(value.dtype)
        return transition.get("reward") + transition.get("discount") * continues * value

    def state_dict(self) -> dict[str, Any]:
        """Q-functions and their targets, temperatures, the three optimisers and the replay buffer."""
        return {
            "critics": self.critics.state_dict(),
            "target_critics": self.target_critics.state_dict(),
            "log_temperature": self.log_temperature.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "temperature_optimizer": self.temperature_optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.critics.load_state_dict(state["critics"])
        self.target_critics.load_state_dict(state["target_critics"])
        self.log_temperature.load_state_dict(state["log_temperature"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.temperature_optimizer.load_state_dict(state["temperature_optimizer"])
        self.buffer.load_state_dict(state["buffer"])


def _check_buffer_fits(rows: TensorDictBase, capacity: int, level: str) -> None:
    """A clear error, before the storage is allocated, when ``capacity`` rows would not fit in the available memory."""
    needed = rows[0].bytes() * capacity
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > available:
        raise ReplayBufferTooLarge(
            f"the {level} level's sac replay buffer of {capacity:,} transitions needs {needed / 2**30:.1f} GiB "
            f"({rows[0].bytes():,} bytes each) but {available / 2**30:.1f} GiB are free: lower "
            f"algorithm.{level}.buffer_size"
        )


def transitions(
    state: TensorDictBase,
    successor: TensorDictBase,
    heads: dict[str, TensorDict],
    rows: int,
    extra: dict[str, torch.Tensor] | None = None,
) -> TensorDict:
    """A level's ``rows`` transitions as SAC stores them: ``state``, ``successor``, each head's ``action``,
    ``reward``, ``discount`` and ``terminated`` (as ``heads[head]``) and any ``extra`` entries, all ``[rows, ...]``."""
    stored = TensorDict({"state": state, "successor": successor, **(extra or {})}, batch_size=[rows])
    for head, fields in heads.items():
        stored.set(head, fields)
    return stored


DECLARATION = AlgorithmDeclaration(
    name="sac",
    config=SACConfig,
    algorithm=SAC,
    targets=Targets.REPLAY,
    collection=Collection.SYNCHRONOUS,
    diagnostics=("temperature", "q_value", "replay_size", "actor_grad_norm"),
    weighted_manager=False,
    learned_termination=False,
    composite_actions=False,
    refusal="sac learns a categorical choice of worker or a single categorical or continuous action from replayed "
    "transitions: a weighted manager's sampled weights, learned termination's on-policy option values and parts of "
    "a composite action are not among them",
)
