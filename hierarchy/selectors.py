"""How a group's manager composes its workers at each step, and when its options end.

Modes (``manager.mode``):

- ``select``: at a decision point the manager samples a worker from its categorical policy; between
  decision points the option is carried over; the active worker's logits give the action. The
  weights are the option's one-hot, so both modes carry the same state.
- ``weighted``: at a decision point the manager samples weights over the workers from a Dirichlet
  (its action at the semi-MDP level, with exact log-probabilities); the weights are carried like
  an option, and the env action is sampled from the mixture ``sum_k w_k p_k`` of the workers'
  categorical policies, whose exact log-probability ``log sum_k w_k p_k(a)`` is stored. ``option``
  then holds the worker of largest weight (for reading only).

Termination (``manager.termination.kind``), never at an episode start, where the manager always
decides:

- ``interval``: the option ends when its age reaches ``every``;
- ``learned``: the option ``o`` of the previous step ends with probability ``beta_o(s_t)`` (the
  manager's termination head at the state reached); the draw is stored under
  ``(group, "manager", "termination")``.

Greedy evaluation (``ExplorationType.DETERMINISTIC`` or ``MODE``): the most likely worker, or the
Dirichlet's mean; the most likely action (of the mixture); an option ends where ``beta > 1/2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.distributions import Categorical, Dirichlet
from torch.nn import functional
from torchrl.envs.utils import ExplorationType, exploration_type

from envs import keys
from hierarchy.actions import ActionParts
from hierarchy.state import IS_INIT

MODES = ("select", "weighted")
TERMINATIONS = ("interval", "learned")


CONCENTRATION_FLOOR = 0.1
"""Smallest Dirichlet concentration: keeps the weighted manager's policy a proper, samplable density."""
WEIGHT_FLOOR = 1e-6
"""Smallest weight: a Dirichlet sample can underflow to 0, where its log-density is infinite."""


@dataclass(frozen=True)
class OptionRules:
    """How a group's manager composes its workers and when its options end (``scenarios.schema.ManagerConfig``).

    Attributes:
        mode: ``select`` or ``weighted``.
        termination: ``interval`` or ``learned``.
        every: option length of ``interval`` termination.
        switching_cost: with ``learned`` termination, what each switch costs the manager (team-reward units).
    """

    mode: str = "select"
    termination: str = "interval"
    every: int = 4
    switching_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.termination not in TERMINATIONS:
            raise ValueError(f"unknown mode {self.mode!r} or termination {self.termination!r}; expected {MODES}, {TERMINATIONS}")
        if self.mode == "weighted" and self.termination == "learned":
            raise ValueError("learned termination needs mode 'select' (weighted mode has no single active option)")
        if self.every < 1 or self.switching_cost < 0:
            raise ValueError(f"every must be >= 1 and switching_cost >= 0, got {self.every} and {self.switching_cost}")

    @property
    def learned(self) -> bool:
        """Whether options end by the learned termination heads."""
        return self.termination == "learned"


def greedy() -> bool:
    """Whether the current exploration type asks for the most likely choice instead of a sample."""
    return exploration_type() in (ExplorationType.DETERMINISTIC, ExplorationType.MODE)


def manager_distribution(mode: str, scores: torch.Tensor) -> Categorical | Dirichlet:
    """The manager's policy at a decision point from its head's scores ``[..., workers]``.

    ``select``: a categorical over workers (the scores are logits). ``weighted``: a Dirichlet over
    the workers' weights, concentration ``softplus(scores) + CONCENTRATION_FLOOR``.
    """
    if mode == "select":
        return Categorical(logits=scores)
    return Dirichlet(functional.softplus(scores) + CONCENTRATION_FLOOR)


def to_simplex(weights: torch.Tensor) -> torch.Tensor:
    """``weights`` floored at ``WEIGHT_FLOOR`` and renormalised to sum to 1 over the last dim."""
    floored = weights.clamp_min(WEIGHT_FLOOR)
    return floored / floored.sum(-1, keepdim=True)


def mixture_log_probs(weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``log sum_k w_k softmax(logits_k)`` of the mixture over actions.

    Args:
        weights: ``[..., workers]``, on the simplex.
        logits: ``[..., workers, actions]``, each worker's (masked) logits.

    Returns:
        ``[..., actions]``, normalised log-probabilities.
    """
    return torch.logsumexp(weights.log().unsqueeze(-1) + logits.log_softmax(-1), dim=-2)


def termination_probability(termination_logits: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
    """``beta_o(s)`` of each sample's option ``o`` from the termination logits ``[..., workers]``."""
    return torch.sigmoid(termination_logits.gather(-1, option.unsqueeze(-1)).squeeze(-1))


class OptionSelector(TensorDictModuleBase):
    """Who acts now (or with which weights), whether the previous option ended, and the action taken.

    Reads the option state of the step (``(group, "manager", ...)``) and the heads' outputs, writes
    the successor state under ``"next"``, the decision and termination flags, the manager's
    log-probability, the env action with its log-probability, and each worker's log-probability of
    that action (of the parts it controls).

    Actions come in parts (``hierarchy.actions``); ``control [workers, parts]`` says which worker acts on
    which part. In select mode a part the active worker does not control takes its default (index 0,
    adding nothing to the log-probability); in weighted mode each part is drawn from the mixture of the
    workers that control it, their weights renormalised.
    """

    def __init__(
        self, group: str, workers: Sequence[str], rules: OptionRules, parts: ActionParts, control: torch.Tensor
    ) -> None:
        super().__init__()
        self.group = group
        self.workers = list(workers)
        self.rules = rules
        self.parts = parts
        if control.shape != (len(self.workers), parts.count) or not control.any(0).all():
            raise ValueError(f"every action part needs a worker that controls it; got control {control.tolist()}")
        self.register_buffer("control", control)
        self.in_keys = [
            IS_INIT,
            *(keys.manager(group, leaf) for leaf in (keys.OPTION, keys.AGE, keys.WEIGHTS, keys.LOGITS)),
            *([keys.manager(group, keys.TERMINATION_LOGITS)] if rules.learned else []),
            *(keys.worker(group, name, keys.LOGITS) for name in self.workers),
        ]
        self.out_keys = [
            keys.manager(group, keys.DECISION),
            keys.manager(group, keys.TERMINATION),
            keys.manager(group, keys.LOG_PROB),
            *((keys.NEXT, *keys.manager(group, leaf)) for leaf in (keys.OPTION, keys.AGE, keys.WEIGHTS)),
            *parts.action_keys(),
            (group, keys.LOG_PROB),
            *(keys.worker(group, name, keys.LOG_PROB) for name in self.workers),
        ]

    def _ends(self, tensordict: TensorDictBase, previous: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """Whether the previous step's option ends at this step (episode starts aside)."""
        if not self.rules.learned:
            return age >= self.rules.every
        beta = termination_probability(tensordict.get(keys.manager(self.group, keys.TERMINATION_LOGITS)), previous)
        return beta > 0.5 if greedy() else torch.bernoulli(beta).bool()

    def _choose(
        self, decision: torch.Tensor, previous: torch.Tensor, previous_weights: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(option, weights, manager log-probability)`` after this step's decisions."""
        manager = manager_distribution(self.rules.mode, scores)
        if self.rules.mode == "select":
            choice = manager.mode if greedy() else manager.sample()
            option = torch.where(decision, choice, previous)
            weights = functional.one_hot(option, len(self.workers)).to(scores.dtype)
            return option, weights, manager.log_prob(option)
        choice = to_simplex(manager.mean if greedy() else manager.sample())
        weights = torch.where(decision.unsqueeze(-1), choice, previous_weights)
        return weights.argmax(-1), weights, manager.log_prob(weights)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Decide where due, carry the option elsewhere, sample (or take the mode of) the action."""
        group = self.group
        previous = tensordict.get(keys.manager(group, keys.OPTION))
        age = tensordict.get(keys.manager(group, keys.AGE))
        is_init = tensordict.get(IS_INIT).expand_as(previous)
        termination = self._ends(tensordict, previous, age) & ~is_init
        decision = is_init | termination
        option, weights, manager_log_prob = self._choose(
            decision,
            previous,
            tensordict.get(keys.manager(group, keys.WEIGHTS)),
            tensordict.get(keys.manager(group, keys.LOGITS)),
        )

        logits = torch.stack([tensordict.get(keys.worker(group, name, keys.LOGITS)) for name in self.workers], dim=-2)
        action, log_prob = self._act(logits, option, weights)
        control = self.control.to(logits.dtype)
        worker_log_probs = (self.parts.part_log_probs(logits, action.unsqueeze(-2).expand(*logits.shape[:-1], -1)) * control).sum(-1)

        tensordict.set(keys.manager(group, keys.DECISION), decision)
        tensordict.set(keys.manager(group, keys.TERMINATION), termination)
        tensordict.set(keys.manager(group, keys.LOG_PROB), manager_log_prob)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.OPTION)), option)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.AGE)), torch.where(decision, 1, age + 1))
        tensordict.set((keys.NEXT, *keys.manager(group, keys.WEIGHTS)), weights)
        self.parts.write(tensordict, action)
        tensordict.set((group, keys.LOG_PROB), log_prob)
        for index, name in enumerate(self.workers):
            tensordict.set(keys.worker(group, name, keys.LOG_PROB), worker_log_probs[..., index])
        return tensordict

    def _act(self, logits: torch.Tensor, option: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action [..., parts], its log-probability [...])`` from every worker's logits ``[..., workers, total]``."""
        distributions, sampled = self.part_distributions(logits, option, weights)
        drawn = torch.stack([part.mode if greedy() else part.sample() for part in distributions], dim=-1)
        action = torch.where(sampled, drawn, torch.zeros_like(drawn))
        return action, self.acting_log_prob(distributions, sampled, action)

    def part_distributions(
        self, logits: torch.Tensor, option: torch.Tensor, weights: torch.Tensor
    ) -> tuple[list[Categorical], torch.Tensor]:
        """The acting policy of each action part, and which parts it samples (``[..., parts]``; others default).

        Args:
            logits: every worker's logits ``[..., workers, total]``.
            option: the active worker ``[...]`` (select mode).
            weights: the workers' weights ``[..., workers]`` (weighted mode).
        """
        if self.rules.mode == "select":
            index = option[..., None, None].expand(*option.shape, 1, logits.shape[-1])
            part_logits = self.parts.split(logits.gather(-2, index).squeeze(-2))
            return [Categorical(logits=part) for part in part_logits], self.control[option]
        distributions = []
        for part, workers_logits in enumerate(self.parts.split(logits)):
            # Workers that do not control this part get weight 0 (log-weight -inf) in its mixture.
            part_weights = weights * self.control[:, part].to(weights.dtype)
            part_weights = part_weights / part_weights.sum(-1, keepdim=True)
            distributions.append(Categorical(logits=mixture_log_probs(part_weights, workers_logits)))
        return distributions, torch.ones(*option.shape, self.parts.count, dtype=torch.bool, device=option.device)

    @staticmethod
    def acting_log_prob(distributions: list[Categorical], sampled: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``action [..., parts]`` under the acting policy: the sum over the sampled parts."""
        log_probs = torch.stack([part.log_prob(action[..., index]) for index, part in enumerate(distributions)], dim=-1)
        return (log_probs * sampled).sum(-1)
