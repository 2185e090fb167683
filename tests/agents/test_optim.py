"""Per-level optimiser: names, frames schedules, clipping, non-finite guard, freezing, exact resume."""

import math

import pytest
import torch
from torch import nn

from himo.agents.optim import (
    FUSED,
    OPTIMIZERS,
    LevelOptimizer,
    NonFiniteLossError,
    count_parameters,
    scheduled_lr,
    select_parameters,
)
from himo.agents.ppo import PPOConfig


def quadratic(parameter: torch.Tensor) -> torch.Tensor:
    return ((parameter - 3.0) ** 2).sum()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_decreases_a_quadratic(name: str) -> None:
    parameter = nn.Parameter(torch.zeros(4))
    optimizer = LevelOptimizer([parameter], optimizer=name, lr=0.05)
    first = quadratic(parameter).item()
    for _ in range(20):
        report = optimizer.step(quadratic(parameter), frames=0)
        assert not report.skipped and report.lr == pytest.approx(0.05)
    assert quadratic(parameter).item() < 0.5 * first


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_takes_its_fastest_step_with_the_per_tensor_result(name: str) -> None:
    torch.manual_seed(0)
    start = [torch.randn(8, 4), torch.randn(4)]
    variants = {"default": None, "per-tensor": {"foreach": False}}
    runs = {}
    for variant, options in variants.items():
        parameters = [nn.Parameter(tensor.clone()) for tensor in start]
        optimizer = LevelOptimizer(parameters, optimizer=name, lr=0.05, options=options)
        for _ in range(5):
            optimizer.step(sum(quadratic(parameter) for parameter in parameters), frames=0)
        runs[variant] = parameters
    default = LevelOptimizer([nn.Parameter(torch.zeros(1))], optimizer=name).optimizer.defaults
    if name in FUSED:
        assert default["fused"] is True
    else:
        assert default["foreach"] is True and not default.get("fused")
    for fast, plain in zip(runs["default"], runs["per-tensor"]):
        torch.testing.assert_close(fast, plain)


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'.*adam, adamw, sgd, rmsprop"):
        LevelOptimizer([nn.Parameter(torch.zeros(1))], optimizer="adamax")
    with pytest.raises(ValueError, match="unknown lr_schedule 'exp'"):
        LevelOptimizer([nn.Parameter(torch.zeros(1))], lr_schedule="exp")
    with pytest.raises(ValueError, match="no trainable parameters"):
        LevelOptimizer([nn.Parameter(torch.zeros(1), requires_grad=False)])


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("constant", (1.0, 1.0, 1.0)), ("linear", (1.0, 0.5, 0.0)), ("cosine", (1.0, 0.5, 0.0))],
)
def test_schedules_follow_frames(schedule: str, expected: tuple[float, float, float]) -> None:
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = LevelOptimizer([parameter], lr=0.2, lr_schedule=schedule, total_frames=1000)
    for frames, factor in zip((0, 500, 1000), expected, strict=True):
        report = optimizer.step(quadratic(parameter), frames=frames)
        assert report.lr == pytest.approx(0.2 * factor, abs=1e-12)
        assert optimizer.optimizer.param_groups[0]["lr"] == report.lr
    assert scheduled_lr("cosine", 1.0, 250, 1000) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert scheduled_lr("linear", 1.0, 5000, 1000) == 0.0  # past the end it stays at 0


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_decay_to_their_final_rate(schedule: str) -> None:
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = LevelOptimizer([parameter], lr=0.2, lr_schedule=schedule, lr_final=0.05, total_frames=1000)
    rates = [optimizer.step(quadratic(parameter), frames=frames).lr for frames in (0, 500, 1000, 4000)]
    assert rates == pytest.approx([0.2, 0.125, 0.05, 0.05])  # halfway is the mean for both shapes; past the end it holds
    assert scheduled_lr(schedule, 1.0, 0, 1000, final_lr=1.0) == scheduled_lr(schedule, 1.0, 1000, 1000, final_lr=1.0) == 1.0


def test_final_rate_above_the_rate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"lr_final must be between 0 and lr \(0.1\), got 0.2"):
        LevelOptimizer([nn.Parameter(torch.zeros(1))], lr=0.1, lr_schedule="linear", lr_final=0.2)
    with pytest.raises(ValueError, match=r"lr_final \(0.2\) must not exceed lr \(0.1\)"):
        PPOConfig(lr=0.1, lr_final=0.2)


def test_clipped_step_matches_manual_computation() -> None:
    parameter = nn.Parameter(torch.tensor([1.0, -2.0]))
    direction = torch.tensor([3.0, 4.0])  # gradient of (parameter * direction).sum(), norm 5
    optimizer = LevelOptimizer([parameter], optimizer="sgd", lr=0.1, max_grad_norm=1.0)
    before = parameter.detach().clone()
    report = optimizer.step((parameter * direction).sum(), frames=0)
    assert report.grad_norm == pytest.approx(5.0)
    expected = before - 0.1 * direction * (1.0 / (5.0 + 1e-6))
    torch.testing.assert_close(parameter.detach(), expected)


def test_non_finite_steps_are_skipped_and_counted() -> None:
    parameter = nn.Parameter(torch.zeros(3))
    optimizer = LevelOptimizer([parameter], lr=0.1, max_consecutive_skips=2, name="manager")
    before = parameter.detach().clone()
    nan_loss = quadratic(parameter) * float("nan")
    inf_gradient = torch.sqrt(parameter).sum()  # finite loss (0), infinite gradient at 0
    for loss in (nan_loss, inf_gradient):
        report = optimizer.step(loss, frames=10)
        assert report.skipped and parameter.grad is None
        assert torch.equal(parameter.detach(), before)
    assert not math.isfinite(optimizer.step(torch.sqrt(parameter).sum(), frames=10).grad_norm)
    assert optimizer.consecutive_skips == 3
    with pytest.raises(NonFiniteLossError, match="manager: 3 consecutive updates skipped"):
        optimizer.raise_if_diverged()
    assert not optimizer.step(quadratic(parameter), frames=20).skipped
    assert optimizer.consecutive_skips == 0
    optimizer.raise_if_diverged()
    assert optimizer.optimizer.state_dict()["state"][0]["step"] == 1  # skipped steps left Adam untouched


def test_frozen_level_never_changes() -> None:
    network = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    before = [parameter.detach().clone() for parameter in network.parameters()]
    optimizer = LevelOptimizer(network.parameters(), optimizer="sgd", lr=1.0, frozen=True)
    assert optimizer.optimizer is None and count_parameters(network) == 0
    for frames in range(20):
        loss = (network(torch.randn(5, 3)) * 1e6).sum() + 1e9
        report = optimizer.step(loss, frames=frames)
        assert report.frozen and not report.skipped and report.lr == 0.0
    assert all(not parameter.requires_grad for parameter in network.parameters())
    for old, parameter in zip(before, network.parameters(), strict=True):
        assert torch.equal(old, parameter.detach())


def test_select_and_count_parameters_deduplicate_shared_modules() -> None:
    shared = nn.Linear(2, 3)  # 9 parameters
    head = nn.Sequential(shared, nn.Linear(3, 1))  # + 4
    frozen = nn.Linear(4, 4).requires_grad_(False)
    assert len(select_parameters(shared, head, frozen)) == 4
    assert count_parameters(shared, head, frozen) == 13
    assert count_parameters(head, frozen, trainable_only=False) == 13 + 20


def test_from_settings_reads_a_scenario_level() -> None:
    settings = PPOConfig(optimizer="rmsprop", lr=0.01, lr_schedule="linear", max_grad_norm=None)
    parameter = nn.Parameter(torch.zeros(2))
    optimizer = LevelOptimizer.from_settings([parameter], settings, total_frames=100, name="workers")
    assert isinstance(optimizer.optimizer, torch.optim.RMSprop) and optimizer.max_grad_norm is None
    assert optimizer.step(quadratic(parameter), frames=25).lr == pytest.approx(0.0075)
    frozen = LevelOptimizer.from_settings([parameter], settings.model_copy(update={"frozen": True}), total_frames=100)
    assert frozen.optimizer is None and not parameter.requires_grad


def make_run() -> tuple[nn.Module, LevelOptimizer]:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = LevelOptimizer(
        network.parameters(), optimizer="adam", lr=0.01, lr_schedule="cosine", total_frames=200, max_grad_norm=0.5
    )
    return network, optimizer


def train(network: nn.Module, optimizer: LevelOptimizer, batches: list[tuple[torch.Tensor, torch.Tensor]], start: int) -> None:
    for index, (inputs, targets) in enumerate(batches, start=start):
        optimizer.step(((network(inputs) - targets) ** 2).mean(), frames=(index + 1) * 10)


def test_interrupted_run_resumes_bit_identically() -> None:
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=generator), torch.randn(8, 1, generator=generator)) for _ in range(20)]
    reference, reference_optimizer = make_run()
    train(reference, reference_optimizer, batches, start=0)

    first, first_optimizer = make_run()
    train(first, first_optimizer, batches[:10], start=0)
    checkpoint = {"model": first.state_dict(), "optimizer": first_optimizer.state_dict()}
    resumed, resumed_optimizer = make_run()
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert resumed_optimizer.lr == first_optimizer.lr
    train(resumed, resumed_optimizer, batches[10:], start=10)

    for expected, actual in zip(reference.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(expected, actual)
    assert resumed_optimizer.lr == reference_optimizer.lr
    with pytest.raises(ValueError, match="frozen"):
        LevelOptimizer(make_run()[0].parameters(), frozen=True).load_state_dict(checkpoint["optimizer"])
