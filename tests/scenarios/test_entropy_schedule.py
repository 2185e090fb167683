"""Entropy schedules (``algorithm.<level>.entropy_schedule``): the bonus's coefficient decays over the run's frames,
and every on-policy algorithm learns with the coefficient in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents.declaration import Targets
from himo.agents.ppo import PPOConfig
from himo.agents.registry import ALGORITHMS
from himo.agents.settings import PolicyGradientConfig
from himo.scenarios.loader import load
from himo.scenarios.run import train

ON_POLICY = [name for name, declaration in ALGORITHMS.items() if declaration.targets is not Targets.REPLAY]
# A3C's learners run in actor processes, out of a monkeypatch's reach: its update is A2C's (checked below).
IN_THIS_PROCESS = [name for name in ON_POLICY if name != "a3c"]
LINEAR = "entropy_coef: 1.0, entropy_schedule: linear, entropy_final: 0.0"


def test_a_linear_schedule_goes_from_the_coefficient_to_its_final_value() -> None:
    linear = PPOConfig(entropy_coef=0.1, entropy_schedule="linear", entropy_final=0.02)
    assert [linear.entropy_at(frames, 100) for frames in (0, 50, 100, 200)] == pytest.approx([0.1, 0.06, 0.02, 0.02])
    assert PPOConfig(entropy_coef=0.1).entropy_at(50, 100) == 0.1


def test_a3c_takes_a2cs_update() -> None:
    assert ALGORITHMS["a3c"].algorithm.update is ALGORITHMS["a2c"].algorithm.update


@pytest.mark.parametrize("algorithm", IN_THIS_PROCESS)
def test_every_on_policy_algorithm_learns_with_the_coefficient_in_force(
    algorithm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[tuple[int, float]] = []
    scheduled = PolicyGradientConfig.entropy_at

    def recorded(self: PolicyGradientConfig, frames: int, total_frames: int) -> float:
        used.append((frames, scheduled(self, frames, total_frames)))
        return used[-1][1]

    monkeypatch.setattr(PolicyGradientConfig, "entropy_at", recorded)
    overrides = ["env.num_envs=4", "train.frames=512", "train.frames_per_batch=256", f"algorithm.workers={{name: {algorithm}, {LINEAR}}}"]
    result = train(load("cartpole", [*overrides, f"log.dir={tmp_path}"]), progress=False)
    assert sorted(set(used)) == [(256, 0.5), (512, 0.0)], used
    if algorithm in ("ppo", "a2c", "impala"):
        events = EventAccumulator(str(result.folder), size_guidance={"scalars": 0})
        events.Reload()
        (tag,) = [tag for tag in events.Tags()["scalars"] if tag.endswith("loss_entropy") or tag.endswith("/entropy") and "loss" in tag]
        assert events.Scalars(tag)[-1].value == 0.0 and events.Scalars(tag)[0].value < 0.0
