"""The benchmark scripts' scenario variants stay valid as the schema evolves."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from algorithms import ALGORITHMS, goal_of, scenario_of, scenario_overrides  # noqa: E402
from hierarchy_ablation import variants  # noqa: E402
from manager_algorithms import ALGORITHMS as MANAGER_ALGORITHMS  # noqa: E402
from manager_algorithms import arm_overrides, rises, window_mean  # noqa: E402

from scenarios.loader import load  # noqa: E402


def test_every_ablation_variant_of_the_default_scenario_loads() -> None:
    base = load("beacon")
    loaded = {name: load("beacon", overrides) for name, overrides in variants(base).items()}
    assert list(loaded["flat"].workers) == ["flat"]
    assert loaded["flat"].worker_modalities("flat") == tuple(base.modalities)
    for modality in base.modalities:
        ablated = loaded[f"no-{modality}"]
        assert modality not in ablated.modalities
        assert all(modality not in ablated.worker_modalities(worker) for worker in ablated.workers)
        assert ablated.workers, f"no-{modality} still has workers"


def test_every_algorithm_benchmark_run_loads_as_a_flat_scenario() -> None:
    for name, entry in ALGORITHMS.items():
        scenario = load(scenario_of(name), scenario_overrides(name, seed=1, frames=entry["frames"]))
        assert scenario.algorithm.workers.name == entry.get("algorithm", name)
        assert list(scenario.workers) == ["vector"] and scenario.train.seed == 1 and scenario.train.threads == 1
        assert scenario.train.frames == entry["frames"]
    assert scenario_of("sac-pendulum") == "pendulum" and goal_of("sac-pendulum") == -200.0 and goal_of("sac") == 475.0


def test_every_manager_algorithm_arm_loads_and_differs_only_in_the_frozen_manager() -> None:
    for name in MANAGER_ALGORITHMS:
        trained, frozen = (load("beacon", arm_overrides(name, arm, seed=3, frames=8192)) for arm in ("trained", "frozen"))
        assert trained.algorithm.manager.name == frozen.algorithm.manager.name == name
        assert not trained.algorithm.manager.frozen and frozen.algorithm.manager.frozen
        assert trained.algorithm.workers == frozen.algorithm.workers and not trained.algorithm.workers.frozen
        assert trained.train == frozen.train and trained.train.seed == 3 and trained.train.frames == 8192
        assert trained.train.threads == 1 and len(trained.workers) > 1


def test_manager_benchmark_windows_and_verdict() -> None:
    curve = [(frames, float(frames)) for frames in range(1, 11)]
    assert window_mean(curve, last=False) == 3.0 and window_mean(curve, last=True) == 8.0
    assert window_mean([], last=True) is None
    assert rises(first=0.10, last=0.20, control=0.12)
    assert not rises(first=0.10, last=0.20, control=0.19)  # within the absolute margin of the frozen arm
    assert not rises(first=1.00, last=1.15, control=0.50)  # +0.15 is under 20 % of its own start
    assert rises(first=-0.30, last=-0.10, control=-0.40)


def test_with_pretrained_workers_every_arm_freezes_them_and_only_the_trained_manager_learns() -> None:
    for name in MANAGER_ALGORITHMS:
        trained, frozen = (load("beacon", arm_overrides(name, arm, seed=0, frames=8192, workers="/runs/x/latest.pt"))
                           for arm in ("trained", "frozen"))
        for scenario in (trained, frozen):
            assert scenario.algorithm.workers.frozen and scenario.algorithm.workers.checkpoint == "/runs/x/latest.pt"
        assert not trained.algorithm.manager.frozen and frozen.algorithm.manager.frozen
        assert trained.algorithm.manager.name == name and trained.train == frozen.train
