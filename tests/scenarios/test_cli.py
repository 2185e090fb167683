"""The `himo` command, run as a subprocess the way a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from himo.scenarios.catalog import DEFAULT_SCENARIO, builtin_scenarios

HIMO = str(Path(sys.executable).parent / "himo")


def himo(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HIMO, *arguments], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_list_shows_every_builtin_default_first() -> None:
    result = himo("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(builtin_scenarios())
    assert lines[0].split()[0] == DEFAULT_SCENARIO


def test_validate_accepts_builtins_by_name_and_path() -> None:
    result = himo("validate", DEFAULT_SCENARIO, str(builtin_scenarios()[DEFAULT_SCENARIO]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok:") == 2


def test_validate_with_env_builds_the_env_and_finds_a_key_it_lacks() -> None:
    passed = himo("validate", "cartpole", "--env")
    assert passed.returncode == 0 and "its env and policy build" in passed.stdout, passed.stderr
    # The schema alone accepts any key; only the env knows it has no 'picture'.
    assert himo("validate", DEFAULT_SCENARIO, "--set", "modalities.image.key=picture").returncode == 0
    failed = himo("validate", DEFAULT_SCENARIO, "--env", "--set", "modalities.image.key=picture")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "modalities.image.key: group 'agents' of himo/beacon has no observation 'picture'" in failed.stderr


def test_validate_rejects_a_typo_with_file_line_and_suggestion(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"extends: {DEFAULT_SCENARIO}\nname: broken\ntrain:\n  frmes: 10\n")
    result = himo("validate", str(broken))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"{broken}:4: train.frmes: unknown field 'frmes'; did you mean 'frames'?" in result.stderr


def test_show_prints_the_resolved_scenario_with_overrides() -> None:
    result = himo("show", DEFAULT_SCENARIO, "--set", "train.frames=777", "--set", "manager.termination.every=9")
    assert result.returncode == 0, result.stderr
    assert "frames: 777" in result.stdout
    assert "every: 9" in result.stdout
    assert "lr_schedule:" in result.stdout, "every field is shown, defaults included"


def test_show_rejects_a_bad_override() -> None:
    result = himo("show", DEFAULT_SCENARIO, "--set", "train.gamma=2")
    assert result.returncode != 0
    assert "--set train.gamma=2: train.gamma: Input should be less than or equal to 1" in result.stderr


def test_show_help_documents_every_field() -> None:
    result = himo("show", "--help")
    assert result.returncode == 0
    for field in ("env.num_envs", "manager.termination.every", "algorithm.workers.lr_schedule", "train.frames"):
        assert field in result.stdout


def test_missing_file_is_an_error_not_a_traceback() -> None:
    result = himo("validate", "does/not/exist.yaml")
    assert result.returncode != 0
    assert "scenario file not found" in result.stderr and "Traceback" not in result.stderr


def test_train_eval_resume_from_the_command_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    overrides = ["--set", "train.frames=2048", "--set", "train.frames_per_batch=1024", "--set", f"log.dir={runs}"]
    trained = himo("train", "cartpole", "--quiet", *overrides)
    assert trained.returncode == 0, trained.stderr
    (run,) = runs.iterdir()
    assert f"run folder: {run}" in trained.stdout and "frames: 2048" in trained.stdout
    evaluated = himo("eval", str(run), "--episodes", "3")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "3 episodes with the greedy policy" in evaluated.stdout and "manager chose: vector 100%" in evaluated.stdout
    resumed = himo("resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "frames: 2048" in resumed.stdout, "a finished run has nothing left to train"


def test_eval_of_a_folder_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    result = himo("eval", str(tmp_path))
    assert result.returncode == 2
    assert "scenario.yaml: scenario file not found" in result.stderr and "Traceback" not in result.stderr
