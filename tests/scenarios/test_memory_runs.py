"""Memory through the public path: every algorithm that learns from sequences trains recurrent workers and a
recurrent manager (their cores learn), with goals and in weighted mode too."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from short_runs import SMALL_BEACON, both_levels, newest_checkpoint

from himo.agents.declaration import Targets
from himo.agents.registry import ALGORITHMS
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import load_checkpoint, seed_everything
from himo.scenarios.loader import load
from himo.scenarios.run import train

MEMORY = [
    "workers.audio.memory={hidden: 8, chunk: 16}",  # 256-frame batches of 4 envs: 64 steps, 4 chunks each
    "workers.image.memory={kind: lstm, hidden: 8, chunk: 16}",
    "manager.memory={hidden: 8}",
]
SEQUENCE_LEARNERS = [name for name, declaration in ALGORITHMS.items() if declaration.targets is not Targets.REPLAY]


@pytest.mark.parametrize(
    "overrides",
    [both_levels(name) for name in SEQUENCE_LEARNERS] + [["manager.mode=weighted", "manager.goal={size: 4}"]],
    ids=[*SEQUENCE_LEARNERS, "ppo-weighted-goals"],
)
def test_recurrent_cores_learn_at_both_levels(overrides: list[str], tmp_path: Path) -> None:
    scenario = load("beacon", [*SMALL_BEACON, *MEMORY, *overrides, f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert all(math.isfinite(value) for _, value in result.returns)
    seed_everything(scenario.train.seed)
    torch.set_num_threads(scenario.train.threads)
    initial = build_policy(scenario, build_env(scenario)).state_dict()
    trained = load_checkpoint(newest_checkpoint(result.folder))["policy"]
    cores = [name for name in initial if ".memories." in name or ".manager.module.memory." in name]
    assert {name.split(".")[3] for name in cores if ".memories." in name} == {"audio", "image"}
    assert any(".manager.module.memory." in name for name in cores)
    for name in cores:
        assert not torch.equal(initial[name], trained[name]), f"{name} did not learn"
