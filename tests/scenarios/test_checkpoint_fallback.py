"""A trained run keeps its last `log.keep_checkpoints` checkpoints; resume, eval and level checkpoints fall back from a
damaged newest one to the newest readable one, and say so; with none readable the error names every file tried."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from short_runs import SMALL_BEACON

from himo.scenarios.build import build_env, build_policy, load_level_checkpoints
from himo.scenarios.checkpoint import load_checkpoint
from himo.scenarios.cli import main
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train
from himo.scenarios.run_checkpoints import checkpoint_files, checkpoint_name

FRAMES, EVERY, KEEP = 1280, 256, 3  # 5 batches of 256 frames, a checkpoint after each, the last 3 kept
KEPT = [checkpoint_name(frames) for frames in (1280, 1024, 768)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run; tests work on copies of it."""
    log_dir = tmp_path_factory.mktemp("runs")
    overrides = [f"train.frames={FRAMES}", f"log.checkpoint_every={EVERY}", f"log.keep_checkpoints={KEEP}"]
    return train(load("beacon", [*SMALL_BEACON, *overrides, f"log.dir={log_dir}"]), progress=False).folder


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / trained.name))


def truncate(path: Path) -> bytes:
    """Keep the first half of the file's bytes, as a full disk or a copy gone wrong would; returns them."""
    damaged = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(damaged)
    return damaged


def test_a_run_keeps_exactly_its_newest_checkpoints(trained: Path) -> None:
    assert sorted(path.name for path in (trained / "checkpoints").iterdir()) == sorted(KEPT)
    assert [path.name for path in checkpoint_files(trained / "checkpoints")] == KEPT
    assert [load_checkpoint(path)["frames"] for path in checkpoint_files(trained / "checkpoints")] == [1280, 1024, 768]


def test_resume_skips_a_truncated_newest_checkpoint_and_continues_from_the_previous(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest, previous, _ = checkpoint_files(run / "checkpoints")
    truncate(newest)
    assert main(["resume", str(run), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"warning: skipped {newest}: not a readable checkpoint (" in captured.err, captured.err
    assert f"warning: using {previous} (1024 frames), the newest readable checkpoint" in captured.err
    assert "resuming at 1024 frames" in captured.err and "Traceback" not in captured.err
    assert f"frames: {FRAMES}" in captured.out
    # The resumed run wrote its 1280-frame checkpoint again, in place of the damaged one.
    assert [path.name for path in checkpoint_files(run / "checkpoints")] == KEPT
    assert load_checkpoint(newest)["frames"] == FRAMES


def test_eval_skips_a_truncated_newest_checkpoint_and_evaluates_the_previous(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest, previous, _ = checkpoint_files(run / "checkpoints")
    damaged = truncate(newest)
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    captured = capsys.readouterr()
    assert f"warning: skipped {newest}: not a readable checkpoint (" in captured.err, captured.err
    assert f"warning: using {previous} (1024 frames)" in captured.err
    assert "2 episodes with the greedy policy" in captured.out
    assert newest.read_bytes() == damaged, "eval leaves the run's files as they are"


def test_a_run_written_with_only_latest_pt_resumes_from_it(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newest, previous, oldest = checkpoint_files(run / "checkpoints")
    newest.unlink()
    oldest.unlink()
    previous.rename(run / "checkpoints" / "latest.pt")  # as a run written before several checkpoints were kept
    assert main(["resume", str(run), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "resuming at 1024 frames" in captured.err and "warning" not in captured.err, captured.err
    assert [path.name for path in checkpoint_files(run / "checkpoints")] == [KEPT[0], "latest.pt"]


@pytest.mark.parametrize("command", [["resume", "--quiet"], ["eval", "--episodes", "2"]])
def test_with_every_checkpoint_damaged_the_error_names_each_file_and_touches_none(
    run: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files = checkpoint_files(run / "checkpoints")
    damaged = {path: truncate(path) for path in files}
    assert main([command[0], str(run), *command[1:]]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"{run / 'checkpoints'}: no readable checkpoint; tried, newest first:\n"), error
    for path in files:
        assert f"  {path}: not a readable checkpoint (" in error, error
    assert "Traceback" not in error
    assert {path: path.read_bytes() for path in files} == damaged, "a failed command must not touch the saved state"


def workers_parameters(scenario_overrides: list[str]) -> dict[str, torch.Tensor]:
    """The worker-level parameters of a beacon policy after its level checkpoints are loaded."""
    scenario = load("beacon", [*SMALL_BEACON, *scenario_overrides])
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    env.close()
    load_level_checkpoints(scenario, policy)
    return {name: value for name, value in policy.state_dict().items() if name.split(".")[2] == "workers"}


def saved_workers(path: Path) -> dict[str, torch.Tensor]:
    return {name: value for name, value in load_checkpoint(path)["policy"].items() if name.split(".")[2] == "workers"}


@pytest.mark.parametrize("named", ["run folder", "checkpoints folder", "file"])
def test_a_level_checkpoint_may_name_a_run_folder_or_a_file(run: Path, named: str) -> None:
    newest, previous, _ = checkpoint_files(run / "checkpoints")
    path = {"run folder": run, "checkpoints folder": run / "checkpoints", "file": previous}[named]
    loaded = workers_parameters([f"algorithm.workers.checkpoint={path}"])
    expected = saved_workers(previous if named == "file" else newest)
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[name], expected[name]) for name in expected)


def test_a_level_checkpoint_naming_a_run_folder_skips_a_damaged_newest(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest, previous, _ = checkpoint_files(run / "checkpoints")
    truncate(newest)
    loaded = workers_parameters([f"algorithm.workers.checkpoint={run}"])
    expected = saved_workers(previous)
    assert all(torch.equal(loaded[name], expected[name]) for name in expected)
    error = capsys.readouterr().err
    assert f"algorithm.workers.checkpoint: warning: skipped {newest}: not a readable checkpoint" in error, error

    # A damaged file named on purpose is not replaced by another: a located error says what is wrong with it.
    with pytest.raises(ScenarioError, match=rf"algorithm\.workers\.checkpoint: {newest}: not a readable checkpoint"):
        workers_parameters([f"algorithm.workers.checkpoint={newest}"])
