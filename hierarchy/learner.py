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
- **manager**: the batch is compacted to decision points (``himo.hierarchy.semi_mdp``); its reward is
  the discounted team reward over each option and it bootstraps with ``gamma ** k``; its action is
  the chosen worker (select) or the sampled weights (weighted). With learned termination it also
  regresses an option-value head ``Q(s, o)`` on the semi-MDP returns at decision points and trains
  the termination heads (``himo.hierarchy.termination``).

Each level's declaration (``himo.agents.declaration``) says which targets it learns from: GAE (PPO,
A2C, TRPO) or V-trace (IMPALA: the actors' policy may lag the learner's, so values and the acting
policy's log-probabilities are re-evaluated with the current parameters, before either level's
update changes them, and the importance weights ``pi / mu`` correct the returns).

With memory, a level's samples are grouped in sequences (each env's steps of the batch, or chunks of them) and its
minibatches are whole sequences, over which the recurrent cores are re-run in TorchRL's recurrent mode from the state
stored at each sequence's first step (``himo.hierarchy.memory``); the manager's core is re-run over every step of its
sequences and its decisions are read out of that run.

An off-policy level (SAC) gets transitions to store instead: a worker's are every env step, with its
own reward channel, whichever worker acted (each worker's Q-functions learn ``Q^{pi_m}`` of its own
channel from all the group's experience); the manager's are its options, with the option's discounted
reward, discount ``gamma^k`` and the state at the option's last step as successor.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import set_recurrent_mode
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from himo.agents import tags
from himo.agents.base import (
    HeadOutputs,
    LevelAlgorithm,
    LevelMetrics,
    LevelModel,
    LevelProblem,
    ReplayProblem,
    SoftHeadOutputs,
    gradient_epochs,
)
from himo.agents.declaration import Collection, Targets
from himo.agents.registry import ALGORITHMS, collections_of
from himo.agents.soft_policies import CategoricalPolicy
from himo.agents.vtrace import vtrace_targets
from himo.envs import keys
from himo.hierarchy.policy import GroupPolicy
from himo.hierarchy.replay import manager_transitions, worker_transitions
from himo.hierarchy.selectors import manager_distribution
from himo.hierarchy.semi_mdp import compact_to_decisions, decision_indices, decision_steps
from himo.hierarchy.state import IS_INIT
from himo.hierarchy.termination import charge_switches, from_lanes, lanes, termination_loss, termination_samples


GOAL_ROW = "goal_row"
"""Learning with goals: a worker sample's row of the decision whose goal is in force there (-1: before the batch)."""


def _of_agent(tensor: torch.Tensor, agent: torch.Tensor) -> torch.Tensor:
    """Rows ``[n, agents, ...]`` to the given agent's entry of each row, ``[n, ...]``."""
    return tensor[torch.arange(tensor.shape[0]), agent]


def rows_per_minibatch(settings: Any, rows: int, samples_per_row: int) -> int:
    """Rows per minibatch for the level's ``minibatch_size`` in samples (``None``: every row), at least one row."""
    samples = settings.minibatch_size or rows * samples_per_row
    return max(1, samples // samples_per_row)


def build_algorithm(settings: Any, model: LevelModel, total_frames: int, name: str) -> LevelAlgorithm:
    """The level algorithm ``settings.name`` over the level's model."""
    return ALGORITHMS[settings.name].algorithm(settings, model, total_frames, name)


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
        # With memory, each level re-runs its recurrent cores over sequences this long (None: the batch's whole one).
        self.worker_chunk, self.manager_chunk = worker_chunk, manager_chunk
        self.workers_remember = bool(policy.memories)
        self.manager_remembers = policy.manager.module.memory is not None
        self.group = policy.group
        self.manager_settings = manager
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
        successor = current = None
        with torch.no_grad():
            if any(target is not Targets.REPLAY for target in targets):  # on-policy targets bootstrap from it
                successor = self._successor(batch)
            if self.manager is not None and self.manager_targets is Targets.VTRACE:
                # V-trace compares the manager's values with the successor values: both at the parameters from
                # before the workers' update, which changes the encoders the manager reads.
                current = self._current_manager(batch)
        if self.worker_targets is Targets.REPLAY:
            metrics = self._replay_workers(batch, frames)
        else:
            metrics = self._update_workers(batch, successor, frames)
        if self.manager is not None:
            if self.manager_targets is Targets.REPLAY:
                metrics |= self._replay_manager(batch, frames)
            else:
                metrics |= self._update_manager(batch, successor, current, frames)
        return metrics

    def _successor(self, batch: TensorDictBase) -> TensorDictBase:
        """The policy's outputs at each step's successor state, ``[envs, time]`` under the group.

        Where the batch was collected by this policy as it is now, the successor of step ``t`` is step ``t + 1``
        and its values were computed then: only the steps whose successor is not in the batch (an episode's
        last step, whose successor is the final observation, and the batch's last step) are evaluated.
        Otherwise (lagged or asynchronous actors) every successor is evaluated with the current parameters.
        """
        after = batch.get(keys.NEXT).select(self.group)
        if not self.values_are_current:
            return self.policy.evaluate(_continuing(after.copy()))
        group = self.group
        outputs = [(keys.WORKERS, name, keys.STATE_VALUE) for name in self.policy.worker_names]
        outputs += [(keys.MANAGER, keys.STATE_VALUE)] + ([(keys.MANAGER, keys.TERMINATION_LOGITS)] if self.rules.learned else [])
        stored = batch.get(group).select(*outputs)
        successor = torch.cat([stored[:, 1:], stored[:, -1:]], dim=1)
        evaluated = batch.get((keys.NEXT, keys.DONE)).squeeze(-1).clone()
        evaluated[:, -1] = True
        fresh = self.policy.evaluate(_continuing(TensorDict({group: after.get(group)[evaluated]}, batch_size=[int(evaluated.sum())])))
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

    def _replay_manager(self, batch: TensorDictBase, frames: int) -> dict[str, float]:
        group = self.group
        rows, option_length = manager_transitions(batch, group, self.gamma, self.policy.observed_keys)
        if rows is None:
            return {}

        def evaluate(sample: TensorDictBase, successor: bool) -> dict[str, SoftHeadOutputs]:
            source = sample.get("successor" if successor else "state")
            output = self.policy.soft_manager_outputs(TensorDict({group: source}, batch_size=sample.batch_size))
            agent = sample.get("agent")
            policy = CategoricalPolicy(_of_agent(output.policy.log_probs, agent))
            return {"manager": SoftHeadOutputs(_of_agent(output.features, agent), policy, _of_agent(output.value, agent))}

        metrics = self.manager.update(ReplayProblem("manager", rows, evaluate), frames).result(self.manager.optimizer.lr)
        metrics[tags.OPTION_LENGTH] = option_length
        return metrics

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
        sequences = _as_sequences(inputs.reshape(-1, length), self.group)
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
        pairs = source.clamp_min(0) * agents + torch.arange(agents)
        decisions, each = torch.unique(pairs, return_inverse=True)
        observed = samples.select(*self.policy.observed_keys).reshape(-1)[decisions]
        view = self.policy.encode(TensorDict({self.group: observed}, batch_size=observed.batch_size))
        goals = self.policy.goals(view)[each]
        stored = rows.get((keys.MANAGER, keys.GOAL))
        return inputs.set(keys.manager(self.group, keys.ACTIVE_GOAL), torch.where((source >= 0)[..., None, None], goals, stored))

    def _update_workers(self, batch: TensorDictBase, successor: TensorDictBase, frames: int) -> dict[str, float]:
        group, settings = self.group, self.worker_settings
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
            first_row = torch.arange(envs).view(-1, 1, 1) * data.shape[1]
            samples.set(GOAL_ROW, torch.where(step >= 0, first_row + step, step))
        weights = after.get((keys.MANAGER, keys.WEIGHTS))
        weighted = self.rules.mode == "weighted"
        if weighted:  # the weights in force at each step: the acting policy a worker learns through
            samples.set((keys.MANAGER, keys.WEIGHTS), weights)
            samples.set((keys.MANAGER, keys.OPTION), after.get((keys.MANAGER, keys.OPTION)))
        if self.workers_remember:  # each step's stored state and episode starts, to re-run the cores over sequences
            samples.update(data.select(*(key for key in self.policy.memory_states if key[0] == keys.WORKERS)))
            samples.set(IS_INIT, _per_agent(batch.get(IS_INIT), agents))
        samples = samples.reshape(-1, agents)
        length = sequence_length(self.worker_chunk, data.shape[1])
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
            extra = _importance_metrics(behaviour, target, settings.rho_clip, "workers")
        targets = {}
        for index, name in enumerate(self.policy.worker_names):
            next_value = lanes(successor.get(keys.worker(group, name, keys.STATE_VALUE)))
            reward = lanes(batch.get((keys.NEXT, *keys.reward_channel(group, name))))
            if vtrace:
                advantage, returns = vtrace_targets(
                    behaviour_log_prob=behaviour,
                    target_log_prob=target,
                    value=lanes(current[name].value.reshape(data.shape)),
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
                    lanes(data.get((keys.WORKERS, name, keys.STATE_VALUE))).unsqueeze(-1),
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
        self._update_value_norms(keys.WORKERS, targets, settings)
        return self.workers.update(problem, frames).result(self.workers.optimizer.lr) | extra

    def _update_value_norms(self, level: str, targets: dict[str, TensorDictBase], settings: Any) -> None:
        """Fold each head's returns into its value normaliser before the level learns from them (not when frozen)."""
        if settings.frozen:
            return
        for head, norm in self.policy.value_norms(level).items():
            norm.update(targets[head].get("returns").reshape(-1, 1))

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

    def _current_worker_policy(
        self, batch: TensorDictBase, samples: TensorDictBase, length: int
    ) -> tuple[dict[str, HeadOutputs], torch.Tensor, torch.Tensor]:
        """Every worker's outputs under the current parameters, and the acting policy's behaviour and
        current log-probabilities of the actions taken, as lanes ``[L, T]``."""
        data, after = batch.get(self.group), batch.get((keys.NEXT, self.group))
        rows = samples.shape[0]
        with torch.no_grad():
            inputs = self._evaluated_workers(samples, torch.arange(rows), length)
            current = self.policy.worker_outputs(inputs)
            acting = self.policy.selector.acting(
                inputs,
                after.get((keys.MANAGER, keys.OPTION)).reshape(rows, -1),
                after.get((keys.MANAGER, keys.WEIGHTS)).reshape(rows, data.shape[-1], -1),
            )
            target = acting.log_prob(self.policy.actions.read(inputs))
        return current, lanes(data.get(keys.LOG_PROB)), lanes(target.reshape(data.shape))

    # ---------------------------------------------------------------------------------------- manager
    def _update_manager(
        self, batch: TensorDictBase, successor: TensorDictBase, current: TensorDictBase | None, frames: int
    ) -> dict[str, float]:
        """The manager's update; ``current`` holds its outputs under the parameters ``successor`` was evaluated
        with (V-trace re-evaluates the batch's values), ``None`` for GAE (the values stored at collection)."""
        group, settings = self.group, self.manager_settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        vtrace = self.manager_targets is Targets.VTRACE
        reward = lanes(after.get(keys.REWARD))
        next_value = lanes(successor.get(keys.manager(group, keys.STATE_VALUE)))
        if self.rules.learned:
            reward, next_value = charge_switches(batch, successor, group, self.rules.switching_cost, reward, next_value)
        if vtrace:
            value = lanes(current.get(keys.manager(group, keys.STATE_VALUE)))
        else:
            value = lanes(data.get((keys.MANAGER, keys.STATE_VALUE)))
        transitions = compact_to_decisions(
            decision=lanes(data.get((keys.MANAGER, keys.DECISION))),
            reward=reward,
            terminated=lanes(after.get(keys.TERMINATED)),
            done=lanes(after.get(keys.DONE)),
            value=value,
            next_value=next_value,
            gamma=self.gamma,
            lmbda=settings.gae_lambda,
        )
        lane, step = decision_indices(transitions)
        if lane.numel() == 0:
            return {}
        agents = data.shape[-1]
        # Lanes are (env, agent) pairs; each decision's sample is its env step with the whole group (for a
        # centralised critic), and the deciding agent's index.
        env, agent = lane // agents, lane % agents
        decided = data[env, step]
        state = after.select((keys.MANAGER, keys.OPTION), (keys.MANAGER, keys.WEIGHTS))[env, step, agent]
        chosen = (keys.MANAGER, keys.OPTION) if self.rules.mode == "select" else (keys.MANAGER, keys.WEIGHTS)
        target = TensorDict(
            {
                "old_log_prob": _of_agent(decided.get((keys.MANAGER, keys.LOG_PROB)), agent),
                "option": state.get(chosen),
                "agent": agent,
                "weight": torch.ones(lane.numel()),
            },
            batch_size=[lane.numel()],
        )
        runs = None
        if self.manager_remembers:
            length = sequence_length(self.manager_chunk, data.shape[1])
            rows_of, runs = self._manager_sequences(batch, env, step, length)
        else:
            samples = self.policy.manager_inputs(TensorDict({group: decided}, batch_size=[lane.numel()]))

            def rows_of(indices: torch.Tensor) -> TensorDictBase:
                return self.policy.manager(TensorDict({group: samples[indices]}, batch_size=[len(indices)]))

        evaluate = self._manager_evaluator(rows_of, target)
        extra: dict[str, float] = {}
        if vtrace:
            advantage, returns, extra = self._manager_vtrace(transitions, target, evaluate)
        else:
            advantage, returns = transitions.advantage[transitions.valid], transitions.returns[transitions.valid]
        target.set("advantage", advantage)
        target.set("returns", returns)
        rows = rows_per_minibatch(settings, lane.numel(), 1)
        problem = LevelProblem("manager", lane.numel(), {"manager": target}, evaluate, rows, runs)
        self._update_value_norms(keys.MANAGER, {"manager": target}, settings)
        metrics = self.manager.update(problem, frames)
        if self.rules.learned:
            self._termination_pass(batch, frames, metrics)
        result = metrics.result(self.manager.optimizer.lr) | extra
        result[tags.OPTION_LENGTH] = transitions.length[transitions.valid].float().mean().item()
        return result

    def _manager_sequences(self, batch: TensorDictBase, env: torch.Tensor, step: torch.Tensor, length: int):
        """A recurrent manager's decisions: a function giving the manager evaluated at the decisions ``indices``
        (re-running its core over each sequence of ``length`` steps that holds one of them), and each decision's
        sequence. The manager's memory advances at every step, so its sequences are every step of an env, not only
        its decisions; its inputs are computed once (the embeddings it reads are detached)."""
        group = self.group
        envs, steps = batch.shape
        agents = batch.get(group).shape[-1]
        observed = TensorDict({group: batch.get(group), IS_INIT: batch.get(IS_INIT)}, batch_size=batch.shape)
        inputs = self.policy.manager_inputs(observed)  # [envs, time, agents] under the group
        inputs.set(IS_INIT, _per_agent(batch.get(IS_INIT), agents))
        sequences = inputs.reshape(envs * steps // length, length, agents)
        run, position = env * (steps // length) + step // length, step % length

        def rows_of(indices: torch.Tensor) -> TensorDictBase:
            needed, local = torch.unique(run[indices], return_inverse=True)
            evaluated = _as_sequences(TensorDict({group: sequences[needed]}, batch_size=[len(needed), length]), group)
            with set_recurrent_mode(True):
                self.policy.manager(evaluated)
            return evaluated[local, position[indices]]

        return rows_of, run

    def _current_manager(self, batch: TensorDictBase) -> TensorDictBase:
        """The manager's outputs at every step of ``batch`` with the current parameters (V-trace)."""
        if not self.manager_remembers:
            return self.policy.evaluate_manager(batch.select(self.group).copy())
        envs, steps = batch.shape
        length = sequence_length(self.manager_chunk, steps)
        inputs = batch.select(self.group, IS_INIT).copy().reshape(envs * steps // length, length)
        with set_recurrent_mode(True):
            self.policy.evaluate_manager(inputs)
        return inputs.reshape(envs, steps)

    def _manager_evaluator(self, rows_of, target: TensorDictBase):
        group, value_coef = self.group, self.manager_settings.value_coef

        def evaluate(indices: torch.Tensor) -> dict[str, HeadOutputs]:
            inputs = rows_of(indices)
            rows = target[indices]
            agent, chosen = rows.get("agent"), rows.get("option")
            distribution = manager_distribution(self.rules.mode, _of_agent(inputs.get(keys.manager(group, keys.LOGITS)), agent))
            auxiliary = {}
            if self.rules.learned and "returns" in rows.keys():
                option_values = _of_agent(inputs.get(keys.manager(group, keys.OPTION_VALUES)), agent)
                chosen_value = option_values.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
                auxiliary["option_value"] = value_coef * 0.5 * ((chosen_value - rows.get("returns")) ** 2).mean()
            return {
                "manager": HeadOutputs(
                    log_prob=distribution.log_prob(chosen),
                    entropy=distribution.entropy(),
                    value=_of_agent(inputs.get(keys.manager(group, keys.STATE_VALUE)), agent).squeeze(-1),
                    distributions=(distribution,),
                    auxiliary_losses=auxiliary,
                    value_scale=self.policy.manager.module.heads.value_scale(),
                )
            }

        return evaluate

    def _manager_vtrace(self, transitions, target: TensorDictBase, evaluate) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """V-trace advantages and returns over each lane's options, with the current manager policy as target."""
        valid = transitions.valid
        with torch.no_grad():
            current = evaluate(torch.arange(int(valid.sum())))["manager"].log_prob
        behaviour = torch.zeros_like(transitions.value)
        target_log_prob = torch.zeros_like(transitions.value)
        behaviour[valid], target_log_prob[valid] = target.get("old_log_prob"), current
        settings = self.manager_settings
        advantage, returns = vtrace_targets(
            behaviour_log_prob=behaviour,
            target_log_prob=target_log_prob,
            value=transitions.value,
            next_value=transitions.bootstrap,
            reward=transitions.reward,
            done=transitions.end,
            terminated=transitions.terminated,
            gamma=transitions.discount,
            rho_clip=settings.rho_clip,
            c_clip=settings.c_clip,
        )
        metrics = _importance_metrics(target.get("old_log_prob"), current, settings.rho_clip, "manager")
        return advantage[valid], returns[valid], metrics

    def termination_samples(self, batch: TensorDictBase) -> TensorDictBase:
        """The steps that feed the termination gradient (see ``himo.hierarchy.termination``)."""
        return termination_samples(batch, self.group)

    def termination_loss(self, inputs: TensorDictBase) -> tuple[torch.Tensor, dict[str, float]]:
        """The option-critic termination loss on evaluated ``termination_samples``, and its metrics."""
        return termination_loss(inputs, self.group, self.rules.switching_cost)

    def _termination_pass(self, batch: TensorDictBase, frames: int, metrics: LevelMetrics) -> None:
        observed = self.termination_samples(batch)
        if not observed.shape[0]:
            return
        samples = self.policy.manager_inputs(TensorDict({self.group: observed}, batch_size=observed.shape[:1]))
        samples.set((keys.MANAGER, keys.OPTION), observed.get((keys.MANAGER, keys.OPTION)))

        def loss_of(indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = TensorDict({self.group: samples[indices]}, batch_size=[len(indices)])
            return self.termination_loss(self.policy.manager(inputs))

        rows = rows_per_minibatch(self.manager_settings, samples.shape[0], samples.shape[1])
        gradient_epochs(self.manager.optimizer, samples.shape[0], rows, self.manager_settings.epochs, loss_of, frames, metrics)


def sequence_length(chunk: int | None, steps: int) -> int:
    """The length of the sequences a level with memory re-runs, for a batch of ``steps`` steps per env."""
    if chunk is not None and steps % chunk:
        raise ValueError(f"a memory chunk of {chunk} steps does not divide the batch's {steps} steps per env")
    return chunk or steps


def _per_agent(is_init: torch.Tensor, agents: int) -> torch.Tensor:
    """The root ``is_init`` ``[..., 1]`` for each agent, ``[..., agents, 1]``, to keep beside the group's samples."""
    return is_init.unsqueeze(-2).expand(*is_init.shape[:-1], agents, 1)


def _as_sequences(inputs: TensorDictBase, group: str) -> TensorDictBase:
    """Rows ``[runs, time]`` of the group's samples, with the root ``is_init`` the recurrent cores read."""
    return inputs.set(IS_INIT, inputs.get((group, IS_INIT))[..., 0, :])


def _continuing(tensordict: TensorDictBase) -> TensorDictBase:
    """``tensordict`` (successor states) marked as no episode's first step: recurrent cores go on from their state."""
    return tensordict.set(IS_INIT, torch.zeros(*tensordict.batch_size, 1, dtype=torch.bool))


def _importance_metrics(behaviour: torch.Tensor, target: torch.Tensor, rho_clip: float, level: str) -> dict[str, float]:
    """Mean importance weight ``pi / mu`` of the taken actions and the share clipped at ``rho_clip``."""
    rho = (target - behaviour).exp()
    return {
        tags.level_metric("importance_weight", level): rho.mean().item(),
        tags.level_metric("importance_clipped", level): (rho > rho_clip).float().mean().item(),
    }
