"""Checkpoint files: written atomically, so a crash mid-write never leaves a corrupt one; and the random state.

A run's folder of checkpoints (names, how many are kept, the newest readable one) is
``himo.scenarios.run_checkpoints``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy
import torch


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable, so that files deleted after it cannot outlive it after a power cut."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open a folder; their renames are as durable as they get
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class CheckpointError(Exception):
    """A checkpoint could not be read."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomically`, with a clear error when it is missing or corrupt."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch.load raises many types on a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None


def random_states() -> dict[str, Any]:
    """The state of every random generator the run uses (CUDA's where the run has used CUDA)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "python": random.getstate(),
        "numpy": numpy.random.get_state(),
    }


def restore_random_states(states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    numpy.random.set_state(states["numpy"])


def seed_everything(seed: int) -> None:
    """Seed torch, Python and NumPy (the one place a run is seeded; envs are seeded when built)."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed)
