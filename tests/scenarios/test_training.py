"""Training through `himo.scenarios.run`: frozen levels, resume, and runs whose loss stops being finite."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml
from short_runs import SMALL_BEACON, TWO_WORKER_CARTPOLE, both_levels, newest_checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import himo.agents.ppo
from himo.agents import tags
from himo.agents.ppo import PPO
from himo.agents.registry import ALGORITHMS
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import load_checkpoint, seed_everything
from himo.scenarios.cli import main
from himo.scenarios.errors import RunError
from himo.scenarios.loader import load
from himo.scenarios.run import Trainer, resume, train
from himo.scenarios.schema import Scenario

def initial_policy_state(scenario: Scenario) -> dict[str, torch.Tensor]:
    """The parameters a run of ``scenario`` starts from (built the way `Trainer` builds them)."""
    seed_everything(scenario.train.seed)
    env = build_env(scenario, seed=scenario.train.seed)
    state = {name: value.clone() for name, value in build_policy(scenario, env).state_dict().items()}
    env.close()
    return state


def level_of(name: str) -> str:
    """``groups.<group>.<module>...``: the manager's own module, or the worker level (encoders and heads)."""
    return "manager" if name.split(".")[2] == "manager" else "workers"


def parameter_names(scenario: Scenario) -> set[str]:
    env = build_env(scenario)
    names = {name for name, _ in build_policy(scenario, env).named_parameters()}
    env.close()
    return names


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("frozen", ["workers", "manager"])
def test_a_frozen_level_stays_bit_identical_while_the_other_learns(frozen: str, algorithm: str, tmp_path: Path) -> None:
    scenario = load("beacon", [*SMALL_BEACON, *both_levels(algorithm), f"algorithm.{frozen}.frozen=true", f"log.dir={tmp_path}"])
    before = initial_policy_state(scenario)
    result = train(scenario, progress=False)
    after = load_checkpoint(newest_checkpoint(result.folder))["policy"]
    assert result.frames == 512 and after.keys() == before.keys()

    modules = {name.split(".")[2] for name in before}
    assert modules == {"encoders", "shared_encoders", "workers", "manager", "selector"}, "beacon has every kind of module"
    parameters = parameter_names(scenario)
    learning = "manager" if frozen == "workers" else "workers"
    for name, value in before.items():
        if level_of(name) == frozen:
            assert torch.equal(after[name], value), f"{name} of the frozen {frozen} level changed"
        elif name in parameters:
            assert not torch.equal(after[name], value), f"{name} of the {learning} level did not learn"
    assert any(level_of(name) == frozen for name in parameters) and any(level_of(name) == learning for name in parameters)


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return [(point.step, point.value) for point in events.Scalars(tag)]


def adam_steps(checkpoint: dict, level: str) -> float:
    """How many updates a level's Adam has taken (its per-parameter ``step``)."""
    state = checkpoint["learners"]["agent"][level]["optimizer"]["optimizer"]["state"]
    return float(state[0]["step"])


def resume_scenario(frames: int, log_dir: Path) -> Scenario:
    return load(
        "cartpole",
        [
            *TWO_WORKER_CARTPOLE,
            f"train.frames={frames}",
            f"log.dir={log_dir}",
            "log.checkpoint_every=512",
            "algorithm.workers.lr_schedule=linear",
            "algorithm.manager.lr_schedule=cosine",
        ],
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1024-frame run in one go, the reference for the resumed ones."""
    return train(resume_scenario(1024, tmp_path_factory.mktemp("whole")), progress=False).folder


LR_TAGS = (tags.level_metric("lr", "workers"), tags.level_metric("lr", "manager"))


def test_resume_after_a_crash_continues_frames_optimisers_and_schedules(
    uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run dies at 768 of 1024 frames, after logging that batch but before its next checkpoint (at 1024).
    original_log = Trainer._log

    def log_then_die(self: Trainer, metrics: dict[str, float], groups: list[str]) -> None:
        original_log(self, metrics, groups)
        if self.frames == 768:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_log", log_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(resume_scenario(1024, tmp_path), progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    assert load_checkpoint(newest_checkpoint(folder))["frames"] == 512

    result = resume(folder, progress=False)
    assert result.frames == 1024
    resumed, whole = (load_checkpoint(newest_checkpoint(run)) for run in (folder, uninterrupted))
    assert resumed["frames"] == whole["frames"] == 1024
    for level in ("workers", "manager"):
        assert adam_steps(resumed, level) == adam_steps(whole, level) > 0, f"{level} optimiser state not continued"
        assert resumed["learners"]["agent"][level]["optimizer"]["frames"] == 1024
    # The schedules continue: every logged lr, before and after the crash, is the uninterrupted run's; and each
    # curve has every batch exactly once (the dead run's 768 is dropped, the checkpoint's own 512 is kept).
    for tag in LR_TAGS:
        resumed_lr, reference = scalars(folder, tag), scalars(uninterrupted, tag)
        assert [step for step, _ in resumed_lr] == [step for step, _ in reference] == [256, 512, 768, 1024], tag
        assert [value for _, value in resumed_lr] == pytest.approx([value for _, value in reference]), tag
    assert [step for step, _ in scalars(folder, tags.REWARD_ENV)] == [256, 512, 768, 1024]


def test_resume_with_more_frames_extends_a_finished_run(uninterrupted: Path, tmp_path: Path) -> None:
    folder = train(resume_scenario(512, tmp_path), progress=False).folder
    settings = folder / "scenario.yaml"
    data = yaml.safe_load(settings.read_text())
    data["train"]["frames"] = 1024
    settings.write_text(yaml.safe_dump(data, sort_keys=False))

    result = resume(folder, progress=False)
    assert result.frames == 1024
    resumed, whole = (load_checkpoint(newest_checkpoint(run)) for run in (folder, uninterrupted))
    assert resumed["frames"] == whole["frames"]
    for level in ("workers", "manager"):
        assert adam_steps(resumed, level) == adam_steps(whole, level) > 0, f"{level} optimiser state not continued"
    # After the extension the lr follows the longer run's schedule (before it, the shorter one's).
    for tag in LR_TAGS:
        extended, reference = scalars(folder, tag), scalars(uninterrupted, tag)
        assert [step for step, _ in extended] == [step for step, _ in reference] == [256, 512, 768, 1024]
        assert [value for _, value in extended[2:]] == pytest.approx([value for _, value in reference[2:]]), tag
    # A run already at its frames has nothing left to do.
    assert resume(folder, progress=False).frames == 1024


def test_resuming_an_incompatibly_edited_run_is_a_clear_error(tmp_path: Path) -> None:
    folder = train(resume_scenario(512, tmp_path), progress=False).folder
    settings = folder / "scenario.yaml"
    data = yaml.safe_load(settings.read_text())
    data["train"]["frames"] = 1024
    data["workers"]["a"]["hidden"] = [8]
    settings.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RunError, match=r"scenario.yaml no longer matches the checkpoint it resumes"):
        resume(folder, progress=False)


class Poison:
    """Makes one level's PPO loss NaN in the batches whose frame count is in ``frames``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, level: str, frames: set[int]) -> None:
        self.level, self.frames, self.current = level, frames, None
        original_update, original_terms = PPO.update, himo.agents.ppo.ppo_terms

        def update(algorithm, problem, frames):
            self.current = (problem.level, frames)
            return original_update(algorithm, problem, frames)

        def terms(**keywords):
            result = original_terms(**keywords)
            if self.current is not None and self.current[0] == self.level and self.current[1] in self.frames:
                result = dataclasses.replace(result, loss_critic=result.loss_critic * math.nan)
            return result

        monkeypatch.setattr(PPO, "update", update)
        monkeypatch.setattr(himo.agents.ppo, "ppo_terms", terms)


def record_checkpoints(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, torch.Tensor]]:
    """The policy state of every checkpoint a run writes, by frames."""
    saved: dict[int, dict[str, torch.Tensor]] = {}
    original_save = Trainer.save

    def save(self: Trainer) -> None:
        original_save(self)
        saved[self.frames] = {name: value.clone() for name, value in self.policy.state_dict().items()}

    monkeypatch.setattr(Trainer, "save", save)
    return saved


def record_metrics(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, float]]:
    logged: dict[int, dict[str, float]] = {}
    original_log = Trainer._log

    def log(self: Trainer, metrics: dict[str, float], groups: list[str]) -> None:
        logged[self.frames] = dict(metrics)
        original_log(self, metrics, groups)

    monkeypatch.setattr(Trainer, "_log", log)
    return logged


def finite(state: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


@pytest.mark.parametrize("level", ["workers", "manager"])
def test_a_few_non_finite_losses_are_skipped_and_the_run_goes_on(
    level: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Poison(monkeypatch, level, frames={512})
    checkpoints, metrics = record_checkpoints(monkeypatch), record_metrics(monkeypatch)
    scenario = load("cartpole", [*TWO_WORKER_CARTPOLE, "train.frames=1024", "log.checkpoint_every=256", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert result.frames == 1024
    skipped = tags.level_metric("skipped_updates", level)
    assert [metrics[frames][skipped] for frames in (256, 512, 768, 1024)] == [0, 4, 0, 0]  # 4 epochs x 1 minibatch
    own = [name for name in checkpoints[256] if level_of(name) == level]
    # The poisoned batch left the level as it was; the batches after it trained it again.
    assert all(torch.equal(checkpoints[512][name], checkpoints[256][name]) for name in own)
    assert not all(torch.equal(checkpoints[768][name], checkpoints[512][name]) for name in own)
    assert finite(load_checkpoint(newest_checkpoint(result.folder))["policy"])


@pytest.mark.parametrize("level", ["workers", "manager"])
def test_repeated_non_finite_losses_stop_the_run_naming_the_level_and_the_last_good_checkpoint(
    level: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Poison(monkeypatch, level, frames={768, 1024, 1280, 1536})
    checkpoints = record_checkpoints(monkeypatch)
    assignments = [*TWO_WORKER_CARTPOLE, "train.frames=2048", "log.checkpoint_every=256", f"log.dir={tmp_path}"]
    arguments = ["train", "cartpole", *[part for item in assignments for part in ("--set", item)], "--quiet"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    (folder,) = tmp_path.iterdir()
    latest = newest_checkpoint(folder)
    # 4 skipped updates per batch: the 11th in a row (limit 10) comes in the third poisoned batch.
    assert f"agent {level}: 11 consecutive updates skipped" in error and "at 1280 frames" in error, error
    assert f"last good checkpoint: {latest}" in error, error
    assert "Traceback" not in error
    assert max(checkpoints) == 1024, "no checkpoint after the run stopped"

    saved = load_checkpoint(latest)
    assert saved["frames"] == 1024 and finite(saved["policy"])
    # The skipped updates left the level at its state after the last good batch (512 frames).
    for name, value in saved["policy"].items():
        if level_of(name) == level:
            assert torch.equal(value, checkpoints[512][name]), name
    # The saved state is still usable: evaluation loads it.
    monkeypatch.undo()
    assert main(["eval", str(folder), "--episodes", "2"]) == 0
    assert "team return" in capsys.readouterr().out


def test_divergence_before_any_checkpoint_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Poison(monkeypatch, "workers", frames={256, 512, 768})
    scenario = load("cartpole", [*TWO_WORKER_CARTPOLE, "train.frames=2048", f"log.dir={tmp_path}"])
    with pytest.raises(RunError, match="agent workers: 11 consecutive updates skipped") as raised:
        train(scenario, progress=False)
    assert "no checkpoint" in str(raised.value) and "last good checkpoint" not in str(raised.value), str(raised.value)
