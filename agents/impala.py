"""IMPALA for one level: policy gradient with V-trace targets, for actors that run on lagged policies.

The actors collect with a copy of the policy that may be several updates old (an asynchronous
collector, see ``himo.scenarios.collection``). The learner corrects for the lag with V-trace
(``himo.agents.vtrace``): its critic regresses on ``v_s`` and its actor follows ``rho_s (r_s + gamma
v_{s+1} - V(s)) grad log pi(a_s|s)``, with the importance weights clipped at ``rho_clip`` (and
``c_clip`` inside the targets). The targets are estimated by the hierarchical learner
(``Targets.VTRACE``); the loss is the policy-gradient one of :mod:`himo.agents.a2c`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from himo.agents.a2c import policy_gradient_update
from himo.agents.base import GradientAlgorithm, LevelMetrics, LevelProblem
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.settings import PolicyGradientConfig, epochs_field, minibatch_size_field, normalize_advantage_field


class ImpalaConfig(PolicyGradientConfig):
    """IMPALA: actors on lagged policies (an asynchronous collector), V-trace-corrected policy gradient."""

    name: Literal["impala"]
    rho_clip: float = Field(1.0, gt=0.0, description="impala: clip of the importance weights in the policy gradient and targets.")
    c_clip: float = Field(1.0, gt=0.0, description="impala: clip of the trace coefficients of the V-trace targets.")
    epochs: int = epochs_field(1)
    minibatch_size: int = minibatch_size_field(256)
    normalize_advantage: bool = normalize_advantage_field()

    @property
    def gae_lambda(self) -> float:
        """Unused by V-trace; the manager's semi-MDP compaction computes GAE targets beside it."""
        return 1.0


class Impala(GradientAlgorithm):
    """The IMPALA learner of one level: V-trace-corrected policy gradient over minibatch epochs."""

    settings: ImpalaConfig

    def update(self, problem: LevelProblem, frames: int) -> LevelMetrics:
        """Policy-gradient minibatch epochs on the V-trace targets."""
        entropy_coef = self.settings.entropy_at(frames, self.total_frames)
        return policy_gradient_update(
            self.optimizer, self.settings, problem, frames, problem.rows_per_minibatch, self.settings.epochs, entropy_coef
        )


DECLARATION = AlgorithmDeclaration(
    name="impala",
    config=ImpalaConfig,
    algorithm=Impala,
    targets=Targets.VTRACE,
    collection=Collection.LAGGED,
    diagnostics=("importance_weight", "importance_clipped"),
)
