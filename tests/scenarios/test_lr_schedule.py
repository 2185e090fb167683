"""Learning-rate schedules through a scenario: each level's rate follows its schedule from ``lr`` to ``lr_final``."""

from __future__ import annotations

from pathlib import Path

import pytest
from short_runs import TWO_WORKER_CARTPOLE
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents import tags
from himo.agents.optim import scheduled_lr
from himo.scenarios.loader import load
from himo.scenarios.run import train


def test_each_level_decays_to_its_floor(tmp_path: Path) -> None:
    overrides = [
        *TWO_WORKER_CARTPOLE,
        "train.frames=1024",
        "algorithm.workers={name: ppo, lr: 3.0e-3, lr_schedule: linear, lr_final: 1.0e-3}",
        "algorithm.manager={name: ppo, lr: 2.0e-3, lr_schedule: cosine, lr_final: 5.0e-4}",
        f"log.dir={tmp_path}",
    ]
    scenario = load("cartpole", overrides)
    assert scenario.train.frames_per_batch == 256, "four updates, the last at the run's end"
    folder = train(scenario, progress=False).folder
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    for level, schedule, start, floor in (("workers", "linear", 3e-3, 1e-3), ("manager", "cosine", 2e-3, 5e-4)):
        logged = [(event.step, event.value) for event in events.Scalars(tags.level_metric("lr", level))]
        assert [step for step, _ in logged] == [256, 512, 768, 1024], level
        expected = [scheduled_lr(schedule, start, step, 1024, final_lr=floor) for step, _ in logged]
        assert [value for _, value in logged] == pytest.approx(expected, rel=1e-6), level
        assert logged[-1][1] == pytest.approx(floor, rel=1e-6), f"{level} ends at its floor, not at 0"
