"""IMPALA for one level: policy gradient with V-trace targets, for actors that run on lagged policies.

The actors collect with a copy of the policy that may be several updates old (an asynchronous
collector, see ``himo.scenarios.run``). The learner corrects for the lag with V-trace (``himo.agents.vtrace``):
its critic regresses on ``v_s`` and its actor follows ``rho_s (r_s + gamma v_{s+1} - V(s))
grad log pi(a_s|s)``, with the importance weights clipped at ``rho_clip`` (and ``c_clip`` inside the
targets). The targets are estimated by the hierarchical learner (``estimator = "vtrace"``); the loss
is the policy-gradient one of :mod:`himo.agents.a2c`, without advantage normalisation.
"""

from __future__ import annotations

from typing import Protocol

from himo.agents.a2c import PolicyGradientSettings, policy_gradient_update
from himo.agents.base import GradientAlgorithm, LevelMetrics, LevelProblem


class ImpalaSettings(PolicyGradientSettings, Protocol):
    """A level's IMPALA settings (``himo.scenarios.algorithms.ImpalaConfig`` satisfies this)."""

    @property
    def rho_clip(self) -> float: ...
    @property
    def c_clip(self) -> float: ...
    @property
    def epochs(self) -> int: ...
    @property
    def minibatch_size(self) -> int: ...


class Impala(GradientAlgorithm):
    """The IMPALA learner of one level: V-trace-corrected policy gradient over minibatch epochs."""

    estimator = "vtrace"
    settings: ImpalaSettings

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """Policy-gradient minibatch epochs on the V-trace targets."""
        return policy_gradient_update(
            self.optimizer, self.settings, problem, frames, problem.rows_per_minibatch, self.settings.epochs
        )
