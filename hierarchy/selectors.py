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

Turn-based (AEC) envs say which agents act at each step (``(group, "mask")``): an agent's option state
advances only on its own turns. The manager decides at an agent's first turn of an episode (its age is
still 0) and where its option ends; an option's age counts the agent's turns; between turns the state
is carried unchanged.

A group of a single worker has no manager network: that worker is the option at every step, with
log-probability 0, and the decision flags and the option's age are kept as for any group.

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

from himo.envs import keys
from himo.hierarchy.actions import ActionSpace, categorical, log_prob_of, normalised, sample_categorical
from himo.hierarchy.state import IS_INIT

MODES = ("select", "weighted")
TERMINATIONS = ("interval", "learned")


CONCENTRATION_FLOOR = 0.1
"""Smallest Dirichlet concentration: keeps the weighted manager's policy a proper, samplable density."""
WEIGHT_FLOOR = 1e-6
"""Smallest weight: a Dirichlet sample can underflow to 0, where its log-density is infinite."""


@dataclass(frozen=True)
class OptionRules:
    """How a group's manager composes its workers and when its options end (``himo.scenarios.schema_levels.ManagerConfig``).

    Attributes:
        mode: ``select`` or ``weighted``.
        termination: ``interval`` or ``learned``.
        every: option length of ``interval`` termination.
        switching_cost: with ``learned`` termination, what each switch costs the manager (team-reward units).
        intra_option: select mode: every worker's actor also learns from the other workers' steps (see
            ``himo.hierarchy.learner``).
    """

    mode: str = "select"
    termination: str = "interval"
    every: int = 4
    switching_cost: float = 0.0
    intra_option: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.termination not in TERMINATIONS:
            raise ValueError(f"unknown mode {self.mode!r} or termination {self.termination!r}; expected {MODES}, {TERMINATIONS}")
        if self.mode == "weighted" and self.intra_option:
            raise ValueError("intra-option learning needs mode 'select' (in weighted mode every worker learns from every step)")
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
        return categorical(scores)
    return Dirichlet(functional.softplus(scores) + CONCENTRATION_FLOOR)


def to_simplex(weights: torch.Tensor) -> torch.Tensor:
    """``weights`` floored at ``WEIGHT_FLOOR`` and renormalised to sum to 1 over the last dim."""
    floored = weights.clamp_min(WEIGHT_FLOOR)
    return floored / floored.sum(-1, keepdim=True)


def termination_probability(termination_logits: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
    """``beta_o(s)`` of each sample's option ``o`` from the termination logits ``[..., workers]``."""
    return torch.sigmoid(termination_logits.gather(-1, option.unsqueeze(-1)).squeeze(-1))


class OptionSelector(TensorDictModuleBase):
    """Who acts now (or with which weights), whether the previous option ended, and the action taken.

    Reads the option state of the step (``(group, "manager", ...)``) and the heads' outputs, writes
    the successor state under ``"next"``, the decision and termination flags, the manager's
    log-probability, the env action with its log-probability, and each worker's log-probability of
    that action (of the parts it controls).

    The action space (``himo.hierarchy.actions``) composes the acting policy from the workers';
    ``control [workers, parts]`` says which worker acts on which part of a composite action.
    """

    def __init__(
        self,
        group: str,
        workers: Sequence[str],
        rules: OptionRules,
        actions: ActionSpace,
        control: torch.Tensor,
        turn_based: bool = False,
    ) -> None:
        super().__init__()
        self.group = group
        self.turn_based = turn_based
        self.workers = list(workers)
        self.rules = rules
        self.actions = actions
        if control.shape != (len(self.workers), actions.count) or not control.any(0).all():
            raise ValueError(f"every action part needs a worker that controls it; got control {control.tolist()}")
        if len(self.workers) == 1 and rules.learned:
            raise ValueError("a single worker has no manager to learn when its option ends: use interval termination")
        self.register_buffer("control", control)
        self.chooses = len(self.workers) > 1
        """Whether the manager's scores choose the option (more than one worker)."""
        self.in_keys = [
            IS_INIT,
            *(keys.manager(group, leaf) for leaf in (keys.OPTION, keys.AGE, keys.WEIGHTS)),
            *([keys.manager(group, keys.LOGITS)] if self.chooses else []),
            *([keys.manager(group, keys.TERMINATION_LOGITS)] if rules.learned else []),
            *(key for name in self.workers for key in actions.worker_keys(name)),
            *([keys.acting(group)] if turn_based else []),
        ]
        self.out_keys = [
            keys.manager(group, keys.DECISION),
            keys.manager(group, keys.TERMINATION),
            keys.manager(group, keys.LOG_PROB),
            *((keys.NEXT, *keys.manager(group, leaf)) for leaf in (keys.OPTION, keys.AGE, keys.WEIGHTS)),
            *actions.action_keys(),
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
        self, decision: torch.Tensor, previous: torch.Tensor, previous_weights: torch.Tensor, scores: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(option, weights, manager log-probability)`` after this step's decisions (``scores``: ``None`` for a single
        worker)."""
        if scores is None:
            return torch.zeros_like(previous), torch.ones_like(previous_weights), torch.zeros(previous.shape, device=previous.device)
        if self.rules.mode == "select":
            # The categorical of manager_distribution, drawn from its log-probabilities directly (no object per step).
            log_probs = normalised(scores)
            choice = log_probs.argmax(-1) if greedy() else sample_categorical(log_probs)
            option = torch.where(decision, choice, previous)
            weights = functional.one_hot(option, len(self.workers)).to(scores.dtype)
            return option, weights, log_prob_of(log_probs, option)
        manager = manager_distribution(self.rules.mode, scores)
        choice = to_simplex(manager.mean if greedy() else manager.sample())
        weights = torch.where(decision.unsqueeze(-1), choice, previous_weights)
        return weights.argmax(-1), weights, manager.log_prob(weights)

    def acting(self, tensordict: TensorDictBase, option: torch.Tensor, weights: torch.Tensor):
        """The acting policy at each step, for the option (select) or weights (weighted) in force."""
        return self.actions.acting(tensordict, self.workers, option, weights, self.rules.mode, self.control)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Decide where due, carry the option elsewhere, sample (or take the mode of) the action."""
        return self.act(self.decide(tensordict))

    def decide(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Where the manager decides at this step, and the option (or weights) in force, written as the next state."""
        group = self.group
        previous = tensordict.get(keys.manager(group, keys.OPTION))
        age = tensordict.get(keys.manager(group, keys.AGE))
        is_init = tensordict.get(IS_INIT).expand_as(previous)
        termination = self._ends(tensordict, previous, age) & ~is_init
        decision = is_init | termination
        acting = None
        if self.turn_based:  # the state advances only on the agent's own turns (see the module docstring)
            acting = tensordict.get(keys.acting(group))
            first_turn = is_init | (age == 0)
            termination = termination & ~first_turn & acting
            decision = (first_turn | termination) & acting
        option, weights, manager_log_prob = self._choose(
            decision,
            previous,
            tensordict.get(keys.manager(group, keys.WEIGHTS)),
            tensordict.get(keys.manager(group, keys.LOGITS)) if self.chooses else None,
        )
        next_age = torch.where(decision, 1, age + 1)
        if acting is not None:
            next_age = torch.where(acting, next_age, torch.where(is_init, 0, age))
        tensordict.set(keys.manager(group, keys.DECISION), decision)
        tensordict.set(keys.manager(group, keys.TERMINATION), termination)
        tensordict.set(keys.manager(group, keys.LOG_PROB), manager_log_prob)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.OPTION)), option)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.AGE)), next_age)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.WEIGHTS)), weights)
        return tensordict

    def act(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The action of the option (or weights) in force, its log-probability and each worker's, from the workers'
        outputs in ``tensordict`` (after :meth:`decide`)."""
        group = self.group
        option = tensordict.get((keys.NEXT, *keys.manager(group, keys.OPTION)))
        weights = tensordict.get((keys.NEXT, *keys.manager(group, keys.WEIGHTS)))
        policy = self.acting(tensordict, option, weights)
        action = policy.mode() if greedy() else policy.sample()
        self.actions.write(tensordict, action)
        tensordict.set((group, keys.LOG_PROB), policy.log_prob(action))
        own = self.actions.worker_log_probs(tensordict, self.workers, self.control, action)
        for index, name in enumerate(self.workers):
            tensordict.set(keys.worker(group, name, keys.LOG_PROB), own[..., index])
        return tensordict
