"""Goals through scenario files: every algorithm at both levels, both manager modes, learned termination and a
multi-agent group, each a short run whose every logged scalar is finite."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from short_runs import SMALL_BEACON, both_levels, level
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents.declaration import Targets
from himo.agents.registry import ALGORITHMS
from himo.scenarios.loader import load
from himo.scenarios.run import train

GOAL = "manager.goal={size: 4}"


def levels_for(algorithm: str) -> list[str]:
    """``algorithm`` at both levels; replaying workers refuse goals, so they stay PPO under such a manager."""
    if ALGORITHMS[algorithm].targets is Targets.REPLAY:
        return [level("manager", algorithm)]
    return both_levels(algorithm)


RUNS = [(algorithm, levels_for(algorithm)) for algorithm in ALGORITHMS]
RUNS += [("weighted", ["manager.mode=weighted"]), ("learned", ["manager.termination={kind: learned}"])]


@pytest.mark.parametrize(("name", "overrides"), RUNS, ids=[name for name, _ in RUNS])
def test_goals_train_with_every_algorithm_and_manager_mode(name: str, overrides: list[str], tmp_path: Path) -> None:
    actors = ["train.actors=2"] if name == "a3c" else []
    scenario = load("beacon", [*SMALL_BEACON, GOAL, *overrides, *actors, f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    events = EventAccumulator(str(result.folder), size_guidance={"scalars": 0})
    events.Reload()
    values = [point.value for tag in events.Tags()["scalars"] for point in events.Scalars(tag)]
    assert values and all(math.isfinite(value) for value in values)
    assert result.frames >= scenario.train.frames
