"""TRPO step: conjugate gradient, Fisher-vector products, KL-bounded improving updates, exact rejection."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Categorical, kl_divergence
from torch.nn.utils import parameters_to_vector

from himo.agents.natural_gradient import conjugate_gradient, fisher_vector_product, trpo_step

FEATURES, ACTIONS, SAMPLES = 5, 4, 64


class Problem:
    """A linear categorical policy on random features, with actions and old log-probs from its initial self."""

    def __init__(self, seed: int, advantage_scale: float = 1.0) -> None:
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.policy = nn.Linear(FEATURES, ACTIONS).double()
        self.features = torch.randn(SAMPLES, FEATURES, generator=generator, dtype=torch.float64)
        self.advantage = advantage_scale * torch.randn(SAMPLES, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            self.old_logits = self.policy(self.features)
            old = Categorical(logits=self.old_logits)
            self.action = torch.multinomial(old.probs, 1, generator=generator).squeeze(-1)
            self.old_log_prob = old.log_prob(self.action)
        self.parameters = list(self.policy.parameters())

    def surrogate(self) -> torch.Tensor:
        log_prob = Categorical(logits=self.policy(self.features)).log_prob(self.action)
        return ((log_prob - self.old_log_prob).exp() * self.advantage).mean()

    def kl(self) -> torch.Tensor:
        return kl_divergence(Categorical(logits=self.old_logits), Categorical(logits=self.policy(self.features))).mean()

    def independent_kl(self) -> float:
        """Mean KL(old || new) written out, without the distributions library."""
        with torch.no_grad():
            old = self.old_logits.log_softmax(-1)
            new = self.policy(self.features).log_softmax(-1)
            return float((old.exp() * (old - new)).sum(-1).mean())

    def snapshot(self) -> list[torch.Tensor]:
        return [parameter.detach().clone() for parameter in self.parameters]


def assert_no_gradients(parameters: list[nn.Parameter]) -> None:
    assert all(parameter.grad is None for parameter in parameters)


def random_spd(size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(size, size, generator=generator, dtype=torch.float64)
    return factor @ factor.T + 0.5 * torch.eye(size, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conjugate_gradient_solves_a_random_spd_system(seed: int) -> None:
    matrix = random_spd(8, seed)
    vector = torch.randn(8, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    solution = conjugate_gradient(lambda direction: matrix @ direction, vector, iterations=30, residual_tolerance=1e-20)
    torch.testing.assert_close(solution, torch.linalg.solve(matrix, vector), rtol=1e-8, atol=1e-8)
    assert float((matrix @ solution - vector).norm()) < 1e-8


def test_conjugate_gradient_with_the_identity_returns_the_vector() -> None:
    vector = torch.randn(7, dtype=torch.float64)
    calls: list[torch.Tensor] = []

    def identity(direction: torch.Tensor) -> torch.Tensor:
        calls.append(direction)
        return direction

    torch.testing.assert_close(conjugate_gradient(identity, vector), vector)
    assert len(calls) == 1  # the residual is 0 after one step


def test_conjugate_gradient_stops_on_non_positive_curvature() -> None:
    vector = torch.ones(3, dtype=torch.float64)
    solution = conjugate_gradient(lambda direction: -direction, vector)
    assert torch.equal(solution, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fisher_vector_product_is_the_kl_hessian_times_the_vector(damping: float, moved: bool) -> None:
    problem = Problem(seed=0)
    if moved:  # away from the old policy the KL's Hessian is no longer the Fisher matrix, but still what's used
        with torch.no_grad():
            problem.policy.weight.add_(0.3 * torch.randn_like(problem.policy.weight))
    weight_size = problem.policy.weight.numel()

    def kl_of(flat: torch.Tensor) -> torch.Tensor:
        weight = flat[:weight_size].view(ACTIONS, FEATURES)
        logits = problem.features @ weight.T + flat[weight_size:]
        return kl_divergence(Categorical(logits=problem.old_logits), Categorical(logits=logits)).mean()

    flat = parameters_to_vector(problem.parameters).detach()
    hessian = torch.autograd.functional.hessian(kl_of, flat)
    product = fisher_vector_product(problem.kl, problem.parameters, damping=damping)
    for seed in range(3):
        vector = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(product(vector), hessian @ vector + damping * vector)
    assert_no_gradients(problem.parameters)


def test_trpo_step_improves_the_surrogate_within_the_kl_bound() -> None:
    problem = Problem(seed=1)
    with torch.no_grad():
        before = float(problem.surrogate())
    report = trpo_step(problem.parameters, problem.surrogate, problem.kl, max_kl=0.01)
    assert report.accepted and report.line_search_steps >= 1 and 0 < report.step_fraction <= 1
    assert report.gradient_norm > 0
    measured = problem.independent_kl()
    assert 0 < measured <= 0.01
    assert report.kl == pytest.approx(measured, rel=1e-9)
    with torch.no_grad():
        after = float(problem.surrogate())
    assert after > before and report.improvement == pytest.approx(after - before, rel=1e-9)
    assert_no_gradients(problem.parameters)


def test_one_evaluation_per_line_search_trial_takes_the_same_step() -> None:
    separate, joint = Problem(seed=1), Problem(seed=1)
    expected = trpo_step(separate.parameters, separate.surrogate, separate.kl, max_kl=0.01)
    calls = []

    def both() -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        return joint.surrogate(), joint.kl()

    report = trpo_step(joint.parameters, joint.surrogate, joint.kl, max_kl=0.01, surrogate_and_kl=both)
    assert report == expected and len(calls) == report.line_search_steps
    for mine, theirs in zip(joint.parameters, separate.parameters):
        assert torch.equal(mine, theirs)


def test_trpo_step_with_zero_advantages_changes_nothing() -> None:
    problem = Problem(seed=2, advantage_scale=0.0)
    before = problem.snapshot()
    report = trpo_step(problem.parameters, problem.surrogate, problem.kl, max_kl=0.01)
    assert not report.accepted and report.gradient_norm == 0 and report.line_search_steps == 0
    assert all(torch.equal(old, new) for old, new in zip(before, problem.parameters, strict=True))
    assert_no_gradients(problem.parameters)


def test_a_failed_line_search_restores_the_parameters_bit_for_bit() -> None:
    problem = Problem(seed=3)
    start = parameters_to_vector(problem.parameters).detach().clone()
    before = problem.snapshot()

    def penalised() -> torch.Tensor:
        # The gradient at the start is the plain surrogate's, but every step away from it loses.
        distance = parameters_to_vector(problem.parameters) - start
        return problem.surrogate() - 1e9 * distance.pow(2).sum()

    report = trpo_step(problem.parameters, penalised, problem.kl, max_kl=0.01, backtrack_steps=6)
    assert not report.accepted and report.line_search_steps == 6
    assert report.kl == report.improvement == report.step_fraction == 0.0
    assert all(torch.equal(old, new) for old, new in zip(before, problem.parameters, strict=True))
    assert_no_gradients(problem.parameters)


def test_zero_curvature_is_rejected_without_change() -> None:
    problem = Problem(seed=4)
    before = problem.snapshot()

    def flat_kl() -> torch.Tensor:
        return sum(parameter.sum() for parameter in problem.parameters) * 0.0

    report = trpo_step(problem.parameters, problem.surrogate, flat_kl, max_kl=0.01, damping=0.0)
    assert not report.accepted and report.line_search_steps == 0
    assert all(torch.equal(old, new) for old, new in zip(before, problem.parameters, strict=True))


def test_invalid_settings_are_clear_errors() -> None:
    problem = Problem(seed=5)
    with pytest.raises(ValueError, match="max_kl > 0"):
        trpo_step(problem.parameters, problem.surrogate, problem.kl, max_kl=0.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), max_kl=st.sampled_from([1e-3, 1e-2, 5e-2]), steps=st.integers(1, 3))
def test_every_accepted_update_stays_within_the_kl_bound(seed: int, max_kl: float, steps: int) -> None:
    problem = Problem(seed=seed, advantage_scale=3.0)
    for _ in range(steps):
        # The old policy stays the one that collected the data, as within one TRPO iteration's epochs.
        report = trpo_step(problem.parameters, problem.surrogate, problem.kl, max_kl=max_kl)
        if report.accepted:
            assert problem.independent_kl() <= max_kl
            assert report.improvement > 0
    assert_no_gradients(problem.parameters)
