"""Exact resume and Ctrl-C: a stopped and resumed run logs what the uninterrupted run logs, to the last bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from short_runs import SMALL_BEACON, both_levels, newest_checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents import tags
from himo.envs.builtin.beacon import BeaconEnv
from himo.hierarchy.learner import GroupLearner
from himo.scenarios.checkpoint import load_checkpoint
from himo.scenarios.cli import main
from himo.scenarios.interrupt import RunInterrupted
from himo.scenarios.loader import load
from himo.scenarios.run import Trainer, TrainResult, resume, train
from himo.scenarios.schema import Scenario

FRAMES, CHECKPOINT_EVERY = 1024, 512  # 4 batches of 256 frames, two checkpoints


def beacon(log_dir: Path, overrides: tuple[str, ...] = ()) -> Scenario:
    return load(
        "beacon",
        [*SMALL_BEACON, *overrides, f"train.frames={FRAMES}", f"log.checkpoint_every={CHECKPOINT_EVERY}", f"log.dir={log_dir}"],
    )


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar curve of a run but the wall-clock ones (speed and seconds), which no two runs share."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(point.step, point.value) for point in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if not tag.startswith(tags.TIME)
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The reference: the same run in one go."""
    return train(beacon(tmp_path_factory.mktemp("whole")), progress=False)


def assert_continues_exactly(folder: Path, resumed: TrainResult, reference: TrainResult, stopped_at: int) -> None:
    """Every curve of the run in ``folder`` is the reference's, and so are the returns after ``stopped_at`` frames."""
    assert resumed.frames == FRAMES
    assert resumed.returns == [(frames, value) for frames, value in reference.returns if frames > stopped_at]
    assert resumed.returns, "the resumed part must have ended episodes to compare"
    expected, logged = scalars(reference.folder), scalars(folder)
    assert logged.keys() == expected.keys()
    for tag, curve in expected.items():
        assert [step for step, _ in curve] == list(range(256, FRAMES + 1, 256)), tag
        assert logged[tag] == curve, f"{tag} differs from the uninterrupted run"


def on_call(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, number: int, action: Callable[[], None]) -> None:
    """Run ``action`` as ``owner.name`` is called for the ``number``-th time, before it runs."""
    original, calls = getattr(owner, name), [0]

    def wrapped(self, *arguments, **keywords):
        calls[0] += 1
        if calls[0] == number:
            action()
        return original(self, *arguments, **keywords)

    monkeypatch.setattr(owner, name, wrapped)


STEPS_PER_BATCH = 64  # 256 frames of 4 envs; the third batch is steps 129 to 192


@pytest.fixture(autouse=True)
def interruptible() -> Iterator[None]:
    """Ctrl-C behaves as in a terminal, also where the suite runs with SIGINT ignored (e.g. as a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def crash() -> None:
    raise RuntimeError("crash")


def test_a_run_that_died_after_its_first_checkpoint_resumes_exactly(
    uninterrupted: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run dies while collecting the batch after its first checkpoint.
    on_call(monkeypatch, BeaconEnv, "_step", 2 * STEPS_PER_BATCH + 10, crash)
    with pytest.raises(RuntimeError, match="crash"):
        train(beacon(tmp_path), progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    assert load_checkpoint(newest_checkpoint(folder))["frames"] == CHECKPOINT_EVERY

    resumed = resume(folder, progress=False)
    assert "resuming at 512 frames: the envs continue their episodes" in capsys.readouterr().err
    assert_continues_exactly(folder, resumed, uninterrupted, CHECKPOINT_EVERY)


def test_a_sac_run_resumes_exactly_with_its_replay_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sac = tuple(both_levels("sac"))
    reference = train(beacon(tmp_path / "whole", sac), progress=False)
    on_call(monkeypatch, BeaconEnv, "_step", 2 * STEPS_PER_BATCH + 10, crash)
    with pytest.raises(RuntimeError, match="crash"):
        train(beacon(tmp_path / "cut", sac), progress=False)
    monkeypatch.undo()
    (folder,) = (tmp_path / "cut").iterdir()
    (saved,) = load_checkpoint(newest_checkpoint(folder))["learners"].values()
    assert all(saved[level]["buffer"]["_storage"]["_len"] > 0 for level in ("workers", "manager"))
    assert_continues_exactly(folder, resume(folder, progress=False), reference, CHECKPOINT_EVERY)


def test_a_run_with_memory_resumes_exactly_with_its_recurrent_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remembering = ("workers.audio.memory={kind: lstm, hidden: 8}", "manager.memory={hidden: 8}")
    reference = train(beacon(tmp_path / "whole", remembering), progress=False)
    on_call(monkeypatch, BeaconEnv, "_step", 2 * STEPS_PER_BATCH + 10, crash)
    with pytest.raises(RuntimeError, match="crash"):
        train(beacon(tmp_path / "cut", remembering), progress=False)
    monkeypatch.undo()
    (folder,) = (tmp_path / "cut").iterdir()
    carried = load_checkpoint(newest_checkpoint(folder))["collection"]["carried"]
    for leaf in (("workers", "audio", "hidden"), ("workers", "audio", "cell"), ("manager", "hidden")):
        assert carried.get(("agents", *leaf)).abs().sum() > 0, leaf  # the state mid-episode, not a fresh one
    assert_continues_exactly(folder, resume(folder, progress=False), reference, CHECKPOINT_EVERY)


def test_ctrl_c_while_collecting_saves_the_last_batch_s_state_and_resumes_exactly(
    uninterrupted: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C halfway through collecting the third batch: the run stops at once, keeping the state after the second.
    on_call(monkeypatch, BeaconEnv, "_step", 2 * STEPS_PER_BATCH + 32, ctrl_c)
    with pytest.raises(RunInterrupted) as raised:
        train(beacon(tmp_path), progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    latest = newest_checkpoint(folder)
    assert (
        str(raised.value) == f"interrupted at 512 frames; checkpoint saved: {latest}\nresume with: himo resume {folder}"
    )
    assert load_checkpoint(latest)["frames"] == 512
    assert_continues_exactly(folder, resume(folder, progress=False), uninterrupted, 512)


def test_ctrl_c_while_learning_finishes_the_batch_then_saves_and_resumes_exactly(
    uninterrupted: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C as the third batch's update begins: the update, its logging and its checkpoint complete first.
    on_call(monkeypatch, GroupLearner, "update", 3, ctrl_c)  # beacon has one group: one update per batch
    with pytest.raises(RunInterrupted, match="interrupted at 768 frames; checkpoint saved"):
        train(beacon(tmp_path), progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    assert load_checkpoint(newest_checkpoint(folder))["frames"] == 768
    assert [step for step, _ in scalars(folder)[tags.REWARD_ENV]] == [256, 512, 768]
    assert_continues_exactly(folder, resume(folder, progress=False), uninterrupted, 768)


def test_a_second_ctrl_c_aborts_the_update_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_call(monkeypatch, GroupLearner, "update", 3, lambda: (ctrl_c(), ctrl_c()))
    with pytest.raises(RunInterrupted) as raised:
        train(beacon(tmp_path), progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    latest = newest_checkpoint(folder)
    assert str(raised.value) == (
        f"aborted at 768 frames without saving; the last checkpoint (512 frames) is {latest}\n"
        f"resume with: himo resume {folder}"
    )
    assert load_checkpoint(latest)["frames"] == 512


def test_an_env_whose_state_cannot_be_saved_resumes_with_fresh_episodes_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load(
        "cartpole",
        [
            "env.num_envs=4",
            "train.frames=768",
            "train.frames_per_batch=256",
            "log.checkpoint_every=256",
            f"log.dir={tmp_path}",
        ],
    )
    on_call(monkeypatch, Trainer, "save", 2, crash)  # at 512 frames, before writing: the checkpoint stays at 256
    with pytest.raises(RuntimeError, match="crash"):
        train(scenario, progress=False)
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    assert load_checkpoint(newest_checkpoint(folder))["collection"]["carried"] is None
    assert resume(folder, progress=False).frames == 768
    error = capsys.readouterr().err
    assert "resuming at 256 frames: the state of gymnasium/CartPole-v1 is not in the checkpoint" in error, error
    assert "start fresh episodes" in error


HIMO = str(Path(sys.executable).parent / "himo")


def test_ctrl_c_stops_himo_train_with_a_checkpoint_that_himo_resume_continues(tmp_path: Path) -> None:
    total = 256 * 200  # far more than the test waits for: the run is stopped long before it ends
    assignments = [*SMALL_BEACON, f"train.frames={total}", "log.checkpoint_every=256", f"log.dir={tmp_path}"]
    command = [HIMO, "train", "beacon", *[part for item in assignments for part in ("--set", item)], "--quiet"]
    # A child inherits an ignored SIGINT (as in a test run started in the background); Python's handler it does not.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 240  # only against a hang; no timing is asserted
        while not list(tmp_path.glob("*/checkpoints/frames-*.pt")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, error = process.communicate(timeout=240)
    finally:
        process.kill()
    assert process.returncode == 130, error
    (folder,) = tmp_path.iterdir()
    latest = newest_checkpoint(folder)
    assert f"checkpoint saved: {latest}" in error and f"resume with: himo resume {folder}" in error, error
    assert "Traceback" not in error, error
    saved = load_checkpoint(latest)["frames"]
    assert 256 <= saved < total and saved % 256 == 0

    # Resume to two batches past the checkpoint (the scenario file is the run's to edit, as for a longer run).
    settings = folder / "scenario.yaml"
    data = yaml.safe_load(settings.read_text())
    data["train"]["frames"] = saved + 512
    settings.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["resume", str(folder), "--quiet"]) == 0
    assert load_checkpoint(newest_checkpoint(folder))["frames"] == saved + 512
