"""How one agent group learns from a collected batch: each level's algorithm on the hierarchy's targets.

Each level (workers, manager) has its own algorithm from ``himo.agents.registry.ALGORITHMS`` (PPO, A2C,
TRPO, IMPALA), its own optimiser, schedule and clipping, and can be frozen. This module turns a
batch into each level's :class:`himo.agents.base.LevelProblem`:

- **workers**: critic m learns the return of its own reward channel on every step; actor m learns
  in select mode from its own log-probability (of the parts it controls) on the steps where it was
  the active option (with intra-option learning, also on the others' steps, importance-weighted: see
  ``GroupLearner._actor_weight``), and in weighted mode on every step from the acting policy's exact
  log-probability, differentiated with respect to its own outputs (``GroupPolicy.worker_outputs``).
  Samples are env steps with the group's agents kept together (a centralised critic reads the
  whole group);
- **manager**: its options at decision points, with the semi-MDP credit (``himo.hierarchy.manager_learner``).

Each level's declaration (``himo.agents.declaration``) says which targets it learns from: GAE (PPO,
A2C, TRPO) or V-trace (IMPALA: the actors' policy may lag the learner's, so values and the acting
policy's log-probabilities are re-evaluated with the current parameters, before either level's
update changes them, and the importance weights ``pi / mu`` correct the returns). Where the batch comes from
lagged or asynchronous actors (IMPALA, A3C), GAE's values are re-evaluated in the same way: the values and the
successor values each advantage compares come from one set of parameters.

With memory, a level's samples are grouped in sequences (each env's steps of the batch, or chunks of them) and its
minibatches are whole sequences, over which the recurrent cores are re-run in TorchRL's recurrent mode from the state
stored at each sequence's first step (``himo.hierarchy.memory``); the manager's core is re-run over every step of its
sequences and its decisions are read out of that run.

Encoders that standardise their inputs (``modalities.<m>.normalize``) fold each batch's observations into their
statistics after both levels have learned from it (not when the workers are frozen). A3C's processes share these
statistics and the value normalisers' with their parameters: each folds a batch in, and evaluates the values its
targets compare, under ``statistics_lock``.

An off-policy level (SAC) gets transitions to store instead: a worker's are every env step, with its
own reward channel, whichever worker acted (each worker's Q-functions learn ``Q^{pi_m}`` of its own
channel from all the group's experience); the manager's are its options, with the option's discounted
reward, discount ``gamma^k`` and the state at the option's last step as successor.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import set_recurrent_mode
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from himo.agents import tags
from himo.agents.base import HeadOutputs, LevelProblem, ReplayProblem, SoftHeadOutputs
from himo.agents.declaration import Collection, Targets
from himo.agents.registry import ALGORITHMS, collections_of
from himo.agents.vtrace import vtrace_targets
from himo.envs import keys
from himo.hierarchy.learning import (
    as_sequences,
    build_algorithm,
    continuing,
    importance_metrics,
    per_agent,
    rows_per_minibatch,
    sequence_length,
    update_value_norms,
)
from himo.hierarchy.manager_learner import ManagerLearner
from himo.hierarchy.policy import GroupPolicy
from himo.hierarchy.replay import worker_transitions
from himo.hierarchy.semi_mdp import decision_steps
from himo.hierarchy.state import IS_INIT
from himo.hierarchy.termination import from_lanes, lanes


GOAL_ROW = "goal_row"
"""Learning with goals: a worker sample's row of the decision whose goal is in force there (-1: before the batch)."""


class GroupLearner:
    """Updates one :class:`GroupPolicy` from batches ``[envs, time]`` collected with it.

    Args:
        policy: the group's policy.
        manager: the manager level's algorithm settings (``himo.scenarios.algorithms``).
        workers: the worker level's algorithm settings.
        gamma: discount per env step.
        total_frames: the run's frames (learning-rate schedules end there).
    """

    def __init__(
        self,
        policy: GroupPolicy,
        manager: Any,
        workers: Any,
        gamma: float,
        total_frames: int,
        worker_chunk: int | None = None,
        manager_chunk: int | None = None,
    ) -> None:
        self.policy = policy
        # With memory, the workers re-run their recurrent cores over sequences this long (None: the batch's whole one).
        self.worker_chunk = worker_chunk
        self.workers_remember = bool(policy.memories)
        self.group = policy.group
        self.worker_settings = workers
        self.rules = policy.rules
        self.gamma = gamma
        self.worker_targets: Targets = ALGORITHMS[workers.name].targets
        self.manager_targets: Targets = ALGORITHMS[manager.name].targets
        # Data collected in this process with the policy being updated carries its values: see _successor.
        self.values_are_current = collections_of(workers.name, manager.name) == {Collection.SYNCHRONOUS}
        self.workers = build_algorithm(workers, policy.worker_model(), total_frames, f"{self.group} workers")
        # With a single worker the manager has nothing to choose: a flat agent.
        self.manager = (
            build_algorithm(manager, policy.manager_model(), total_frames, f"{self.group} manager")
            if len(policy.worker_names) > 1
            else None
        )
        self.manager_level = ManagerLearner(policy, manager, self.manager, gamma, manager_chunk) if self.manager else None
        self.statistics_lock: AbstractContextManager = nullcontext()
        """Held while the running statistics change or are read for targets (see :meth:`share_statistics`)."""

    def share_statistics(self, lock: AbstractContextManager) -> None:
        """Fold batches into the running statistics, and evaluate the values the targets compare, under ``lock``.

        A3C's processes share the statistics: an update reads and writes several of their buffers (two at once
        lose one), and the first updates move them far (values evaluated across one would not be comparable).
        """
        self.statistics_lock = lock
        if self.manager_level is not None:
            self.manager_level.statistics_lock = lock

    def state_dict(self) -> dict[str, object]:
        """Optimiser and schedule state of both levels."""
        return {"workers": self.workers.state_dict(), "manager": self.manager.state_dict() if self.manager else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.workers.load_state_dict(state["workers"])
        if self.manager is not None:
            self.manager.load_state_dict(state["manager"])

    def update(self, batch: TensorDictBase, frames: int) -> dict[str, float]:
        """One round of learning on both levels; returns metrics keyed by their TensorBoard tags."""
        targets = [self.worker_targets] + ([self.manager_targets] if self.manager is not None else [])
        started = time.perf_counter()
        successor = current = worker_current = samples = None
        if self.worker_targets is not Targets.REPLAY:
            samples = self._worker_samples(batch)
        # A3C: no other process changes the running statistics while the values the targets compare are evaluated
        # (the other processes' gradient steps may still land: small, lock-free updates).
        with torch.no_grad(), self.statistics_lock:
            if any(target is not Targets.REPLAY for target in targets):  # on-policy targets bootstrap from it
                successor = self._successor(batch)
            if self.worker_targets is Targets.GAE and not self.values_are_current:
                # The successor values were evaluated with the current parameters (see _successor): so are the
                # values each is compared with, or every step's advantage would carry the change since collection.
                worker_current = self._current_worker_outputs(samples, self._worker_sequence_length(batch))[1]
            if self.manager is not None and self.manager_targets is not Targets.REPLAY and (
                self.manager_targets is Targets.VTRACE or not self.values_are_current
            ):
                # The manager's values are compared with the successor values: both at the parameters from before
                # the workers' update, which changes the encoders the manager reads.
                current = self.manager_level.current(batch)
        if self.worker_targets is Targets.REPLAY:
            metrics = self._replay_workers(batch, frames)
        else:
            metrics = self._update_workers(batch, samples, successor, worker_current, frames)
        metrics[tags.learn_seconds("workers")] = time.perf_counter() - started
        if self.manager is not None:
            started = time.perf_counter()
            if self.manager_targets is Targets.REPLAY:
                metrics |= self.manager_level.replay(batch, frames)
            else:
                metrics |= self.manager_level.update(batch, successor, current, frames)
            metrics[tags.learn_seconds("manager")] = time.perf_counter() - started
        if not self.worker_settings.frozen:
            # After learning: this batch was collected, and is learned from, with the statistics as they were.
            with self.statistics_lock:
                for key, norm in self.policy.input_norms().items():
                    norm.update(batch.get(key).float())
        return metrics

    def _successor(self, batch: TensorDictBase) -> TensorDictBase:
        """The policy's outputs at each step's successor state, ``[envs, time]`` under the group.

        Where the batch was collected by this policy as it is now, the successor of step ``t`` is step ``t + 1``
        and its values were computed then: only the steps whose successor is not in the batch (an episode's
        last step, whose successor is the final observation, and the batch's last step) are evaluated.
        Otherwise (lagged or asynchronous actors) every successor is evaluated with the current parameters, and so
        are the values both levels compare them with.
        """
        after = batch.get(keys.NEXT).select(self.group)
        if not self.values_are_current:
            return self.policy.evaluate(continuing(after.copy()))
        group = self.group
        outputs = [(keys.WORKERS, name, keys.STATE_VALUE) for name in self.policy.worker_names]
        if self.manager is not None:
            outputs += [(keys.MANAGER, keys.STATE_VALUE)] + ([(keys.MANAGER, keys.TERMINATION_LOGITS)] if self.rules.learned else [])
        stored = batch.get(group).select(*outputs)
        successor = torch.cat([stored[:, 1:], stored[:, -1:]], dim=1)
        evaluated = batch.get((keys.NEXT, keys.DONE)).squeeze(-1).clone()
        evaluated[:, -1] = True
        fresh = self.policy.evaluate(continuing(TensorDict({group: after.get(group)[evaluated]}, batch_size=[int(evaluated.sum())])))
        successor[evaluated] = fresh.get(group).select(*outputs)
        return TensorDict({group: successor}, batch_size=batch.batch_size)

    # ----------------------------------------------------------------------------- off-policy levels (SAC)
    def _replay_workers(self, batch: TensorDictBase, frames: int) -> dict[str, float]:
        group = self.group
        rows = worker_transitions(batch, group, self.policy.worker_names, self.gamma, self.policy.observed_keys)

        def evaluate(sample: TensorDictBase, successor: bool) -> dict[str, SoftHeadOutputs]:
            source = sample.get("successor" if successor else "state")
            return self.policy.soft_worker_outputs(TensorDict({group: source}, batch_size=sample.batch_size))

        return self.workers.update(ReplayProblem("workers", rows, evaluate), frames).result(self.workers.optimizer.lr)

    # ---------------------------------------------------------------------------------------- workers
    def _worker_evaluator(self, samples: TensorDictBase, length: int):
        def evaluate(indices: torch.Tensor) -> dict[str, HeadOutputs]:
            return self.policy.worker_outputs(self._evaluated_workers(samples, indices, length))

        return evaluate

    def _evaluated_workers(self, samples: TensorDictBase, indices: torch.Tensor, length: int) -> TensorDictBase:
        """The workers evaluated on the samples' rows at ``indices``; with memory these are whole sequences of
        ``length`` steps, in order, which the recurrent cores re-run from the state stored at each one's first step."""
        inputs = self._worker_inputs(samples, indices)
        if not self.workers_remember:
            return self.policy.evaluate_workers(inputs)
        sequences = as_sequences(inputs.reshape(-1, length), self.group)
        with set_recurrent_mode(True):
            self.policy.evaluate_workers(sequences)
        return sequences.reshape(-1)

    def _worker_inputs(self, samples: TensorDictBase, indices: torch.Tensor) -> TensorDict:
        """The samples' rows at ``indices`` as the workers read them; with goals, each step's goal recomputed with
        gradient from the observation at the decision that set it (a goal set before the batch: as stored)."""
        rows = samples[indices]
        inputs = TensorDict({self.group: rows}, batch_size=[len(indices)])
        if self.policy.goal is None:
            return inputs
        source = rows.get(GOAL_ROW)
        agents = source.shape[-1]
        # An option's steps share its decision: each decision's observation is encoded once per minibatch.
        pairs = source.clamp_min(0) * agents + torch.arange(agents, device=source.device)
        decisions, each = torch.unique(pairs, return_inverse=True)
        observed = samples.select(*self.policy.observed_keys).reshape(-1)[decisions]
        view = self.policy.encode(TensorDict({self.group: observed}, batch_size=observed.batch_size))
        goals = self.policy.goals(view)[each]
        stored = rows.get((keys.MANAGER, keys.GOAL))
        return inputs.set(keys.manager(self.group, keys.ACTIVE_GOAL), torch.where((source >= 0)[..., None, None], goals, stored))

    def _worker_sequence_length(self, batch: TensorDictBase) -> int:
        """How many steps of an env the worker level's sequences hold (with memory)."""
        return sequence_length(self.worker_chunk, batch.shape[-1])

    def _worker_samples(self, batch: TensorDictBase) -> TensorDictBase:
        """The worker level's samples, ``[env steps, agents]``: what each step's evaluation reads."""
        group = self.group
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        envs, _, agents = data.shape
        # Samples keep the agent dimension ([env steps, agents]): a centralised critic reads the whole group.
        samples = data.select(*self.policy.observed_keys, keys.ACTION)
        if self.policy.goal is not None:  # the goal in force at each step, and the row of the decision that set it
            samples.set((keys.MANAGER, keys.GOAL), after.get((keys.MANAGER, keys.GOAL)))
            decision = data.get((keys.MANAGER, keys.DECISION))
            if self.policy.goal.every_step:  # each step's goal comes from its own observation
                step = torch.arange(data.shape[1], device=decision.device).view(1, -1, 1).expand_as(decision)
            else:
                step = decision_steps(decision)
            first_row = torch.arange(envs, device=decision.device).view(-1, 1, 1) * data.shape[1]
            samples.set(GOAL_ROW, torch.where(step >= 0, first_row + step, step))
        if self.rules.mode == "weighted":  # the weights in force at each step: the acting policy a worker learns through
            samples.set((keys.MANAGER, keys.WEIGHTS), after.get((keys.MANAGER, keys.WEIGHTS)))
            samples.set((keys.MANAGER, keys.OPTION), after.get((keys.MANAGER, keys.OPTION)))
        if self.workers_remember:  # each step's stored state and episode starts, to re-run the cores over sequences
            samples.update(data.select(*(key for key in self.policy.memory_states if key[0] == keys.WORKERS)))
            samples.set(IS_INIT, per_agent(batch.get(IS_INIT), agents))
        return samples.reshape(-1, agents)

    def _update_workers(
        self,
        batch: TensorDictBase,
        samples: TensorDictBase,
        successor: TensorDictBase,
        current: dict[str, HeadOutputs] | None,
        frames: int,
    ) -> dict[str, float]:
        """The worker level's update; ``current`` holds the workers' outputs under the parameters ``successor`` was
        evaluated with where the batch's stored values are not current (``None`` otherwise)."""
        group, settings = self.group, self.worker_settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        envs, _, agents = data.shape
        weights = after.get((keys.MANAGER, keys.WEIGHTS))
        weighted = self.rules.mode == "weighted"
        length = self._worker_sequence_length(batch)
        evaluate = self._worker_evaluator(samples, length)
        done, terminated = lanes(after.get(keys.DONE)), lanes(after.get(keys.TERMINATED))
        extra: dict[str, float] = {}
        vtrace = self.worker_targets is Targets.VTRACE
        # Turn-based envs: an agent's actor learns only from its own turns (its critic from every step: the value
        # of its state is defined whether or not it moves).
        acting = data.get(keys.ACTING).to(weights.dtype) if self.policy.turn_based else torch.ones_like(weights[..., 0])
        if vtrace:
            current, behaviour, target = self._current_worker_policy(batch, samples, length)
            # Off its turns the action did nothing: no importance correction there (rho = 1 keeps the traces).
            target = torch.where(lanes(acting) > 0, target, behaviour)
            extra = importance_metrics(behaviour, target, settings.rho_clip, "workers")
        targets = {}
        for index, name in enumerate(self.policy.worker_names):
            next_value = lanes(successor.get(keys.worker(group, name, keys.STATE_VALUE)))
            if current is None:
                value = lanes(data.get((keys.WORKERS, name, keys.STATE_VALUE)))
            else:
                value = lanes(current[name].value.reshape(data.shape))
            reward = lanes(batch.get((keys.NEXT, *keys.reward_channel(group, name))))
            if vtrace:
                advantage, returns = vtrace_targets(
                    behaviour_log_prob=behaviour,
                    target_log_prob=target,
                    value=value,
                    next_value=next_value,
                    reward=reward,
                    done=done,
                    terminated=terminated,
                    gamma=self.gamma,
                    rho_clip=settings.rho_clip,
                    c_clip=settings.c_clip,
                )
            else:
                advantage, returns = vec_generalized_advantage_estimate(
                    self.gamma,
                    settings.gae_lambda,
                    value.unsqueeze(-1),
                    next_value.unsqueeze(-1),
                    reward.unsqueeze(-1),
                    done.unsqueeze(-1),
                    terminated.unsqueeze(-1),
                )
                advantage, returns = advantage.squeeze(-1), returns.squeeze(-1)
            targets[name] = TensorDict(
                {
                    "advantage": from_lanes(advantage, envs),
                    "returns": from_lanes(returns, envs),
                    # Weighted mode: the acting policy's ratio on every step (see GroupPolicy.worker_outputs).
                    "old_log_prob": data.get(keys.LOG_PROB) if weighted else data.get((keys.WORKERS, name, keys.LOG_PROB)),
                    "weight": acting if weighted else self._actor_weight(data, name, weights[..., index]) * acting,
                },
                batch_size=data.shape,
            ).reshape(-1, agents)
        rows = rows_per_minibatch(settings, samples.shape[0], agents)
        runs = None
        if self.workers_remember:
            runs = torch.arange(samples.shape[0]) // length
        problem = LevelProblem("workers", samples.shape[0], targets, evaluate, rows, runs)
        with self.statistics_lock:
            update_value_norms(self.policy, keys.WORKERS, targets, settings)
        return self.workers.update(problem, frames).result(self.workers.optimizer.lr) | extra

    def _actor_weight(self, data: TensorDictBase, name: str, active: torch.Tensor) -> torch.Tensor:
        """Select mode: how much worker ``name``'s actor learns from each step, ``[envs, time, agents]``.

        Its own steps (``active``) weigh 1. With intra-option learning, a step another worker acted weighs the
        truncated importance ratio ``min(1, pi_name(a) / pi_acting(a))`` of the action taken, at collection (the
        truncation of V-trace's policy gradient): an action the worker would have taken as readily teaches it as
        much as its own, one it would not have taken teaches it little, and no step weighs more than its own.
        """
        if not self.rules.intra_option:
            return active
        own, acting = data.get((keys.WORKERS, name, keys.LOG_PROB)), data.get(keys.LOG_PROB)
        return torch.maximum(active, (own - acting).exp().clamp(max=1.0))

    def _current_worker_outputs(self, samples: TensorDictBase, length: int) -> tuple[TensorDictBase, dict[str, HeadOutputs]]:
        """The workers evaluated on every sample with the current parameters, and each worker's outputs."""
        with torch.no_grad():
            inputs = self._evaluated_workers(samples, torch.arange(samples.shape[0]), length)
            return inputs, self.policy.worker_outputs(inputs)

    def _current_worker_policy(
        self, batch: TensorDictBase, samples: TensorDictBase, length: int
    ) -> tuple[dict[str, HeadOutputs], torch.Tensor, torch.Tensor]:
        """Every worker's outputs under the current parameters, and the acting policy's behaviour and
        current log-probabilities of the actions taken, as lanes ``[L, T]``."""
        data, after = batch.get(self.group), batch.get((keys.NEXT, self.group))
        rows = samples.shape[0]
        inputs, current = self._current_worker_outputs(samples, length)
        with torch.no_grad():
            acting = self.policy.selector.acting(
                inputs,
                after.get((keys.MANAGER, keys.OPTION)).reshape(rows, -1),
                after.get((keys.MANAGER, keys.WEIGHTS)).reshape(rows, data.shape[-1], -1),
            )
            target = acting.log_prob(self.policy.actions.read(inputs))
        return current, lanes(data.get(keys.LOG_PROB)), lanes(target.reshape(data.shape))


