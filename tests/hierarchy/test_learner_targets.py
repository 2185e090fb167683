"""The learner's targets: an IMPALA manager's values and successor values come from the same parameters."""

from __future__ import annotations

import pytest
import torch
from one_batch import collect_batch

from himo.hierarchy import manager_learner as learner_module
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.termination import lanes
from himo.envs import keys
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
    policy, batch = collect_batch(scenario, 64)
    (group,) = policy.groups
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


@pytest.mark.parametrize("overrides", [[], ["manager.termination={kind: learned}"], ["manager.goal={size: 4}"]])
def test_successor_values_read_from_the_next_step_equal_a_fresh_evaluation(overrides: list[str]) -> None:
    scenario = load("beacon", ["env.num_envs=2", "env.kwargs.max_steps=6", *overrides])
    # eval(): no dropout, so collection and evaluation give the same numbers.
    policy, batch = collect_batch(scenario, 48, evaluation_mode=True)
    (group,) = policy.groups
    algorithm = scenario.algorithm
    learner = GroupLearner(policy.groups[group], algorithm.manager, algorithm.workers, scenario.train.gamma, 48)
    assert learner.values_are_current
    with torch.no_grad():
        read = learner._successor(batch)
        evaluated = policy.groups[group].evaluate(batch.get(keys.NEXT).select(group).copy())
    assert batch.get((keys.NEXT, keys.DONE)).any()
    for key in read.keys(include_nested=True, leaves_only=True):
        expected, got = evaluated.get(key), read.get(key)
        if "goal" in str(overrides) and keys.WORKERS in key:
            # With goals, the next step's stored value reads the goal set there (a new one where the manager decides).
            same = ~batch.get((group, keys.MANAGER, keys.DECISION)).roll(-1, dims=1)
            expected, got = expected[same], got[same]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=str(key))
