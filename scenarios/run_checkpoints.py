"""A run's checkpoints folder: one file per checkpoint, the last few kept, the newest readable one found.

Naming: ``checkpoints/frames-<env frames, 10 digits>.pt``. A run's frame count only grows, so the
greater the number, the newer the checkpoint (the number is compared as a number, so a run past ten
billion frames still sorts right). A run written before several checkpoints were kept holds one
``latest.pt``: it is that run's newest checkpoint, and the oldest once the run is resumed and writes
numbered ones beside it.

Each file is written atomically (:func:`himo.scenarios.checkpoint.save_atomically`) and the oldest
beyond ``log.keep_checkpoints`` are deleted only once the new one is on disk, so a crash at any point
leaves the kept checkpoints whole. Reading falls back from a damaged newest file (a full disk, a copy
gone wrong) to the newest readable one, and says which files it skipped and why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from himo.scenarios.checkpoint import CheckpointError, load_checkpoint, save_atomically

CHECKPOINT_FOLDER = "checkpoints"
"""The sub-folder of a run folder that holds its checkpoints."""

LATEST = "latest.pt"
"""The one checkpoint of a run written before several were kept: older than any numbered one beside it."""

UNREADABLE_SUFFIX = ".unreadable"
"""Appended to the name of a checkpoint a resumed run skipped, once that run has saved a newer one."""

_NUMBERED = re.compile(r"^frames-(\d+)\.pt$")
_LEFTOVER = re.compile(r"^\..+\.pt\.tmp$")  # a temporary file of a write that a crash interrupted


def checkpoint_name(frames: int) -> str:
    """The file name of the checkpoint taken at ``frames`` env frames."""
    return f"frames-{frames:010d}.pt"


def _recency(path: Path) -> int:
    """A sort key: the frames of a numbered checkpoint; -1 for ``latest.pt``, older than any numbered one."""
    numbered = _NUMBERED.match(path.name)
    return int(numbered.group(1)) if numbered else -1


def checkpoint_files(checkpoints: Path) -> list[Path]:
    """The checkpoints in the folder ``checkpoints``, newest first (none where the folder does not exist)."""
    if not checkpoints.is_dir():
        return []
    found = [
        path
        for path in checkpoints.iterdir()
        if (_NUMBERED.match(path.name) or path.name == LATEST) and path.is_file()
    ]
    return sorted(found, key=_recency, reverse=True)


def save_checkpoint(
    state: dict[str, Any], checkpoints: Path, frames: int, keep: int, set_aside: Sequence[Path] = ()
) -> Path:
    """Write ``state`` as the checkpoint at ``frames``, then keep only the newest ``keep``; returns its path.

    ``set_aside``: checkpoints that a resume skipped as unreadable. They are renamed with
    ``UNREADABLE_SUFFIX`` (kept for inspection, no longer tried) so that, written by the run before
    it fell back, they neither outrank the resumed run's checkpoints nor count among the kept ones.
    """
    path = checkpoints / checkpoint_name(frames)
    save_atomically(state, path)
    for skipped in set_aside:
        if skipped != path and skipped.is_file():  # a resumed run may have just replaced it, at the same frames
            os.replace(skipped, skipped.with_name(skipped.name + UNREADABLE_SUFFIX))
    # Deleted only now that the new checkpoint is on disk, so a crash before this point loses nothing.
    older = [other for other in checkpoint_files(checkpoints) if other != path]
    for stale in older[keep - 1 :]:
        stale.unlink(missing_ok=True)
    for leftover in checkpoints.iterdir():
        if _LEFTOVER.match(leftover.name):
            leftover.unlink(missing_ok=True)
    return path


class SkippedCheckpoint(CheckpointError):
    """One checkpoint file that could not be read, with the file it is about."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class FoundCheckpoint:
    """The newest readable checkpoint of a folder, and the newer ones that could not be read."""

    path: Path
    state: dict[str, Any]
    skipped: tuple[SkippedCheckpoint, ...] = ()
    """Why each newer file was skipped, newest first; each message starts with the file's path."""

    @property
    def skipped_paths(self) -> tuple[Path, ...]:
        """The files that were skipped."""
        return tuple(error.path for error in self.skipped)

    def warnings(self) -> list[str]:
        """One line per skipped file and one naming the file used; none where nothing was skipped."""
        if not self.skipped:
            return []
        lines = [f"warning: skipped {error}" for error in self.skipped]
        return [*lines, f"warning: using {self.path} ({self.state['frames']} frames), the newest readable checkpoint"]


def _read_run_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint that a run wrote: a mapping holding at least its frames."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as error:
        raise SkippedCheckpoint(path, str(error)) from None
    if not isinstance(state, dict) or "frames" not in state:
        raise SkippedCheckpoint(path, f"{path}: not a run checkpoint (it holds no frame count)")
    return state


def read_newest(checkpoints: Path) -> FoundCheckpoint:
    """The newest readable checkpoint in the folder ``checkpoints``.

    Raises :class:`CheckpointError` when there is none, listing every file tried and why it failed.
    """
    candidates = checkpoint_files(checkpoints)
    if not candidates:
        raise CheckpointError(
            f"{checkpoints}: no checkpoint there (a run writes one every log.checkpoint_every frames, "
            "at its end and when Ctrl-C stops it)"
        )
    skipped: list[SkippedCheckpoint] = []
    for path in candidates:
        try:
            return FoundCheckpoint(path, _read_run_checkpoint(path), tuple(skipped))
        except SkippedCheckpoint as error:
            skipped.append(error)
    tried = "\n".join(f"  {error}" for error in skipped)
    raise CheckpointError(f"{checkpoints}: no readable checkpoint; tried, newest first:\n{tried}")


def read_named_checkpoint(path: Path) -> FoundCheckpoint:
    """The checkpoint a user names: a checkpoint file as it is, else the newest readable one of a folder.

    ``path`` may be a checkpoint file (read as it is: no fallback from a file named on purpose), or a run
    folder or its checkpoints folder: the newest readable checkpoint there.
    """
    if path.is_file():
        return FoundCheckpoint(path, load_checkpoint(path))
    if path.is_dir():
        run_checkpoints = path / CHECKPOINT_FOLDER
        return read_newest(run_checkpoints if run_checkpoints.is_dir() else path)
    raise CheckpointError(f"{path}: no checkpoint there (name a checkpoint file, or a run folder for its newest)")
