"""A run's checkpoints folder on its own: names, how many are kept, crashes mid-write, and the newest readable one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import himo.scenarios.checkpoint
from himo.scenarios.checkpoint import CheckpointError, load_checkpoint
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run_checkpoints import (
    LATEST,
    checkpoint_files,
    checkpoint_name,
    read_named_checkpoint,
    read_newest,
    save_checkpoint,
)


def state(frames: int) -> dict[str, object]:
    return {"frames": frames, "policy": {"weight": torch.full((2,), float(frames))}}


def truncate(path: Path) -> None:
    """Keep the first half of the file's bytes, as a full disk or a copy gone wrong would."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_names_sort_by_frames_as_numbers_and_latest_pt_is_oldest(tmp_path: Path) -> None:
    assert checkpoint_name(12345) == "frames-0000012345.pt"
    for frames in (9, 10**11, 512):  # 10**11 has more digits than the padding: still the newest
        save_checkpoint(state(frames), tmp_path, frames, keep=10)
    torch.save(state(1), tmp_path / LATEST)  # a run written before several checkpoints were kept
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [path.name for path in checkpoint_files(tmp_path)] == [
        checkpoint_name(10**11), checkpoint_name(512), checkpoint_name(9), LATEST
    ]
    assert checkpoint_files(tmp_path / "absent") == []


def test_only_the_newest_are_kept_and_latest_pt_goes_first(tmp_path: Path) -> None:
    torch.save(state(100), tmp_path / LATEST)
    for frames in (256, 512, 768):
        written = save_checkpoint(state(frames), tmp_path, frames, keep=2)
        assert load_checkpoint(written)["frames"] == frames
    assert names(tmp_path) == [checkpoint_name(512), checkpoint_name(768)]


def test_a_run_written_with_only_latest_pt_reads_it(tmp_path: Path) -> None:
    torch.save(state(300), tmp_path / LATEST)
    found = read_newest(tmp_path)
    assert found.path == tmp_path / LATEST and found.state["frames"] == 300 and not found.warnings()


def test_a_crash_mid_write_leaves_the_kept_checkpoints_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for frames in (256, 512):
        save_checkpoint(state(frames), tmp_path, frames, keep=2)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def die_half_way(saved: object, handle) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(himo.scenarios.checkpoint.torch, "save", die_half_way)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(state(768), tmp_path, 768, keep=2)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in checkpoint_files(tmp_path)} == before
    assert read_newest(tmp_path).state["frames"] == 512

    # The next checkpoint written clears the interrupted write's temporary file.
    save_checkpoint(state(1024), tmp_path, 1024, keep=2)
    assert names(tmp_path) == [checkpoint_name(512), checkpoint_name(1024)]


def test_reading_falls_back_to_the_newest_readable_and_says_what_it_skipped(tmp_path: Path) -> None:
    for frames in (256, 512, 768):
        save_checkpoint(state(frames), tmp_path, frames, keep=3)
    newest, middle, oldest = checkpoint_files(tmp_path)
    truncate(newest)
    torch.save({"policy": {}}, middle)  # readable, but not a run's checkpoint
    found = read_newest(tmp_path)
    assert found.path == oldest and found.state["frames"] == 256
    assert found.skipped_paths == (newest, middle)
    first, second, using = found.warnings()
    assert first.startswith(f"warning: skipped {newest}: not a readable checkpoint (")
    assert second == f"warning: skipped {middle}: not a run checkpoint (it holds no frame count)"
    assert using == f"warning: using {oldest} (256 frames), the newest readable checkpoint"


def test_with_every_checkpoint_unreadable_the_error_lists_each_file(tmp_path: Path) -> None:
    for frames in (256, 512):
        save_checkpoint(state(frames), tmp_path, frames, keep=2)
    for path in checkpoint_files(tmp_path):
        truncate(path)
    with pytest.raises(CheckpointError) as raised:
        read_newest(tmp_path)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{tmp_path}: no readable checkpoint; tried, newest first:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [str(path) for path in checkpoint_files(tmp_path)]
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        read_newest(tmp_path / "empty")


def test_a_resumed_run_sets_aside_the_files_it_skipped_once_it_has_saved(tmp_path: Path) -> None:
    for frames in (256, 512, 768):
        save_checkpoint(state(frames), tmp_path, frames, keep=3)
    newest = checkpoint_files(tmp_path)[0]
    truncate(newest)
    skipped = read_newest(tmp_path).skipped_paths
    # Resumed at 512, the run saves at 700 (its schedule changed): the damaged 768 must not outrank it.
    save_checkpoint(state(700), tmp_path, 700, keep=3, set_aside=skipped)
    assert names(tmp_path) == sorted([checkpoint_name(f) for f in (256, 512, 700)] + [f"{newest.name}.unreadable"])
    assert read_newest(tmp_path).state["frames"] == 700
    # At the same frames, the new file replaces the damaged one: nothing to set aside.
    truncate(tmp_path / checkpoint_name(700))
    save_checkpoint(state(700), tmp_path, 700, keep=3, set_aside=read_newest(tmp_path).skipped_paths)
    assert read_newest(tmp_path).state["frames"] == 700 and not read_newest(tmp_path).skipped


@pytest.mark.parametrize("named", ["run folder", "checkpoints folder"])
def test_a_named_folder_means_its_newest_readable(tmp_path: Path, named: str) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    for frames in (256, 512):
        save_checkpoint(state(frames), checkpoints, frames, keep=2)
    path = {"run folder": tmp_path / "run", "checkpoints folder": checkpoints}
    assert read_named_checkpoint(path[named]).state["frames"] == 512
    truncate(checkpoints / checkpoint_name(512))
    found = read_named_checkpoint(path[named])
    assert found.state["frames"] == 256 and found.skipped_paths == (checkpoints / checkpoint_name(512),)


def test_a_named_file_is_read_as_it_is(tmp_path: Path) -> None:
    for frames in (256, 512):
        save_checkpoint(state(frames), tmp_path, frames, keep=2)
    older = tmp_path / checkpoint_name(256)
    assert read_named_checkpoint(older).state["frames"] == 256
    truncate(older)
    with pytest.raises(CheckpointError, match=f"{older}: not a readable checkpoint"):
        read_named_checkpoint(older)  # no fallback from a file named on purpose
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        read_named_checkpoint(tmp_path / "elsewhere.pt")


def test_keep_checkpoints_is_at_least_one() -> None:
    assert load("cartpole").log.keep_checkpoints == 3
    with pytest.raises(ScenarioError) as raised:
        load("cartpole", ["log.keep_checkpoints=0"])
    assert str(raised.value) == (
        "--set log.keep_checkpoints=0: log.keep_checkpoints: Input should be greater than or equal to 1 (got 0)"
    )
