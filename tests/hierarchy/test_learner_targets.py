"""The learner's targets: values and successor values come from the same parameters (an IMPALA manager; both levels
when the batch was collected by asynchronous actors, whose parameters may have changed since)."""

from __future__ import annotations

import pytest
import torch
from one_batch import collect_batch

from himo.hierarchy import learner as group_learner_module
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


def test_asynchronous_targets_compare_values_and_successor_values_of_one_value_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """A3C's batch was collected while other processes updated the shared parameters: the values stored then are
    stale. Both the values and the successor values the targets compare come from the parameters as they are now."""
    overrides = ["algorithm.workers={name: a3c}", "algorithm.manager={name: a3c}", "manager.termination.every=1"]
    scenario = load("beacon", ["env.num_envs=2", "env.kwargs.max_steps=64", *overrides])
    policy, batch = collect_batch(scenario, 64, evaluation_mode=True)
    (group,) = policy.groups
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"workers": [], "manager": []}
    gae, compact = group_learner_module.vec_generalized_advantage_estimate, learner_module.compact_to_decisions

    def workers_spy(gamma, lmbda, value, next_value, *rest):
        seen["workers"].append((value.squeeze(-1), next_value.squeeze(-1)))
        return gae(gamma, lmbda, value, next_value, *rest)

    def manager_spy(**arguments):
        seen["manager"].append((arguments["value"], arguments["next_value"]))
        return compact(**arguments)

    monkeypatch.setattr(group_learner_module, "vec_generalized_advantage_estimate", workers_spy)
    monkeypatch.setattr(learner_module, "compact_to_decisions", manager_spy)
    learned = policy.groups[group]
    with torch.no_grad():  # another process's update lands after collection: every critic has moved
        for parameter in [*learned.worker_model().critic, *learned.manager_model().critic]:
            parameter.add_(0.5)
    algorithm = scenario.algorithm
    learner = GroupLearner(learned, algorithm.manager, algorithm.workers, scenario.train.gamma, 64)
    assert not learner.values_are_current
    learner.update(batch, 64)
    continuing = ~lanes(batch.get((keys.NEXT, group, keys.DONE)))[:, :-1]
    assert continuing.sum() > 32 and len(seen["workers"]) == 3 and len(seen["manager"]) == 1
    for level, pairs in seen.items():
        for value, next_value in pairs:
            gap = (value[:, 1:] - next_value[:, :-1])[continuing].abs()
            assert gap.max() < 1e-4, (level, gap.max())


class RecordingLock:
    """A lock that records whether it is held (one process: acquiring it twice is an error, as with A3C's lock)."""

    def __init__(self) -> None:
        self.held = False

    def __enter__(self) -> None:
        assert not self.held, "the statistics lock was acquired while held"
        self.held = True

    def __exit__(self, *error: object) -> None:
        self.held = False


def test_shared_statistics_change_and_are_read_for_targets_only_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ["algorithm.workers={name: a3c, value_norm: running}", "algorithm.manager={name: a3c, value_norm: running}"]
    scenario = load("beacon", ["env.num_envs=2", "env.kwargs.max_steps=64", *overrides])
    policy, batch = collect_batch(scenario, 64)
    (group,) = policy.groups
    algorithm = scenario.algorithm
    learner = GroupLearner(policy.groups[group], algorithm.manager, algorithm.workers, scenario.train.gamma, 64)
    lock = RecordingLock()
    learner.share_statistics(lock)
    held: list[tuple[str, bool]] = []

    def spy(owner: object, name: str, kind: str) -> None:
        original = getattr(owner, name)

        def recorded(*arguments):
            held.append((kind, lock.held))
            return original(*arguments)

        monkeypatch.setattr(owner, name, recorded)

    spy(group_learner_module, "update_value_norms", "norms")
    spy(learner_module, "update_value_norms", "norms")
    spy(learner, "_successor", "targets")
    spy(learner, "_current_worker_outputs", "targets")
    learner.update(batch, 64)
    assert sorted(set(held)) == [("norms", True), ("targets", True)] and len(held) == 4, held
