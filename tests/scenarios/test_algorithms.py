"""Every registered algorithm at each level, through scenario files: short runs, diagnostics, validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from short_runs import SMALL_BEACON, both_levels
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents import tags
from himo.agents.registry import ALGORITHMS
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train


def scalars(folder: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [point.value for point in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


GRADIENT_STEPPED = ("ppo", "a2c", "a3c", "impala")
"""The algorithms whose heads' losses are summed into minibatch gradient steps (TRPO steps its policy along the
natural gradient and SAC replays single steps: their diagnostics are the level's)."""


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_learns_at_both_levels_with_its_diagnostics_logged(algorithm: str, tmp_path: Path) -> None:
    scenario = load("beacon", [*SMALL_BEACON, *both_levels(algorithm), f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    logged = scalars(result.folder)
    for tag, values in logged.items():
        assert all(math.isfinite(value) for value in values), f"{tag}: {values}"
    for level in ("workers", "manager"):
        expected = {tags.loss(level, "critic"), tags.level_metric("grad_norm", level), tags.level_metric("lr", level)}
        expected |= {tags.entropy(level)} | {tags.level_metric(name, level) for name in ALGORITHMS[algorithm].diagnostics}
        assert expected <= logged.keys(), sorted(expected - logged.keys())
        if algorithm != "trpo":  # trpo's policy step has no loss: its surrogate gain is logged instead
            assert tags.loss(level, "objective") in logged
    # Each worker's critic learns its own reward channel: its loss is logged on its own.
    workers = load("beacon").workers
    assert {tags.head_loss("workers", worker, "critic") for worker in workers} <= logged.keys()
    assert tags.head_loss("manager", "manager", "critic") not in logged
    # Where the level takes minibatch gradient steps, so is its gradient norm, and PPO's KL and clipping per worker.
    if algorithm in GRADIENT_STEPPED:
        names = ["grad_norm", *(("kl", "clip_fraction") if algorithm == "ppo" else ())]
        own = {tags.head_metric(name, "workers", worker) for name in names for worker in workers}
        assert own <= logged.keys(), sorted(own - logged.keys())


def test_every_accepted_trpo_step_stays_inside_the_trust_region(tmp_path: Path) -> None:
    max_kl = 0.002
    levels = [f"algorithm.{level}={{name: trpo, max_kl: {max_kl}}}" for level in ("workers", "manager")]
    scenario = load("beacon", [*SMALL_BEACON, *levels, "train.frames=1024", f"log.dir={tmp_path}"])
    logged = scalars(train(scenario, progress=False).folder)
    for level in ("workers", "manager"):
        accepted, kl = logged[tags.level_metric("accepted", level)], logged[tags.level_metric("kl", level)]
        assert any(accepted), f"no {level} step was accepted"
        assert all(0 <= value <= max_kl * (1 + 1e-5) for value in kl), kl


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (["algorithm.workers.name=impala"], "algorithm.manager.name", "lagged copies of the policy"),
        (["algorithm.workers={name: a2c, clip_epsilon: 0.1}"], "algorithm.workers.clip_epsilon", ""),
        (["algorithm.manager.name=dqn"], "algorithm.manager", "ppo"),
        (["algorithm.workers={name: trpo, max_kl: 0}"], "algorithm.workers.max_kl", "greater than 0"),
        (["algorithm.manager.name=sac", "manager.mode=weighted"], "algorithm.manager.name", "use mode select"),
        (["algorithm.manager.name=sac", "manager.termination={kind: learned}"], "algorithm.manager.name", "interval"),
        (["algorithm.workers.name=sac", "env.kwargs.action_parts=true", "workers.audio.parts=[turn]"],
         "workers.audio.parts", "single categorical or continuous"),
        (["algorithm.workers={name: sac, entropy_coef: 0.1}"], "algorithm.workers.entropy_coef", "target_entropy"),
        (["algorithm.workers.name=sac", "algorithm.manager.name=impala"], "algorithm.manager.name", "current policy"),
    ],
)
def test_unsound_or_unknown_algorithm_settings_are_clear_errors(overrides: list[str], field: str, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load("beacon", overrides)
    assert field in str(error.value) and message in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm.workers={name: a3c}"], "without waiting for each other"),
        (["algorithm.workers={name: a3c}", "algorithm.manager={name: impala}"], "lagged copies"),
        (["train.actors=2"], "impala and a3c"),
    ],
)
def test_algorithms_that_collect_differently_do_not_mix(overrides: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load("beacon", overrides)


def test_every_a3c_process_applies_updates_to_the_shared_policy(tmp_path: Path) -> None:
    levels = [f"algorithm.{level}={{name: a3c}}" for level in ("workers", "manager")]
    scenario = load("beacon", [*SMALL_BEACON, *levels, "train.actors=2", "train.frames=1024", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    logged = scalars(result.folder)
    updates = [logged[tags.actor_updates(rank)][-1] for rank in range(2)]
    assert all(count > 0 for count in updates), updates
    assert sum(updates) == len(logged[tags.REWARD_ENV]) >= 1024 // 256, "one update per batch, each batch logged"


def test_impala_at_one_level_is_fine_when_the_other_is_frozen_or_untrained() -> None:
    load("beacon", ["algorithm.workers.name=impala", "algorithm.manager.frozen=true"])
    load("cartpole", ["algorithm.workers.name=impala"])  # one worker: the manager is not trained


def test_several_actor_processes_are_fine_when_the_a3c_or_impala_level_is_frozen() -> None:
    # A frozen a3c manager over frozen workers still runs in a3c's process layout: a control run where nothing learns.
    load("beacon", ["algorithm.manager={name: a3c, frozen: true}", "algorithm.workers.frozen=true", "train.actors=2"])
    with pytest.raises(ScenarioError, match="impala and a3c"):
        load("beacon", ["algorithm.manager.frozen=true", "algorithm.workers.frozen=true", "train.actors=2"])
