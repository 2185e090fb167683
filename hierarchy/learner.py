"""How one agent group learns from a collected batch: PPO at the worker level and, on the semi-MDP, at the manager level.

Workers: critic m learns the return of its own reward channel on every step; actor m learns with
PPO on its own ratio, each step weighted by its share ``w_m`` of the action (1 where it was the
active option and 0 elsewhere in select mode). Manager: the batch is compacted to decision points
(``hierarchy.semi_mdp``); its reward is the discounted team reward over each option and it
bootstraps with ``gamma ** k``; its PPO action is the chosen worker (select) or the sampled
weights (weighted). With learned termination (option-critic) the manager also learns:

- an option-value head ``Q(s, o)``, regressed on the semi-MDP returns at decision points (under
  Markov options, the value of starting ``o`` at ``s`` is also that of continuing it there);
- the termination heads, by the termination gradient: the loss ``beta_o(s_t) * (A(s_t, o) + c)``
  over every step that is not an episode start, with ``o`` the option of the previous step,
  ``A = Q(s_t, o) - sum_o' pi(o'|s_t) Q(s_t, o')`` detached (the baseline is the value of the
  manager's own policy under the same Q head, so the two heads' biases do not leak into it) and
  ``c`` the switching cost. As in PPOC (Klissarov et al., 2017) it takes the manager's epochs and
  minibatch size, after the manager's PPO epochs;
- the switching cost also lowers the manager's reward: each termination charges ``c`` to the last
  step of the option it ends; an option cut by the batch end is charged the expected cost
  ``c * beta_o(s')`` in its bootstrap.

Each level has its own optimiser, schedule, clipping and can be frozen (``agents.optim``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from tensordict import TensorDict, TensorDictBase
from torch.distributions import Categorical
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from agents.optim import LevelOptimizer, LevelSettings
from agents.ppo import ppo_terms
from envs import keys
from hierarchy import tags
from hierarchy.policy import GroupPolicy
from hierarchy.selectors import manager_distribution, termination_probability
from hierarchy.semi_mdp import compact_to_decisions, decision_indices
from hierarchy.state import IS_INIT


class PPOSettings(LevelSettings, Protocol):
    """A level's PPO settings (``scenarios.schema.LevelAlgorithmConfig`` satisfies this)."""

    @property
    def clip_epsilon(self) -> float: ...
    @property
    def entropy_coef(self) -> float: ...
    @property
    def value_coef(self) -> float: ...
    @property
    def epochs(self) -> int: ...
    @property
    def minibatch_size(self) -> int: ...
    @property
    def gae_lambda(self) -> float: ...


def minibatches(size: int, minibatch_size: int, epochs: int) -> Iterator[torch.Tensor]:
    """Shuffled index minibatches over ``size`` samples, ``epochs`` times."""
    for _ in range(epochs):
        permutation = torch.randperm(size)
        for start in range(0, size, minibatch_size):
            yield permutation[start : start + minibatch_size]


class LevelMetrics:
    """Running means of one level's metrics over its gradient steps, and its count of skipped steps."""

    def __init__(self, level: str) -> None:
        self.level = level
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.skipped = 0

    def add(self, terms: dict[str, float]) -> None:
        """The terms of one gradient step (each tag is averaged over the steps that reported it)."""
        for tag, value in terms.items():
            self.sums[tag] += value
            self.counts[tag] += 1

    def result(self, lr: float) -> dict[str, float]:
        """Means by tag, with the level's skipped steps and learning rate."""
        metrics = {tag: value / self.counts[tag] for tag, value in self.sums.items()}
        metrics[tags.level_metric("skipped_updates", self.level)] = float(self.skipped)
        metrics[tags.level_metric("lr", self.level)] = lr
        return metrics


def _lanes(tensor: torch.Tensor) -> torch.Tensor:
    """``[E, T, A(, 1)]`` to ``[E * A, T]``: one lane per agent of each env, in time order."""
    if tensor.dim() == 4:
        tensor = tensor.squeeze(-1)
    return tensor.transpose(1, 2).reshape(-1, tensor.shape[1])


class GroupLearner:
    """Updates one :class:`GroupPolicy` from batches ``[envs, time]`` collected with it."""

    def __init__(
        self, policy: GroupPolicy, manager: PPOSettings, workers: PPOSettings, gamma: float, total_frames: int
    ) -> None:
        self.policy = policy
        self.group = policy.group
        self.manager_settings = manager
        self.worker_settings = workers
        self.rules = policy.rules
        self.gamma = gamma
        self.worker_optimizer = LevelOptimizer.from_settings(
            policy.worker_parameters(), workers, total_frames, name=f"{self.group} workers"
        )
        # With a single worker the manager has nothing to choose: a flat agent.
        self.manager_optimizer = (
            LevelOptimizer.from_settings(policy.manager_parameters(), manager, total_frames, name=f"{self.group} manager")
            if len(policy.worker_names) > 1
            else None
        )

    def state_dict(self) -> dict[str, object]:
        """Optimiser and schedule state of both levels."""
        return {
            "workers": self.worker_optimizer.state_dict(),
            "manager": self.manager_optimizer.state_dict() if self.manager_optimizer else None,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.worker_optimizer.load_state_dict(state["workers"])
        if self.manager_optimizer is not None:
            self.manager_optimizer.load_state_dict(state["manager"])

    def update(self, batch: TensorDictBase, frames: int) -> dict[str, float]:
        """One round of learning on both levels; returns metrics keyed by their TensorBoard tags."""
        group = self.group
        with torch.no_grad():
            successor = self.policy.evaluate(batch.get(keys.NEXT).select(group).copy())
        metrics = self._update_workers(batch, successor, frames)
        if self.manager_optimizer is not None:
            metrics |= self._update_manager(batch, successor, frames)
        return metrics

    def _update_workers(self, batch: TensorDictBase, successor: TensorDictBase, frames: int) -> dict[str, float]:
        group, settings = self.group, self.worker_settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        done = after.get(keys.DONE).transpose(1, 2)
        terminated = after.get(keys.TERMINATED).transpose(1, 2)
        weights = after.get((keys.MANAGER, keys.WEIGHTS))
        targets = {}
        for index, name in enumerate(self.policy.worker_names):
            advantage, returns = vec_generalized_advantage_estimate(
                self.gamma,
                settings.gae_lambda,
                data.get((keys.WORKERS, name, keys.STATE_VALUE)).transpose(1, 2),
                successor.get(keys.worker(group, name, keys.STATE_VALUE)).transpose(1, 2),
                after.get((keys.REWARD_CHANNELS, name)).transpose(1, 2),
                done,
                terminated,
                time_dim=-2,
            )
            targets[name] = TensorDict(
                {
                    "advantage": advantage.transpose(1, 2).squeeze(-1),
                    "returns": returns.transpose(1, 2).squeeze(-1),
                    "old_log_prob": data.get((keys.WORKERS, name, keys.LOG_PROB)),
                    "active": weights[..., index],
                },
                batch_size=weights.shape[:-1],
            ).reshape(-1)
        samples = data.select(keys.OBSERVATION, keys.ACTION).reshape(-1)
        return self._ppo_epochs(samples, targets, frames, level="workers").result(self.worker_optimizer.lr)

    def _optimise(
        self,
        level: str,
        samples: TensorDictBase,
        loss_of: Callable[[TensorDictBase, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
        epochs: int,
        frames: int,
        metrics: LevelMetrics,
    ) -> LevelMetrics:
        """Minibatch gradient steps of one level: ``loss_of(inputs, indices)`` on the evaluated minibatch."""
        settings = self.worker_settings if level == "workers" else self.manager_settings
        optimizer = self.worker_optimizer if level == "workers" else self.manager_optimizer
        for indices in minibatches(samples.shape[0], settings.minibatch_size, epochs):
            inputs = TensorDict({self.group: samples[indices]}, batch_size=[len(indices)])
            if level == "workers":
                self.policy.evaluate_workers(inputs)
            else:
                self.policy.evaluate_manager(inputs)
            loss, terms = loss_of(inputs, indices)
            report = optimizer.step(loss, frames)
            optimizer.raise_if_diverged()
            # A skipped update's terms are not finite: it is counted, not averaged in.
            if report.skipped:
                metrics.skipped += 1
                continue
            metrics.add({**terms, tags.level_metric("grad_norm", level): report.grad_norm})
        return metrics

    def _ppo_epochs(
        self, samples: TensorDictBase, targets: dict[str, TensorDictBase], frames: int, level: str
    ) -> LevelMetrics:
        group = self.group
        settings = self.worker_settings if level == "workers" else self.manager_settings

        def loss_of(inputs: TensorDictBase, indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            loss = torch.zeros(())
            terms_of_minibatch: dict[str, float] = defaultdict(float)
            for name, target in targets.items():
                batch_target = target[indices]
                if level == "workers":
                    distribution = Categorical(logits=inputs.get(keys.worker(group, name, keys.LOGITS)))
                    value = inputs.get(keys.worker(group, name, keys.STATE_VALUE)).squeeze(-1)
                    chosen = inputs.get((group, keys.ACTION))
                else:
                    distribution = manager_distribution(self.rules.mode, inputs.get(keys.manager(group, keys.LOGITS)))
                    value = inputs.get(keys.manager(group, keys.STATE_VALUE)).squeeze(-1)
                    chosen = batch_target.get("option")
                terms = ppo_terms(
                    log_prob=distribution.log_prob(chosen),
                    old_log_prob=batch_target.get("old_log_prob"),
                    advantage=batch_target.get("advantage"),
                    entropy=distribution.entropy(),
                    value=value,
                    returns=batch_target.get("returns"),
                    actor_weight=batch_target.get("active"),
                    critic_weight=torch.ones_like(value),
                    clip_epsilon=settings.clip_epsilon,
                    entropy_coef=settings.entropy_coef,
                    value_coef=settings.value_coef,
                )
                loss = loss + terms.total()
                for tag, value in (
                    (tags.loss(level, "objective"), terms.loss_objective),
                    (tags.loss(level, "critic"), terms.loss_critic),
                    (tags.loss(level, "entropy"), terms.loss_entropy),
                    (tags.level_metric("kl", level), terms.kl),
                    (tags.level_metric("clip_fraction", level), terms.clip_fraction),
                    (tags.entropy(level), terms.entropy),
                ):
                    terms_of_minibatch[tag] += value.item() / len(targets)
                if level == "manager" and self.rules.learned:
                    option_values = inputs.get(keys.manager(group, keys.OPTION_VALUES))
                    chosen_value = option_values.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
                    option_loss = settings.value_coef * 0.5 * ((chosen_value - batch_target.get("returns")) ** 2).mean()
                    loss = loss + option_loss
                    terms_of_minibatch[tags.loss(level, "option_value")] += option_loss.item()
            return loss, terms_of_minibatch

        return self._optimise(level, samples, loss_of, settings.epochs, frames, LevelMetrics(level))

    def _update_manager(self, batch: TensorDictBase, successor: TensorDictBase, frames: int) -> dict[str, float]:
        group, settings = self.group, self.manager_settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        reward = _lanes(after.get(keys.REWARD))
        next_value = _lanes(successor.get(keys.manager(group, keys.STATE_VALUE)))
        if self.rules.learned:
            reward, next_value = self._charge_switches(batch, successor, reward, next_value)
        transitions = compact_to_decisions(
            decision=_lanes(data.get((keys.MANAGER, keys.DECISION))),
            reward=reward,
            terminated=_lanes(after.get(keys.TERMINATED)),
            done=_lanes(after.get(keys.DONE)),
            value=_lanes(data.get((keys.MANAGER, keys.STATE_VALUE))),
            next_value=next_value,
            gamma=self.gamma,
            lmbda=settings.gae_lambda,
        )
        lane, step = decision_indices(transitions)
        valid = transitions[transitions.valid]
        if lane.numel() == 0:
            return {}
        envs, time, agents = data.shape
        per_lane = data.select(keys.OBSERVATION, (keys.MANAGER, keys.LOG_PROB)).transpose(1, 2).reshape(envs * agents, time)
        samples = per_lane[lane, step]
        state = after.select((keys.MANAGER, keys.OPTION), (keys.MANAGER, keys.WEIGHTS)).transpose(1, 2)
        state = state.reshape(envs * agents, time)[lane, step]
        chosen = (keys.MANAGER, keys.OPTION) if self.rules.mode == "select" else (keys.MANAGER, keys.WEIGHTS)
        target = TensorDict(
            {
                "advantage": valid.advantage,
                "returns": valid.returns,
                "old_log_prob": samples.get((keys.MANAGER, keys.LOG_PROB)),
                "option": state.get(chosen),
                "active": torch.ones_like(valid.advantage),
            },
            batch_size=[lane.numel()],
        )
        metrics = self._ppo_epochs(samples.select(keys.OBSERVATION), {"manager": target}, frames, level="manager")
        if self.rules.learned:
            self._termination_pass(batch, frames, metrics)
        result = metrics.result(self.manager_optimizer.lr)
        result[tags.OPTION_LENGTH] = valid.length.float().mean().item()
        return result

    def _charge_switches(
        self, batch: TensorDictBase, successor: TensorDictBase, reward: torch.Tensor, next_value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The manager's ``[L, T]`` reward and bootstrap values less the switching cost (see the module docstring)."""
        group, cost = self.group, self.rules.switching_cost
        termination = _lanes(batch.get((group, keys.MANAGER, keys.TERMINATION))).to(reward.dtype)
        reward = reward - cost * torch.cat([termination[:, 1:], torch.zeros_like(termination[:, :1])], dim=1)
        beta = termination_probability(
            successor.get(keys.manager(group, keys.TERMINATION_LOGITS)),
            batch.get((keys.NEXT, group, keys.MANAGER, keys.OPTION)),
        )
        running = ~_lanes(batch.get((keys.NEXT, group, keys.DONE)))[:, -1]
        next_value = next_value.clone()
        next_value[:, -1] -= cost * _lanes(beta)[:, -1] * running
        return reward, next_value

    def termination_samples(self, batch: TensorDictBase) -> TensorDictBase:
        """The steps that feed the termination gradient, flat: every step but an episode's first.

        Each holds the observation ``s_t`` and the option of the previous step (the option state read at ``t``).
        """
        data = batch.get(self.group)
        is_init = batch.get(IS_INIT).expand(data.shape)
        return data.select(keys.OBSERVATION, (keys.MANAGER, keys.OPTION))[~is_init]

    def termination_loss(self, inputs: TensorDictBase) -> tuple[torch.Tensor, dict[str, float]]:
        """The option-critic termination loss on evaluated ``termination_samples``, and its metrics."""
        group = self.group
        option = inputs.get(keys.manager(group, keys.OPTION))
        beta = termination_probability(inputs.get(keys.manager(group, keys.TERMINATION_LOGITS)), option)
        with torch.no_grad():
            option_values = inputs.get(keys.manager(group, keys.OPTION_VALUES))
            policy = inputs.get(keys.manager(group, keys.LOGITS)).softmax(-1)
            advantage = option_values.gather(-1, option.unsqueeze(-1)).squeeze(-1) - (policy * option_values).sum(-1)
        loss = (beta * (advantage + self.rules.switching_cost)).mean()
        return loss, {
            tags.loss("manager", "termination"): loss.item(),
            tags.TERMINATION_PROBABILITY: beta.mean().item(),
            tags.TERMINATION_ADVANTAGE: advantage.mean().item(),
        }

    def _termination_pass(self, batch: TensorDictBase, frames: int, metrics: LevelMetrics) -> None:
        samples = self.termination_samples(batch)
        if samples.shape[0]:
            self._optimise(
                "manager",
                samples,
                lambda inputs, _: self.termination_loss(inputs),
                epochs=self.manager_settings.epochs,
                frames=frames,
                metrics=metrics,
            )
