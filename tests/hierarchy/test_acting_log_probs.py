"""Acting draws and scores without distribution objects: the same probabilities as the policies learning reads."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical
from torchrl.data import Bounded, Categorical as CategoricalSpec, Composite
from torchrl.envs.utils import ExplorationType, set_exploration_type

from himo.envs import keys
from himo.hierarchy.actions import DiscreteActions, action_space, sample_categorical
from himo.hierarchy.selectors import OptionRules, OptionSelector
from himo.hierarchy.state import IS_INIT

GROUP = "agents"
WORKERS = ["a", "b", "c"]
ROWS = (6, 2)


def discrete_outputs(actions: DiscreteActions, seed: int = 0) -> TensorDict:
    """Random logits for every worker; some at the lowest value, as a worker's disallowed or illegal actions are."""
    generator = torch.Generator().manual_seed(seed)
    data = TensorDict({}, batch_size=ROWS)
    for name in WORKERS:
        logits = torch.randn(*ROWS, actions.total, generator=generator)
        masked = torch.rand(*ROWS, actions.total, generator=generator) < 0.2
        data.set(actions.worker_keys(name)[0], logits.masked_fill(masked, torch.finfo(logits.dtype).min))
    return data


def random_action(actions: DiscreteActions, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(size, ROWS, generator=generator) for size in actions.sizes], dim=-1)


PLAIN = action_space(GROUP, CategoricalSpec(4))
COMPOSITE = action_space(GROUP, Composite(turn=CategoricalSpec(3), move=CategoricalSpec(2)))
CONTROLS = {
    "plain": (PLAIN, torch.ones(3, 1, dtype=torch.bool)),
    "composite": (COMPOSITE, torch.tensor([[True, False], [False, True], [True, True]])),
}


@pytest.mark.parametrize("case", sorted(CONTROLS))
def test_acting_stores_for_each_worker_the_log_probability_its_own_policy_gives(case: str) -> None:
    actions, control = CONTROLS[case]
    data, action = discrete_outputs(actions), random_action(actions)
    batched = actions.worker_log_probs(data, WORKERS, control, action)
    policies = actions.worker_policies(data, WORKERS, control)
    expected = torch.stack([policies[name].log_prob(action) for name in WORKERS], dim=-1)
    assert batched.shape == (*ROWS, len(WORKERS))
    # Bit for bit: PPO's first ratio is exactly 1 where learning re-evaluates what acting stored.
    assert torch.equal(batched, expected)


def test_continuous_workers_log_densities_are_each_workers_own() -> None:
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actions = action_space(GROUP, Bounded(low, high, shape=(2,)))
    generator = torch.Generator().manual_seed(0)
    data = TensorDict({}, batch_size=ROWS)
    for name in WORKERS:
        loc_key, scale_key = actions.worker_keys(name)
        data.set(loc_key, torch.randn(*ROWS, 2, generator=generator))
        data.set(scale_key, torch.rand(*ROWS, 2, generator=generator) + 0.2)
    action = low + (high - low) * torch.rand(*ROWS, 2, generator=generator).clamp(0.05, 0.95)
    control = torch.ones(3, 1, dtype=torch.bool)
    policies = actions.worker_policies(data, WORKERS, control)
    expected = torch.stack([policies[name].log_prob(action) for name in WORKERS], dim=-1)
    torch.testing.assert_close(actions.worker_log_probs(data, WORKERS, control, action), expected)


def test_the_active_workers_draws_follow_its_probabilities_and_greedy_takes_its_most_likely_action() -> None:
    actions, control = CONTROLS["plain"]
    data = discrete_outputs(actions)
    option = torch.tensor([0, 1, 2, 1, 0, 2]).unsqueeze(-1).expand(ROWS)
    acting = actions.acting(data, WORKERS, option, torch.zeros(*ROWS, 3), "select", control)
    logits = torch.stack([data.get(actions.worker_keys(name)[0]) for name in WORKERS], dim=-2)
    active = logits.gather(-2, option[..., None, None].expand(*ROWS, 1, actions.total)).squeeze(-2)
    reference = Categorical(logits=active)
    action = random_action(actions)
    assert torch.equal(acting.log_prob(action), reference.log_prob(action[..., 0]))
    assert torch.equal(acting.mode()[..., 0], reference.probs.argmax(-1))
    torch.manual_seed(0)
    draws = torch.stack([acting.sample()[..., 0] for _ in range(4000)])
    frequencies = torch.nn.functional.one_hot(draws, actions.total).float().mean(0)
    assert (frequencies - reference.probs).abs().max() < 0.03


def test_a_draw_from_nan_probabilities_raises() -> None:
    with pytest.raises(RuntimeError):
        sample_categorical(torch.full((2, 3), float("nan")))


def selector_inputs(scores: torch.Tensor) -> TensorDict:
    rows = scores.shape[:-1]
    data = TensorDict({IS_INIT: torch.ones(rows[0], 1, dtype=torch.bool)}, batch_size=rows[:1])
    data.set(keys.manager(GROUP, keys.OPTION), torch.zeros(rows, dtype=torch.long))
    data.set(keys.manager(GROUP, keys.AGE), torch.zeros(rows, dtype=torch.long))
    data.set(keys.manager(GROUP, keys.WEIGHTS), torch.zeros(*rows, len(WORKERS)))
    data.set(keys.manager(GROUP, keys.LOGITS), scores)
    return data


def test_the_managers_choice_is_drawn_from_its_categorical_and_scored_by_it() -> None:
    actions, control = CONTROLS["plain"]
    selector = OptionSelector(GROUP, WORKERS, OptionRules(), actions, control)
    scores = torch.randn(ROWS[0], 1, len(WORKERS), generator=torch.Generator().manual_seed(3)).expand(*ROWS, 3).clone()
    reference = Categorical(logits=scores)
    torch.manual_seed(0)
    options = []
    for _ in range(3000):
        decided = selector.decide(selector_inputs(scores))
        option = decided.get((keys.NEXT, *keys.manager(GROUP, keys.OPTION)))
        assert torch.equal(decided.get(keys.manager(GROUP, keys.LOG_PROB)), reference.log_prob(option))
        options.append(option)
    frequencies = torch.nn.functional.one_hot(torch.stack(options), len(WORKERS)).float().mean(0)
    assert (frequencies - reference.probs).abs().max() < 0.04
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = selector.decide(selector_inputs(scores)).get((keys.NEXT, *keys.manager(GROUP, keys.OPTION)))
    assert torch.equal(greedy, reference.probs.argmax(-1))
