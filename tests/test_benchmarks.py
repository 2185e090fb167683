"""The benchmark scripts' scenario variants stay valid as the schema evolves."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from algorithms import ALGORITHMS, scenario_overrides  # noqa: E402
from hierarchy_ablation import variants  # noqa: E402

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


def test_every_algorithm_benchmark_run_loads_as_a_flat_cartpole_scenario() -> None:
    for name, entry in ALGORITHMS.items():
        scenario = load("cartpole", scenario_overrides(name, seed=1, frames=entry["frames"]))
        assert scenario.algorithm.workers.name == name
        assert list(scenario.workers) == ["vector"] and scenario.train.seed == 1 and scenario.train.threads == 1
        assert scenario.train.frames == entry["frames"]
