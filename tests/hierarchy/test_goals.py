"""The manager's goals: set only at decisions, held for the option, reset at episode start, read by the workers
and learned through their losses, and fixed with a frozen manager."""

from __future__ import annotations

import pytest
import torch
from one_batch import collect_batch

from himo.envs import keys
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.state import IS_INIT
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load

GOALS = ["env.num_envs=4", "env.kwargs.max_steps=8", "manager.goal={size: 4}", "manager.termination.every=3"]
GROUP = "agents"


def collected(overrides: list[str], frames: int = 128):
    scenario = load("beacon", [*GOALS, *overrides])
    return scenario, *collect_batch(scenario, frames)


def test_a_goal_is_set_at_decisions_held_between_them_and_reset_at_episode_start() -> None:
    _, policy, batch = collected([])
    data = batch.get(GROUP)
    decision = data.get((keys.MANAGER, keys.DECISION))
    held, in_force = data.get((keys.MANAGER, keys.GOAL)), batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.GOAL))
    assert decision.any() and (~decision).any()
    assert torch.equal(in_force[~decision], held[~decision])
    assert (held[batch.get(IS_INIT).squeeze(-1)] == 0).all()
    with torch.no_grad():
        goals = policy.groups[GROUP].goals(policy.groups[GROUP].encode(batch.select(GROUP).clone()))
    assert torch.allclose(in_force[decision], goals[decision], atol=1e-6)
    assert in_force[decision].abs().sum() > 0


def test_goals_refreshed_at_every_step_follow_the_observations_while_the_option_is_held() -> None:
    _, policy, batch = collected(["manager.goal={size: 4, refresh: step}"])
    data = batch.get(GROUP)
    decision = data.get((keys.MANAGER, keys.DECISION))
    in_force = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.GOAL))
    with torch.no_grad():
        goals = policy.groups[GROUP].goals(policy.groups[GROUP].encode(batch.select(GROUP).clone()))
    torch.testing.assert_close(in_force, goals, rtol=0, atol=1e-6)  # decisions or not
    assert not torch.allclose(in_force[~decision], data.get((keys.MANAGER, keys.GOAL))[~decision])
    option = data.get((keys.MANAGER, keys.OPTION))
    after = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.OPTION))
    assert torch.equal(after[~decision], option[~decision])  # the worker still acts for the whole option


def test_the_workers_action_distributions_depend_on_the_goal() -> None:
    _, policy, batch = collected([])
    group = policy.groups[GROUP]
    logits = {}
    for value in (-1.0, 1.0):
        inputs = batch.select(GROUP).clone()
        inputs.set(keys.manager(GROUP, keys.ACTIVE_GOAL), torch.full_like(inputs.get(keys.manager(GROUP, keys.GOAL)), value))
        with torch.no_grad():
            group.evaluate_workers(inputs)
        logits[value] = {name: inputs.get(keys.worker(GROUP, name, keys.LOGITS)) for name in group.worker_names}
    for name in group.worker_names:
        assert not torch.allclose(logits[-1.0][name], logits[1.0][name]), name


def test_each_worker_reads_its_own_goal_and_its_goal_network_learns_only_from_its_losses() -> None:
    _, policy, batch = collected([])
    group = policy.groups[GROUP]
    names = group.worker_names
    inputs = batch.select(GROUP).clone()
    goals = torch.zeros_like(inputs.get(keys.manager(GROUP, keys.GOAL)))
    goals[..., names.index("audio"), :] = 1.0  # only the audio worker's goal differs from zero
    reference = batch.select(GROUP).clone().set(keys.manager(GROUP, keys.ACTIVE_GOAL), torch.zeros_like(goals))
    with torch.no_grad():
        group.evaluate_workers(inputs.set(keys.manager(GROUP, keys.ACTIVE_GOAL), goals))
        group.evaluate_workers(reference)
    for name in names:
        same = torch.equal(inputs.get(keys.worker(GROUP, name, keys.LOGITS)), reference.get(keys.worker(GROUP, name, keys.LOGITS)))
        assert same == (name != "audio"), name

    # The audio worker's value, from goals computed with gradient: only the audio worker's goal network gets one.
    encoded = group.encode(batch.select(GROUP).clone())
    encoded.set(keys.manager(GROUP, keys.ACTIVE_GOAL), group.goals(encoded))
    group.evaluate_workers(encoded)
    encoded.get(keys.worker(GROUP, "audio", keys.STATE_VALUE)).sum().backward()
    for name, network in zip(names, group.goal.networks):
        reached = any(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in network.parameters())
        assert reached == (name == "audio"), name


@pytest.mark.parametrize(("manager_frozen", "refresh"), [(False, "option"), (True, "option"), (False, "step")])
def test_the_goal_network_learns_through_the_workers_losses_unless_the_manager_is_frozen(
    manager_frozen: bool, refresh: str
) -> None:
    scenario, policy, batch = collected(
        [f"algorithm.manager.frozen={str(manager_frozen).lower()}", f"manager.goal={{size: 4, refresh: {refresh}}}"]
    )
    group = policy.groups[GROUP]
    before = {name: value.clone() for name, value in group.goal.state_dict().items()}
    encoder_before = [parameter.clone() for parameter in group.encoders.parameters()]
    algorithm = scenario.algorithm
    learner = GroupLearner(group, algorithm.manager, algorithm.workers, scenario.train.gamma, 128)
    learner.update(batch, 128)
    changed = [not torch.equal(before[name], value) for name, value in group.goal.state_dict().items()]
    assert any(not torch.equal(old, new) for old, new in zip(encoder_before, group.encoders.parameters()))
    if manager_frozen:
        assert not any(changed)
    else:
        assert all(changed)


def test_sac_workers_refuse_goals() -> None:
    with pytest.raises(ScenarioError, match="manager.goal: .*on-policy worker algorithm"):
        load("beacon", ["manager.goal={size: 4}", "algorithm.workers={name: sac}"])
