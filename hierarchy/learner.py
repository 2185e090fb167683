"""How one agent group learns from a collected batch: PPO at the worker level and, on the semi-MDP, at the manager level.

Workers: critic m learns the return of its own reward channel on every step; actor m learns from
the steps where it was the active option. Manager: the batch is compacted to decision points
(``hierarchy.semi_mdp``); its reward is the discounted team reward over each option and it
bootstraps with ``gamma ** k``. Each level has its own optimiser, schedule, clipping and can be
frozen (``agents.optim``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
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
from hierarchy.semi_mdp import compact_to_decisions, decision_indices


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
        """One round of PPO epochs on both levels; returns metrics keyed by their TensorBoard tags."""
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
        option = after.get((keys.MANAGER, keys.OPTION))
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
                    "active": (option == index).float(),
                },
                batch_size=option.shape,
            ).reshape(-1)
        samples = data.select(keys.OBSERVATION, keys.ACTION).reshape(-1)
        return self._ppo_epochs(samples, targets, frames, level="workers")

    def _ppo_epochs(
        self, samples: TensorDictBase, targets: dict[str, TensorDictBase], frames: int, level: str
    ) -> dict[str, float]:
        group = self.group
        settings = self.worker_settings if level == "workers" else self.manager_settings
        optimizer = self.worker_optimizer if level == "workers" else self.manager_optimizer
        sums: dict[str, float] = defaultdict(float)
        steps, skipped = 0, 0
        for indices in minibatches(samples.shape[0], settings.minibatch_size, settings.epochs):
            inputs = TensorDict({group: samples[indices]}, batch_size=[len(indices)])
            if level == "workers":
                self.policy.evaluate_workers(inputs)
            else:
                self.policy.evaluate_manager(inputs)
            loss = torch.zeros(())
            terms_of_minibatch: dict[str, float] = defaultdict(float)
            for name, target in targets.items():
                batch_target = target[indices]
                if level == "workers":
                    logits = inputs.get(keys.worker(group, name, keys.LOGITS))
                    value = inputs.get(keys.worker(group, name, keys.STATE_VALUE)).squeeze(-1)
                    chosen = inputs.get((group, keys.ACTION))
                else:
                    logits = inputs.get(keys.manager(group, keys.LOGITS))
                    value = inputs.get(keys.manager(group, keys.STATE_VALUE)).squeeze(-1)
                    chosen = batch_target.get("option")
                distribution = Categorical(logits=logits)
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
            report = optimizer.step(loss, frames)
            optimizer.raise_if_diverged()
            # A skipped update's terms are not finite: it is counted, not averaged in.
            if report.skipped:
                skipped += 1
                continue
            terms_of_minibatch[tags.level_metric("grad_norm", level)] = report.grad_norm
            for tag, value in terms_of_minibatch.items():
                sums[tag] += value
            steps += 1
        metrics = {name: value / steps for name, value in sums.items()}
        metrics[tags.level_metric("skipped_updates", level)] = float(skipped)
        metrics[tags.level_metric("lr", level)] = optimizer.lr
        return metrics

    def _update_manager(self, batch: TensorDictBase, successor: TensorDictBase, frames: int) -> dict[str, float]:
        group, settings = self.group, self.manager_settings
        data, after = batch.get(group), batch.get((keys.NEXT, group))
        transitions = compact_to_decisions(
            decision=_lanes(data.get((keys.MANAGER, keys.DECISION))),
            reward=_lanes(after.get(keys.REWARD)),
            terminated=_lanes(after.get(keys.TERMINATED)),
            done=_lanes(after.get(keys.DONE)),
            value=_lanes(data.get((keys.MANAGER, keys.STATE_VALUE))),
            next_value=_lanes(successor.get(keys.manager(group, keys.STATE_VALUE))),
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
        options = _lanes(after.get((keys.MANAGER, keys.OPTION)))[lane, step]
        target = TensorDict(
            {
                "advantage": valid.advantage,
                "returns": valid.returns,
                "old_log_prob": samples.get((keys.MANAGER, keys.LOG_PROB)),
                "option": options,
                "active": torch.ones_like(valid.advantage),
            },
            batch_size=[lane.numel()],
        )
        metrics = self._ppo_epochs(samples.select(keys.OBSERVATION), {"manager": target}, frames, level="manager")
        metrics[tags.OPTION_LENGTH] = valid.length.float().mean().item()
        return metrics
