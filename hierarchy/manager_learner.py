"""How the manager of one agent group learns from a collected batch (the worker level: ``himo.hierarchy.learner``).

The batch is compacted to decision points (``himo.hierarchy.semi_mdp``); the manager's reward is the discounted team
reward over each option and it bootstraps with ``gamma ** k``; its action is the chosen worker (select) or the sampled
weights (weighted). With learned termination it also regresses an option-value head ``Q(s, o)`` on the semi-MDP
returns at decision points and trains the termination heads (``himo.hierarchy.termination``). Under V-trace
(IMPALA) its values and log-probabilities are re-evaluated with the current parameters. A recurrent manager's core
advances at every step, so its sequences are every step of an env; its decisions are read out of their re-run. An
off-policy manager (SAC) stores its options as transitions instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import set_recurrent_mode

from himo.agents import tags
from himo.agents.base import HeadOutputs, LevelAlgorithm, LevelMetrics, LevelProblem, ReplayProblem, SoftHeadOutputs, gradient_epochs
from himo.agents.declaration import Targets
from himo.agents.registry import ALGORITHMS
from himo.agents.soft_policies import CategoricalPolicy
from himo.agents.vtrace import vtrace_targets
from himo.envs import keys
from himo.hierarchy.learning import (
    as_sequences,
    importance_metrics,
    of_agent,
    per_agent,
    rows_per_minibatch,
    sequence_length,
    update_value_norms,
)
from himo.hierarchy.policy import GroupPolicy
from himo.hierarchy.replay import manager_transitions
from himo.hierarchy.selectors import manager_distribution
from himo.hierarchy.semi_mdp import compact_to_decisions, decision_indices
from himo.hierarchy.state import IS_INIT
from himo.hierarchy.termination import charge_switches, lanes, termination_loss, termination_samples


class ManagerLearner:
    """Updates the manager of one :class:`GroupPolicy` with its level algorithm.

    Args:
        policy: the group's policy.
        settings: the manager level's algorithm settings.
        algorithm: the manager level's algorithm (its optimiser and update rule).
        gamma: discount per env step.
        chunk: with memory, the length of the sequences its core re-runs (``None``: each env's whole batch).
    """

    def __init__(self, policy: GroupPolicy, settings: Any, algorithm: LevelAlgorithm, gamma: float, chunk: int | None) -> None:
        self.policy, self.settings, self.algorithm, self.gamma, self.chunk = policy, settings, algorithm, gamma, chunk
        self.group = policy.group
        self.rules = policy.rules
        self.targets: Targets = ALGORITHMS[settings.name].targets
        self.remembers = policy.manager.module.memory is not None
        self.statistics_lock: AbstractContextManager = nullcontext()
        """Held while returns are folded into the value normaliser (``GroupLearner.share_statistics``)."""

    def replay(self, batch: TensorDictBase, frames: int) -> dict[str, float]:
        """An off-policy manager's update: its options stored as transitions."""
        group = self.group
        rows, option_length = manager_transitions(batch, group, self.gamma, self.policy.observed_keys)
        if rows is None:
            return {}

        def evaluate(sample: TensorDictBase, successor: bool) -> dict[str, SoftHeadOutputs]:
            source = sample.get("successor" if successor else "state")
            output = self.policy.soft_manager_outputs(TensorDict({group: source}, batch_size=sample.batch_size))
            agent = sample.get("agent")
            policy = CategoricalPolicy(of_agent(output.policy.log_probs, agent))
            return {"manager": SoftHeadOutputs(of_agent(output.features, agent), policy, of_agent(output.value, agent))}

        metrics = self.algorithm.update(ReplayProblem("manager", rows, evaluate), frames).result(self.algorithm.optimizer.lr)
        metrics[tags.OPTION_LENGTH] = option_length
        return metrics

    def update(
        self, batch: TensorDictBase, successor: TensorDictBase, current: TensorDictBase | None, frames: int
    ) -> dict[str, float]:
        """The manager's update; ``current`` holds its outputs under the parameters ``successor`` was evaluated
        with (V-trace, and any level learning from lagged or asynchronous actors, re-evaluates the batch's values),
        ``None`` where the values stored at collection are current."""
        group, settings = self.group, self.settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        vtrace = self.targets is Targets.VTRACE
        reward = lanes(after.get(keys.REWARD))
        next_value = lanes(successor.get(keys.manager(group, keys.STATE_VALUE)))
        if self.rules.learned:
            reward, next_value = charge_switches(batch, successor, group, self.rules.switching_cost, reward, next_value)
        if current is None:
            value = lanes(data.get((keys.MANAGER, keys.STATE_VALUE)))
        else:
            value = lanes(current.get(keys.manager(group, keys.STATE_VALUE)))
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
                "old_log_prob": of_agent(decided.get((keys.MANAGER, keys.LOG_PROB)), agent),
                "option": state.get(chosen),
                "agent": agent,
                "weight": torch.ones(lane.numel(), device=lane.device),
            },
            batch_size=[lane.numel()],
        )
        runs = None
        if self.remembers:
            length = sequence_length(self.chunk, data.shape[1])
            rows_of, runs = self._sequences(batch, env, step, length)
        else:
            samples = self.policy.manager_inputs(TensorDict({group: decided}, batch_size=[lane.numel()]))

            def rows_of(indices: torch.Tensor) -> TensorDictBase:
                return self.policy.manager(TensorDict({group: samples[indices]}, batch_size=[len(indices)]))

        evaluate = self._evaluator(rows_of, target)
        extra: dict[str, float] = {}
        if vtrace:
            advantage, returns, extra = self._vtrace(transitions, target, evaluate)
        else:
            advantage, returns = transitions.advantage[transitions.valid], transitions.returns[transitions.valid]
        target.set("advantage", advantage)
        target.set("returns", returns)
        rows = rows_per_minibatch(settings, lane.numel(), 1)
        problem = LevelProblem("manager", lane.numel(), {"manager": target}, evaluate, rows, runs)
        with self.statistics_lock:
            update_value_norms(self.policy, keys.MANAGER, {"manager": target}, settings)
        metrics = self.algorithm.update(problem, frames)
        if self.rules.learned:
            self._termination_pass(batch, frames, metrics)
        result = metrics.result(self.algorithm.optimizer.lr) | extra
        result[tags.OPTION_LENGTH] = transitions.length[transitions.valid].float().mean().item()
        return result

    def _sequences(self, batch: TensorDictBase, env: torch.Tensor, step: torch.Tensor, length: int):
        """A recurrent manager's decisions: a function giving the manager evaluated at the decisions ``indices``
        (re-running its core over each sequence of ``length`` steps that holds one of them), and each decision's
        sequence. The manager's memory advances at every step, so its sequences are every step of an env, not only
        its decisions; its inputs are computed once (the embeddings it reads are detached)."""
        group = self.group
        envs, steps = batch.shape
        agents = batch.get(group).shape[-1]
        observed = TensorDict({group: batch.get(group), IS_INIT: batch.get(IS_INIT)}, batch_size=batch.shape)
        inputs = self.policy.manager_inputs(observed)  # [envs, time, agents] under the group
        inputs.set(IS_INIT, per_agent(batch.get(IS_INIT), agents))
        sequences = inputs.reshape(envs * steps // length, length, agents)
        run, position = env * (steps // length) + step // length, step % length

        def rows_of(indices: torch.Tensor) -> TensorDictBase:
            needed, local = torch.unique(run[indices], return_inverse=True)
            evaluated = as_sequences(TensorDict({group: sequences[needed]}, batch_size=[len(needed), length]), group)
            with set_recurrent_mode(True):
                self.policy.manager(evaluated)
            return evaluated[local, position[indices]]

        return rows_of, run

    def current(self, batch: TensorDictBase) -> TensorDictBase:
        """The manager's outputs at every step of ``batch`` with the current parameters."""
        if not self.remembers:
            return self.policy.evaluate_manager(batch.select(self.group).copy())
        envs, steps = batch.shape
        length = sequence_length(self.chunk, steps)
        inputs = batch.select(self.group, IS_INIT).copy().reshape(envs * steps // length, length)
        with set_recurrent_mode(True):
            self.policy.evaluate_manager(inputs)
        return inputs.reshape(envs, steps)

    def _evaluator(self, rows_of, target: TensorDictBase):
        group, value_coef = self.group, self.settings.value_coef

        def evaluate(indices: torch.Tensor) -> dict[str, HeadOutputs]:
            inputs = rows_of(indices)
            rows = target[indices]
            agent, chosen = rows.get("agent"), rows.get("option")
            distribution = manager_distribution(self.rules.mode, of_agent(inputs.get(keys.manager(group, keys.LOGITS)), agent))
            auxiliary = {}
            if self.rules.learned and "returns" in rows.keys():
                option_values = of_agent(inputs.get(keys.manager(group, keys.OPTION_VALUES)), agent)
                chosen_value = option_values.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
                auxiliary["option_value"] = value_coef * 0.5 * ((chosen_value - rows.get("returns")) ** 2).mean()
            return {
                "manager": HeadOutputs(
                    log_prob=distribution.log_prob(chosen),
                    entropy=distribution.entropy(),
                    value=of_agent(inputs.get(keys.manager(group, keys.STATE_VALUE)), agent).squeeze(-1),
                    distributions=(distribution,),
                    auxiliary_losses=auxiliary,
                    value_scale=self.policy.manager.module.heads.value_scale(),
                )
            }

        return evaluate

    def _vtrace(self, transitions, target: TensorDictBase, evaluate) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """V-trace advantages and returns over each lane's options, with the current manager policy as target."""
        valid = transitions.valid
        with torch.no_grad():
            current = evaluate(torch.arange(int(valid.sum())))["manager"].log_prob
        behaviour = torch.zeros_like(transitions.value)
        target_log_prob = torch.zeros_like(transitions.value)
        behaviour[valid], target_log_prob[valid] = target.get("old_log_prob"), current
        settings = self.settings
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
        metrics = importance_metrics(target.get("old_log_prob"), current, settings.rho_clip, "manager")
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

        rows = rows_per_minibatch(self.settings, samples.shape[0], samples.shape[1])
        gradient_epochs(self.algorithm.optimizer, samples.shape[0], rows, self.settings.epochs, loss_of, frames, metrics)

