"""Overrides that keep a test's training run of a built-in scenario to a few seconds, and a run's newest checkpoint."""

from pathlib import Path

from himo.scenarios.run_checkpoints import CHECKPOINT_FOLDER, checkpoint_files

SMALL_BEACON = [
    "env.num_envs=4",
    "env.kwargs.max_steps=8",
    "train.frames=512",
    "train.frames_per_batch=256",
    "algorithm.workers.epochs=1",
    "algorithm.manager.epochs=1",
]

TWO_WORKER_CARTPOLE = [
    "workers={a: {modalities: [vector]}, b: {modalities: [vector]}}",
    "manager.termination.every=4",
    "env.num_envs=4",
    "train.frames_per_batch=256",
]
"""Two vector workers under a manager deciding every 4 steps, on 4 CartPoles, 256-frame batches."""

ONE_STEP_PPO = "{name: ppo, lr: 3.0e-3, lr_schedule: linear, minibatch_size: 128, epochs: 4}"
"""A level's PPO settings that learn the suite's one-step tasks (two_cues, named_cell) in a few thousand frames."""

SHORT_RUN_SETTINGS = {"sac": "learning_starts: 64, gradient_steps: 4, buffer_size: 4096"}
"""Per algorithm, the section fields that let a level learn within a short run (sac: start after one batch)."""


def level(level_name: str, algorithm: str) -> str:
    """The override ``algorithm.<level>={name: <algorithm>, ...}`` for a short run."""
    settings = SHORT_RUN_SETTINGS.get(algorithm)
    return f"algorithm.{level_name}={{name: {algorithm}{', ' + settings if settings else ''}}}"


def both_levels(algorithm: str) -> list[str]:
    """``algorithm`` at the workers and at the manager, for a short run."""
    return [level("workers", algorithm), level("manager", algorithm)]


def newest_checkpoint(run_folder: Path) -> Path:
    """The newest checkpoint file of the run in ``run_folder``."""
    files = checkpoint_files(run_folder / CHECKPOINT_FOLDER)
    assert files, f"no checkpoint in {run_folder}"
    return files[0]


def greedy_success_of(folder: Path, name: str, scenario: str, episodes: int = 200) -> float:
    """Write ``scenario`` (YAML text) as ``folder/<name>.yaml``, train it, and return its greedy policy's success rate
    on ``episodes`` fresh episodes."""
    from himo.scenarios.evaluate import evaluate
    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    folder.mkdir()
    path = folder / f"{name}.yaml"
    path.write_text(scenario)
    run = train(load(path), progress=False)
    return evaluate(run.folder, episodes).success_rate
