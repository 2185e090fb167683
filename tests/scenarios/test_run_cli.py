"""`himo train`, `himo eval` and `himo resume` as a user types them: TensorBoard, run folder, evaluation, errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents import tags
from himo.scenarios.checkpoint import load_checkpoint
from himo.scenarios.cli import main
from himo.scenarios.run_checkpoints import checkpoint_files
from himo.scenarios.loader import load, to_yaml
from himo.scenarios.run import train

HIMO = str(Path(sys.executable).parent / "himo")
WORKERS = ("image", "text", "audio")
FRAMES, FRAMES_PER_BATCH = 2048, 512
BEACON = [
    "env.num_envs=4",
    "env.kwargs.max_steps=8",  # several episode ends per batch
    f"train.frames={FRAMES}",
    f"train.frames_per_batch={FRAMES_PER_BATCH}",
    "algorithm.workers.epochs=1",
    "algorithm.manager.epochs=1",
    "algorithm.workers.minibatch_size=1024",
    "algorithm.manager.minibatch_size=1024",
    "algorithm.workers.lr_schedule=linear",
]


def himo(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HIMO, *arguments], capture_output=True, text=True, timeout=300, check=False)


def overrides(*assignments: str) -> list[str]:
    return [part for assignment in assignments for part in ("--set", assignment)]


@pytest.fixture(scope="module")
def beacon_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A short `himo train beacon` run: its folder and the overrides it was given."""
    log_dir = tmp_path_factory.mktemp("runs")
    assignments = [*BEACON, f"log.dir={log_dir}"]
    result = himo("train", "beacon", *overrides(*assignments), "--quiet")
    assert result.returncode == 0, result.stderr
    (folder,) = log_dir.iterdir()
    assert f"run folder: {folder}" in result.stdout
    assert f"frames: {FRAMES}" in result.stdout
    # Where the run's time went: collection and each level's learning, as shares of the whole.
    assert re.search(r"^time: [\d.]+ s \(collect \d+%, learn/workers \d+%, learn/manager \d+%\)$", result.stdout, re.MULTILINE), result.stdout
    return folder, assignments


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_train_writes_every_designed_tag_on_an_env_frames_axis(beacon_run) -> None:
    folder, _ = beacon_run
    events = read_events(folder)
    scalars = set(events.Tags()["scalars"])
    expected = {
        tags.REWARD_ENV,
        tags.EPISODE_RETURN,
        tags.EPISODE_LENGTH,
        tags.EPISODE_COUNT,
        tags.OPTION_LENGTH,
        tags.entropy("manager"),
        tags.FPS,
        tags.COLLECT_SECONDS,
        *(tags.learn_seconds(level) for level in ("workers", "manager")),
        *(tags.reward_channel(worker) for worker in WORKERS),
        *(tags.option_frequency(worker) for worker in WORKERS),
        *(tags.loss(level, term) for level in ("workers", "manager") for term in ("objective", "critic", "entropy")),
        *(tags.level_metric(name, level) for name in ("grad_norm", "lr", "kl") for level in ("workers", "manager")),
    }
    # The literal tag names the docs list (docs/getting-started.md), so a rename in the tags module cannot pass unnoticed.
    assert {"reward/env", "reward/channel/audio", "manager/option_frequency/text", "loss/manager/critic"} <= expected
    assert {"grad_norm/workers", "lr/manager", "kl/workers", "time/fps", "manager/entropy"} <= expected
    assert {"time/collect", "time/learn/workers", "time/learn/manager"} <= expected
    missing = expected - scalars
    assert not missing, f"missing tags {sorted(missing)}; written: {sorted(scalars)}"

    batch_steps = list(range(FRAMES_PER_BATCH, FRAMES + 1, FRAMES_PER_BATCH))
    for tag in scalars:
        points = events.Scalars(tag)
        steps = [point.step for point in points]
        assert steps == sorted(set(steps)), f"{tag}: steps not strictly increasing: {steps}"
        assert all(step % FRAMES_PER_BATCH == 0 and 0 < step <= FRAMES for step in steps), f"{tag}: {steps}"
        assert all(math.isfinite(point.value) for point in points), f"{tag}: {[point.value for point in points]}"
    for tag in (tags.REWARD_ENV, tags.level_metric("lr", "workers"), tags.loss("manager", "objective"), tags.FPS):
        assert [point.step for point in events.Scalars(tag)] == batch_steps, tag
    for tag in (tags.COLLECT_SECONDS, tags.learn_seconds("workers"), tags.learn_seconds("manager")):
        assert all(point.value > 0 for point in events.Scalars(tag)), tag

    # Option frequencies are shares of the manager's decisions; the linear schedule decays the lr over frames.
    for index in range(len(batch_steps)):
        shares = [events.Scalars(tags.option_frequency(worker))[index].value for worker in WORKERS]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    lr = [point.value for point in events.Scalars(tags.level_metric("lr", "workers"))]
    base_lr = load("beacon").algorithm.workers.lr
    assert lr == pytest.approx([base_lr * (1 - step / FRAMES) for step in batch_steps], rel=1e-4, abs=1e-9)
    assert all(point.value >= 1 for point in events.Scalars(tags.EPISODE_LENGTH))

    (text_tag,) = [tag for tag in events.Tags()["tensors"] if tag.startswith(tags.SCENARIO)]
    (text,) = events.Tensors(text_tag)
    assert "name: beacon" in text.tensor_proto.string_val[0].decode()
    assert f"frames: {FRAMES}" in text.tensor_proto.string_val[0].decode()


def test_run_folder_holds_the_resolved_scenario_and_the_latest_checkpoint(beacon_run) -> None:
    folder, assignments = beacon_run
    saved = load(folder / "scenario.yaml")
    assert to_yaml(saved) == to_yaml(load("beacon", assignments))
    latest, *_ = checkpoint_files(folder / "checkpoints")
    checkpoint = load_checkpoint(latest)
    assert latest.name == f"frames-{FRAMES:010d}.pt" and checkpoint["frames"] == FRAMES
    assert set(checkpoint) >= {"policy", "learners", "random", "scenario"}


def test_eval_prints_team_channel_returns_and_manager_choices(beacon_run, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = beacon_run
    # In process (the same `main` the `himo` script calls), to spare the suite a second interpreter start.
    assert main(["eval", str(folder), "--episodes", "4"]) == 0
    output = capsys.readouterr().out
    assert re.search(r"^4 episodes with the greedy policy, mean length [\d.]+$", output, re.MULTILINE), output
    assert re.search(r"^  agents: team return [+-][\d.]+$", output, re.MULTILINE), output
    for worker in WORKERS:
        assert re.search(rf"^    channel {worker}: return [+-][\d.]+$", output, re.MULTILINE), output
    chosen = re.search(r"^    manager chose: (.*)$", output, re.MULTILINE)
    assert chosen, output
    shares = dict(re.findall(r"(\w+) (\d+)%", chosen.group(1)))
    assert set(shares) == set(WORKERS)
    assert 98 <= sum(int(share) for share in shares.values()) <= 102  # rounded percentages


def test_eval_sample_runs_the_sampling_policy(beacon_run, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = beacon_run
    summaries = {}
    for flags in ([], ["--sample"]):
        assert main(["eval", str(folder), "--episodes", "16", *flags]) == 0
        summaries[bool(flags)] = capsys.readouterr().out
    assert re.search(r"^16 episodes with the sampling policy, mean length [\d.]+$", summaries[True], re.MULTILINE)
    # The same fresh episodes (one evaluation seed): only the policy's sampling can make them differ.
    assert summaries[True].splitlines()[1:] != summaries[False].splitlines()[1:], summaries


def test_resume_of_a_corrupt_checkpoint_is_a_clear_error_that_keeps_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load("cartpole", ["train.frames=256", "train.frames_per_batch=256", f"log.dir={tmp_path}"])
    folder = train(scenario, progress=False).folder
    (latest,) = checkpoint_files(folder / "checkpoints")  # the run's one checkpoint
    damaged = latest.read_bytes()[: latest.stat().st_size // 2]  # a half-written file
    latest.write_bytes(damaged)

    result = himo("resume", str(folder), "--quiet")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert str(latest) in result.stderr and "not a readable checkpoint" in result.stderr, result.stderr
    assert latest.read_bytes() == damaged, "a failed resume must not touch the saved state"

    assert main(["eval", str(folder), "--episodes", "2"]) != 0
    assert f"{latest}: not a readable checkpoint" in capsys.readouterr().err

    latest.unlink()
    assert main(["resume", str(folder), "--quiet"]) != 0
    assert f"{folder / 'checkpoints'}: no checkpoint there" in capsys.readouterr().err


def test_eval_of_a_checkpoint_whose_policy_no_longer_fits_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load("cartpole", ["train.frames=256", "train.frames_per_batch=256", f"log.dir={tmp_path}"])
    folder = train(scenario, progress=False).folder
    # A second worker: the policy built now has a manager network and worker the checkpoint lacks.
    edited = load(folder / "scenario.yaml", ["workers={a: {modalities: [vector]}, b: {modalities: [vector]}}"])
    (folder / "scenario.yaml").write_text(to_yaml(edited))
    (latest,) = checkpoint_files(folder / "checkpoints")
    assert main(["eval", str(folder), "--episodes", "2"]) != 0
    error = capsys.readouterr().err
    assert f"{latest}: its policy does not fit {folder / 'scenario.yaml'}" in error, error
