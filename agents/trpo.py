"""TRPO for one level: a natural-gradient actor step inside a KL trust region, and a critic by regression.

Each batch: the actor (the level's policy parameters, encoders included) takes one
:func:`himo.agents.natural_gradient.trpo_step` on the whole batch, maximising the weighted surrogate
``mean_w(ratio * A) + entropy_coef * entropy`` (advantages standardised per head) under
``mean_w KL(pi_before || pi_after) <= max_kl``, both summed over the level's heads, where
``mean_w`` weighs each sample by the head's share of the action. The critics (the value heads, and
the manager's option-value and termination heads) then regress on their targets with the level's
optimiser for ``epochs`` passes of minibatches; they do not move the actor's parameters, so the
trust region holds for the policy that acts.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch.nn.attention import SDPBackend, sdpa_kernel

from himo.agents.base import HeadOutputs, LevelMetrics, LevelModel, LevelProblem, add_terms, gradient_epochs, head_diagnostics
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.natural_gradient import trpo_step
from himo.agents.optim import LevelOptimizer, select_parameters
from himo.agents.ppo import normalized, weighted_mean
from himo.agents.settings import PolicyGradientConfig, epochs_field, gae_lambda_field, minibatch_size_field


class TRPOConfig(PolicyGradientConfig):
    """Trust-region policy optimisation: a natural-gradient step under a KL bound, critics by regression."""

    name: Literal["trpo"]
    max_kl: float = Field(0.01, gt=0.0, description="trpo: bound on the mean KL divergence of one policy step.")
    damping: float = Field(0.1, ge=0.0, description="trpo: damping added to the Fisher-vector products.")
    cg_iterations: int = Field(10, ge=1, description="trpo: conjugate-gradient iterations.")
    backtrack_steps: int = Field(10, ge=1, description="trpo: line-search trials, each shorter by backtrack_ratio.")
    backtrack_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="trpo: step shrink factor of the line search.")
    epochs: int = epochs_field(4)
    minibatch_size: int = minibatch_size_field(256)
    gae_lambda: float = gae_lambda_field(0.95)


class TRPO:
    """Trust-region policy optimisation of one level."""

    def __init__(self, settings: TRPOConfig, model: LevelModel, total_frames: int, name: str) -> None:
        self.settings = settings
        self.total_frames = total_frames
        self.actor = select_parameters(model.policy, trainable_only=False)
        if settings.frozen:
            for parameter in self.actor:
                parameter.requires_grad_(False)
        self.optimizer = LevelOptimizer.from_settings(model.critic, settings, total_frames, name=name)

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """One trust-region actor step on the whole batch, then critic regression epochs."""
        metrics = LevelMetrics(problem.level)
        if self.settings.frozen:
            return metrics
        # Fisher-vector products differentiate twice; the fused attention kernels have no double backward.
        with sdpa_kernel(SDPBackend.MATH):
            self._actor_step(problem, metrics, self.settings.entropy_at(frames, self.total_frames))
        return gradient_epochs(
            self.optimizer, problem.rows, problem.rows_per_minibatch, self.settings.epochs,
            lambda indices: self._critic_loss(problem, indices), frames, metrics, problem.runs,
        )

    def _actor_step(self, problem: LevelProblem, metrics: LevelMetrics, entropy_coef: float) -> None:
        settings, every_row = self.settings, torch.arange(problem.rows)
        with torch.no_grad():
            before = problem.evaluate(every_row)
        weights = {head: target.get("weight") for head, target in problem.targets.items()}
        advantages = {head: normalized(target.get("advantage"), weights[head]) for head, target in problem.targets.items()}
        def surrogate_of(outputs: dict[str, HeadOutputs]) -> torch.Tensor:
            total = torch.zeros(())
            for head, output in outputs.items():
                ratio = (output.log_prob - problem.targets[head].get("old_log_prob")).exp()
                total = total + weighted_mean(ratio * advantages[head], weights[head])
                total = total + entropy_coef * weighted_mean(output.entropy, weights[head])
            return total

        def kl_of(outputs: dict[str, HeadOutputs]) -> torch.Tensor:
            return sum(
                (weighted_mean(output.kl_from(before[head]), weights[head]) for head, output in outputs.items()),
                torch.zeros(()),
            )

        def both() -> tuple[torch.Tensor, torch.Tensor]:
            outputs = problem.evaluate(every_row)
            return surrogate_of(outputs), kl_of(outputs)

        report = trpo_step(
            [parameter for parameter in self.actor if parameter.requires_grad],
            lambda: surrogate_of(problem.evaluate(every_row)),
            lambda: kl_of(problem.evaluate(every_row)),
            max_kl=settings.max_kl,
            damping=settings.damping,
            cg_iterations=settings.cg_iterations,
            backtrack_steps=settings.backtrack_steps,
            backtrack_ratio=settings.backtrack_ratio,
            surrogate_and_kl=both,
        )
        diagnostics = {
            "kl": report.kl,
            "accepted": float(report.accepted),
            "step_fraction": report.step_fraction,
            "line_search_steps": float(report.line_search_steps),
            "surrogate_improvement": report.improvement,
            "policy_grad_norm": report.gradient_norm,
            "entropy": sum(weighted_mean(output.entropy, weights[head]).item() for head, output in before.items())
            / len(before),
        }
        step_metrics: dict[str, float] = {}
        add_terms(step_metrics, problem.level, diagnostics, ["policy"], "policy")  # one step for the whole level
        metrics.add(step_metrics)

    def _critic_loss(self, problem: LevelProblem, indices: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        outputs = problem.evaluate(indices)
        loss, metrics = torch.zeros(()), {}
        for head, output in outputs.items():
            critic = self.settings.value_coef * 0.5 * (output.value_error(problem.targets[head][indices].get("returns")) ** 2).mean()
            loss = loss + critic + output.auxiliary_loss()
            add_terms(metrics, problem.level, head_diagnostics({"loss_critic": critic.detach()}, output), list(outputs), head)
        return loss, metrics

    def state_dict(self) -> dict[str, Any]:
        """The critic optimiser's state (the actor step keeps none)."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])


DECLARATION = AlgorithmDeclaration(
    name="trpo",
    config=TRPOConfig,
    algorithm=TRPO,
    targets=Targets.GAE,
    collection=Collection.SYNCHRONOUS,
    diagnostics=("kl", "line_search_steps", "step_fraction", "accepted"),
)
