"""Continuous actions: squashed Gaussian workers, and the manager's select and weighted (product) compositions."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Normal
from torchrl.data import Bounded

from himo.agents.heads import CriticView
from himo.hierarchy.actions import action_space
from himo.hierarchy.continuous import ContinuousActions

GROUP = "agents"
WORKERS = ["a", "b", "c"]


def space() -> ContinuousActions:
    low, high = torch.tensor([-2.0, 0.0]).expand(5, 1, 2), torch.tensor([2.0, 1.0]).expand(5, 1, 2)
    actions = action_space(GROUP, Bounded(low.clone(), high.clone(), shape=(5, 1, 2)))
    assert isinstance(actions, ContinuousActions) and actions.size == 2
    return actions


def worker_outputs(actions: ContinuousActions, seed: int = 0) -> TensorDict:
    generator = torch.Generator().manual_seed(seed)
    data = TensorDict({}, batch_size=[5, 1])
    for name in WORKERS:
        loc_key, scale_key = actions.worker_keys(name)
        data.set(loc_key, torch.randn(5, 1, 2, generator=generator))
        data.set(scale_key, torch.rand(5, 1, 2, generator=generator) + 0.2)
    return data


def squashed_log_density(actions: ContinuousActions, action: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log p(a) for a = low + (tanh(u) + 1) / 2 * (high - low), u ~ N(loc, scale^2), by the change of variables."""
    half_range = (actions.high - actions.low) / 2
    unit = (action - actions.low) / half_range - 1
    u = torch.atanh(unit)
    log_jacobian = torch.log(half_range) + torch.log1p(-unit.pow(2))
    return (Normal(loc, scale).log_prob(u) - log_jacobian).sum(-1)


def test_select_mode_acts_with_the_active_workers_squashed_gaussian() -> None:
    actions, data = space(), worker_outputs(space())
    option = torch.tensor([0, 1, 2, 1, 0]).unsqueeze(-1)
    acting = actions.acting(data, WORKERS, option, torch.zeros(5, 1, 3), "select", torch.ones(3, 1, dtype=torch.bool))
    action = acting.sample()
    assert ((action >= actions.low) & (action <= actions.high)).all()
    loc = torch.stack([data.get(actions.worker_keys(name)[0]) for name in WORKERS], -2)
    scale = torch.stack([data.get(actions.worker_keys(name)[1]) for name in WORKERS], -2)
    chosen = option[..., None, None].expand(5, 1, 1, 2)
    expected = squashed_log_density(actions, action, loc.gather(-2, chosen).squeeze(-2), scale.gather(-2, chosen).squeeze(-2))
    assert torch.allclose(acting.log_prob(action), expected, atol=1e-4)


def test_weighted_mode_acts_with_the_normalised_weighted_product_of_the_gaussians() -> None:
    actions, data = space(), worker_outputs(space(), seed=1)
    weights = torch.softmax(torch.randn(5, 1, 3, generator=torch.Generator().manual_seed(2)), -1)
    acting = actions.acting(data, WORKERS, weights.argmax(-1), weights, "weighted", torch.ones(3, 1, dtype=torch.bool))
    action = acting.sample()
    # The product prod_k N(u; mu_k, s_k^2)^{w_k}, normalised numerically over a grid of u, per dimension.
    grid = torch.linspace(-8, 8, 40001)
    for env in range(5):
        for dimension in range(2):
            log_product = sum(
                weights[env, 0, k]
                * Normal(data.get(actions.worker_keys(name)[0])[env, 0, dimension], data.get(actions.worker_keys(name)[1])[env, 0, dimension]).log_prob(grid)
                for k, name in enumerate(WORKERS)
            )
            density = log_product.exp()
            mean = (grid * density).sum() / density.sum()
            variance = ((grid - mean) ** 2 * density).sum() / density.sum()
            assert acting.distribution.base_dist.base_dist.loc[env, 0, dimension] == pytest.approx(mean.item(), abs=1e-3)
            assert acting.distribution.base_dist.base_dist.scale[env, 0, dimension] == pytest.approx(math.sqrt(variance), abs=1e-3)
    assert torch.isfinite(acting.log_prob(action)).all()


def test_a_worker_with_all_the_weight_acts_alone() -> None:
    actions, data = space(), worker_outputs(space(), seed=3)
    weights = torch.tensor([0.0, 1.0, 0.0]).expand(5, 1, 3)
    weighted = actions.acting(data, WORKERS, torch.ones(5, 1, dtype=torch.long), weights, "weighted", torch.ones(3, 1, dtype=torch.bool))
    selected = actions.acting(data, WORKERS, torch.ones(5, 1, dtype=torch.long), weights, "select", torch.ones(3, 1, dtype=torch.bool))
    action = selected.sample()
    assert torch.allclose(weighted.log_prob(action), selected.log_prob(action), atol=1e-5)
    assert torch.allclose(weighted.mode(), selected.mode(), atol=1e-6)


def test_each_workers_own_policy_scores_actions_and_has_a_gaussian_entropy() -> None:
    actions, data = space(), worker_outputs(space(), seed=4)
    policies = actions.worker_policies(data, WORKERS, torch.ones(3, 1, dtype=torch.bool))
    action = actions.acting(data, WORKERS, torch.zeros(5, 1, dtype=torch.long), torch.zeros(5, 1, 3), "select", torch.ones(3, 1, dtype=torch.bool)).sample()
    for name in WORKERS:
        loc, scale = (data.get(key) for key in actions.worker_keys(name))
        assert torch.allclose(policies[name].log_prob(action), squashed_log_density(actions, action, loc, scale), atol=1e-4)
        assert torch.allclose(policies[name].entropy(), Normal(loc, scale).entropy().sum(-1))


def test_unbounded_continuous_actions_are_refused_with_a_reason() -> None:
    with pytest.raises(TypeError, match="finite bounds"):
        action_space(GROUP, Bounded(torch.tensor([-math.inf]), torch.tensor([math.inf]), shape=(1,)))
    with pytest.raises(ValueError, match="no named parts"):
        space().control_mask(["turn"])
    with pytest.raises(ValueError, match="whole vector"):
        space().worker_heads(8, (16,), allowed=(0,), critic=CriticView())
