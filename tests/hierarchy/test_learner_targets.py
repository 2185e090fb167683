"""The learner's targets: an IMPALA manager's values and successor values come from the same parameters."""

from __future__ import annotations

import pytest
import torch
from torchrl.collectors import Collector

from himo.hierarchy import learner as learner_module
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.termination import lanes
from himo.envs import keys
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load

IMPALA_BEACON = [
    "env.num_envs=2",
    "env.kwargs.max_steps=64",
    "algorithm.workers={name: impala, lr: 0.05}",  # a large worker step: it moves the encoders the manager reads
    "algorithm.manager={name: impala}",
    "manager.termination.every=1",  # a decision at every step: each value's successor is the next decision's value
]


def test_impala_manager_compares_values_and_successor_values_of_one_value_function(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load("beacon", IMPALA_BEACON)
    seed_everything(0)
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    (group,) = policy.groups
    collector = Collector(env, policy, frames_per_batch=64, total_frames=64, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    seen = {}
    compact = learner_module.compact_to_decisions

    def spy(**arguments):
        seen.update(value=arguments["value"], next_value=arguments["next_value"])
        return compact(**arguments)

    monkeypatch.setattr(learner_module, "compact_to_decisions", spy)
    algorithm = scenario.algorithm
    learner = GroupLearner(policy.groups[group], algorithm.manager, algorithm.workers, scenario.train.gamma, 64)
    learner.update(batch, 64)
    # Where no episode ended, the successor of step t is step t + 1: the same state, so the same value when both
    # are evaluated with the same parameters.
    continuing = ~lanes(batch.get((keys.NEXT, group, keys.DONE)))[:, :-1]
    gap = (seen["value"][:, 1:] - seen["next_value"][:, :-1])[continuing].abs()
    assert continuing.sum() > 32
    assert gap.max() < 1e-5, gap.max()
