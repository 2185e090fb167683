"""Weighted mode and learned termination through the public path: a built-in scenario, its env and policy, a collector.

Weighted mode: the weights are option state (constant between decisions, reset at episode start,
on the simplex), the manager's Dirichlet and the action's mixture log-probabilities match a hand
computation, and greedy evaluation takes the Dirichlet's mean and the mixture's most likely
action. Learned termination: the manager decides exactly at episode starts and where a
termination was drawn, the draw is of the previous step's option, and the termination gradient
ignores episode-start steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType

from himo.envs import keys
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.policy import HierarchicalPolicy
from himo.hierarchy.selectors import CONCENTRATION_FLOOR
from himo.hierarchy.state import IS_INIT
from himo.envs.registry import agent_groups
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load

ENVS, MAX_STEPS, STEPS = 2, 8, 28
SMALL_BEACON = [f"env.num_envs={ENVS}", f"env.kwargs.max_steps={MAX_STEPS}"]
WEIGHTED = [*SMALL_BEACON, "manager.mode=weighted", "manager.termination.every=3"]
LEARNED = [*SMALL_BEACON, "manager.termination={kind: learned, switching_cost: 0.5}"]


def collect(
    overrides: list[str],
    exploration: ExplorationType = ExplorationType.RANDOM,
    prepare: Callable[[HierarchicalPolicy], None] = lambda policy: None,
) -> tuple[TensorDictBase, str, HierarchicalPolicy]:
    """``[envs, time]`` steps of a small beacon (batches of 7 steps, concatenated), its group and policy."""
    scenario = load("beacon", overrides)
    seed_everything(0)
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    prepare(policy)
    (group,) = agent_groups(env)
    collector = Collector(
        env,
        policy,
        frames_per_batch=ENVS * 7,
        total_frames=ENVS * STEPS,
        exploration_type=exploration,
        auto_register_policy_transforms=False,
    )
    data = torch.cat([batch.clone() for batch in collector], dim=1)
    collector.shutdown()
    # Acting does not keep the logits it drew from; the same parameters give them again from the observations.
    with torch.no_grad():
        policy.groups[group].evaluate(data)
    return data, group, policy


def manager(data: TensorDictBase, group: str, leaf: str, after: bool = False) -> torch.Tensor:
    return data.get((keys.NEXT, group, keys.MANAGER, leaf) if after else (group, keys.MANAGER, leaf))


def is_init_of(data: TensorDictBase, group: str) -> torch.Tensor:
    return data.get(IS_INIT).expand_as(manager(data, group, keys.DECISION))


@pytest.fixture(scope="module")
def weighted() -> tuple[TensorDictBase, str, HierarchicalPolicy]:
    return collect(WEIGHTED)


def test_weights_are_option_state_on_the_simplex(weighted) -> None:
    data, group, _ = weighted
    decision, is_init = manager(data, group, keys.DECISION), is_init_of(data, group)
    weights_in, weights_out = manager(data, group, keys.WEIGHTS), manager(data, group, keys.WEIGHTS, after=True)
    assert weights_out.shape[-1] == 3 and is_init[:, 1:].any() and (decision & ~is_init).any()

    assert (weights_out > 0).all()
    assert torch.allclose(weights_out.sum(-1), torch.ones(()), atol=1e-5)
    # Reset at every episode start (the primer's zeros), where the manager always decides.
    assert (weights_in[is_init] == 0).all() and decision[is_init].all()
    # Decisions at episode starts and every 3 steps, as in select mode; constant in between.
    age = manager(data, group, keys.AGE)
    assert torch.equal(decision, is_init | (age >= 3))
    assert torch.equal(weights_out[~decision], weights_in[~decision])
    carried = ~is_init[:, 1:]
    assert torch.equal(weights_in[:, 1:][carried], weights_out[:, :-1][carried])
    # Sampled at each decision: new weights, not one-hot; the option names the heaviest worker.
    fresh = weights_out[decision]
    assert len({tuple(row.tolist()) for row in fresh}) == len(fresh)
    assert (fresh.max(-1).values < 1 - 1e-3).any()
    assert torch.equal(manager(data, group, keys.OPTION, after=True), weights_out.argmax(-1))


def test_mixture_and_dirichlet_log_probabilities_match_a_hand_computation(weighted) -> None:
    data, group, policy = weighted
    workers = policy.groups[group].worker_names
    weights = manager(data, group, keys.WEIGHTS, after=True).double()
    action = data.get((group, keys.ACTION))
    logits = [data.get(keys.worker(group, name, keys.LOGITS)).double() for name in workers]
    stored = data.get((group, keys.LOG_PROB))
    for index in torch.cartesian_prod(*(torch.arange(size) for size in action.shape)).tolist():
        at = tuple(index)
        probability = 0.0
        for k, worker_logits in enumerate(logits):
            exps = [math.exp(value) for value in worker_logits[at].tolist()]
            probability += weights[at][k].item() * exps[action[at]] / sum(exps)
        assert stored[at].item() == pytest.approx(math.log(probability), abs=1e-5)
        for k, name in enumerate(workers):
            own = logits[k][at].log_softmax(-1)[action[at]].item()
            assert data.get(keys.worker(group, name, keys.LOG_PROB))[at].item() == pytest.approx(own, abs=1e-5)

    # The manager's log-probability is the Dirichlet density of the weights it carries.
    scores = manager(data, group, keys.LOGITS).double()
    alpha = torch.nn.functional.softplus(scores) + CONCENTRATION_FLOOR
    density = torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1) + ((alpha - 1) * weights.log()).sum(-1)
    assert torch.allclose(manager(data, group, keys.LOG_PROB).double(), density, atol=1e-4)


def test_greedy_weighted_takes_the_dirichlet_mean_and_the_mixtures_best_action() -> None:
    data, group, policy = collect(WEIGHTED, ExplorationType.DETERMINISTIC)
    decision = manager(data, group, keys.DECISION)
    alpha = torch.nn.functional.softplus(manager(data, group, keys.LOGITS)) + CONCENTRATION_FLOOR
    weights = manager(data, group, keys.WEIGHTS, after=True)
    assert torch.allclose(weights[decision], (alpha / alpha.sum(-1, keepdim=True))[decision], atol=1e-6)
    logits = torch.stack([data.get(keys.worker(group, name, keys.LOGITS)) for name in policy.groups[group].worker_names], -2)
    mixture = (weights.unsqueeze(-1) * logits.softmax(-1)).sum(-2)
    assert torch.equal(data.get((group, keys.ACTION)), mixture.argmax(-1))


@pytest.fixture(scope="module")
def learned() -> tuple[TensorDictBase, str, HierarchicalPolicy]:
    return collect(LEARNED)


def test_learned_termination_decides_exactly_at_episode_starts_and_drawn_terminations(learned) -> None:
    data, group, _ = learned
    decision, is_init = manager(data, group, keys.DECISION), is_init_of(data, group)
    termination = manager(data, group, keys.TERMINATION)
    assert termination.dtype == torch.bool and not termination[is_init].any()
    assert torch.equal(decision, is_init | termination)
    assert termination.any() and (~termination & ~is_init).any(), "expected options both ended and continued"
    # The option and its age change only at decisions, and are carried otherwise (also across batches).
    option_in, option_out = manager(data, group, keys.OPTION), manager(data, group, keys.OPTION, after=True)
    age_in, age_out = manager(data, group, keys.AGE), manager(data, group, keys.AGE, after=True)
    assert torch.equal(option_out[~decision], option_in[~decision])
    assert torch.equal(age_out, torch.where(decision, 1, age_in + 1))
    carried = ~is_init[:, 1:]
    assert torch.equal(option_in[:, 1:][carried], option_out[:, :-1][carried])
    # The draws follow beta of the previous option at the state reached: about 1/2 for a fresh head.
    beta = torch.sigmoid(manager(data, group, keys.TERMINATION_LOGITS).gather(-1, option_in.unsqueeze(-1)).squeeze(-1))
    steps = ~is_init
    assert abs(termination[steps].float().mean() - beta[steps].mean()) < 0.15


def biased_termination(always: int, never: int) -> Callable[[HierarchicalPolicy], None]:
    """Sets the termination head so that option ``always`` ends at every step and option ``never`` at none."""

    def prepare(policy: HierarchicalPolicy) -> None:
        for group_policy in policy.groups.values():
            head = group_policy.manager.module.option_heads.termination
            last = [module for module in head.modules() if isinstance(module, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.fill_(0.0)
                last.bias[always], last.bias[never] = 30.0, -30.0

    return prepare


def test_termination_is_drawn_for_the_previous_steps_option() -> None:
    data, group, _ = collect(LEARNED, prepare=biased_termination(always=0, never=1))
    is_init = is_init_of(data, group)
    previous = manager(data, group, keys.OPTION)
    termination = manager(data, group, keys.TERMINATION)
    steps = ~is_init & (previous != 2)
    assert (steps & (previous == 0)).any() and (steps & (previous == 1)).any()
    assert torch.equal(termination[steps], previous[steps] == 0)


def test_greedy_learned_termination_ends_where_beta_exceeds_one_half() -> None:
    data, group, _ = collect(LEARNED, ExplorationType.DETERMINISTIC)
    is_init = is_init_of(data, group)
    option_in = manager(data, group, keys.OPTION)
    beta = torch.sigmoid(manager(data, group, keys.TERMINATION_LOGITS).gather(-1, option_in.unsqueeze(-1)).squeeze(-1))
    assert torch.equal(manager(data, group, keys.TERMINATION), (beta > 0.5) & ~is_init)


def termination_head_gradient(learner: GroupLearner, batch: TensorDictBase) -> list[torch.Tensor]:
    head = learner.policy.manager.module.option_heads.termination
    head.zero_grad(set_to_none=True)
    samples = learner.manager_level.termination_samples(batch)
    inputs = learner.policy.evaluate_manager(TensorDict({learner.group: samples}, batch_size=samples.shape))
    loss, _ = learner.manager_level.termination_loss(inputs)
    loss.backward()
    return [parameter.grad.clone() for parameter in head.parameters()]


def test_episode_start_steps_give_the_termination_head_no_gradient(learned) -> None:
    data, group, policy = learned
    scenario = load("beacon", LEARNED)
    algorithm = scenario.algorithm
    learner = GroupLearner(policy.groups[group], algorithm.manager, algorithm.workers, scenario.train.gamma, 1000)
    batch = data.clone()
    is_init = is_init_of(batch, group)
    assert is_init.any() and (~is_init).any()
    reference = termination_head_gradient(learner, batch)
    assert any(gradient.abs().sum() > 0 for gradient in reference)

    # Whatever is seen at episode starts (here: another step's observation), and the option state the
    # primer reset there, change nothing.
    observations = batch.get((group, keys.OBSERVATION))
    for key in observations.keys(True, True):
        value = observations.get(key)
        mask = is_init.reshape(*is_init.shape, *[1] * (value.dim() - 3))
        observations.set(key, torch.where(mask, value.roll(1, dims=1), value))
    assert not torch.equal(observations.get("view"), data.get((group, keys.OBSERVATION, "view")))
    batch.set((group, keys.MANAGER, keys.OPTION), torch.where(is_init, 2, manager(batch, group, keys.OPTION)))
    perturbed = termination_head_gradient(learner, batch)
    assert all(torch.allclose(a, b) for a, b in zip(reference, perturbed))

    # And a batch of episode starts only has nothing to learn from.
    batch.set(IS_INIT, torch.ones_like(batch.get(IS_INIT)))
    assert learner.manager_level.termination_samples(batch).shape[0] == 0
