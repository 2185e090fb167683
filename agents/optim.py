"""How one level (manager or workers) takes a gradient step: optimiser, frames schedule, clipping, freezing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from himo.agents.settings import LevelAlgorithmConfig

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
FUSED = frozenset({"adam", "adamw", "sgd"})
"""The optimisers torch has a fused step for (one kernel over every parameter, on the CPU as on GPUs)."""
LR_SCHEDULES = ("constant", "linear", "cosine")


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates of one level were skipped because the loss or gradients were not finite."""


@dataclass(frozen=True)
class StepReport:
    """What one call of :meth:`LevelOptimizer.step` did; ``grad_norm`` is the global norm before clipping, and
    ``part_norms`` that of each named part of the parameters (see ``LevelOptimizer.parts``)."""

    grad_norm: float
    lr: float
    skipped: bool
    frozen: bool = False
    part_norms: dict[str, float] = field(default_factory=dict)


def select_parameters(*sources: nn.Module | Iterable[nn.Parameter], trainable_only: bool = True) -> list[nn.Parameter]:
    """The parameters of modules and/or parameter iterables, each once (shared ones are not repeated), in order."""
    seen: set[int] = set()
    selected: list[nn.Parameter] = []
    for source in sources:
        for parameter in source.parameters() if isinstance(source, nn.Module) else source:
            if id(parameter) not in seen and (parameter.requires_grad or not trainable_only):
                seen.add(id(parameter))
                selected.append(parameter)
    return selected


def count_parameters(*sources: nn.Module | Iterable[nn.Parameter], trainable_only: bool = True) -> int:
    """The number of scalar parameters (trainable ones by default) of modules and/or parameter iterables."""
    return sum(parameter.numel() for parameter in select_parameters(*sources, trainable_only=trainable_only))


def scheduled_lr(schedule: str, base_lr: float, frames: int, total_frames: int, final_lr: float = 0.0) -> float:
    """The learning rate after ``frames`` env frames: constant, or linear/cosine decay from ``base_lr`` to
    ``final_lr`` at ``total_frames``."""
    progress = min(max(frames / total_frames, 0.0), 1.0)
    if schedule == "constant":
        return base_lr
    if schedule == "linear":
        return final_lr + (base_lr - final_lr) * (1.0 - progress)
    if schedule == "cosine":
        return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr_schedule {schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")


class LevelOptimizer:
    """One level's optimiser, learning-rate schedule over env frames, gradient clipping and non-finite guard.

    The lr is a pure function of the frames passed to :meth:`step`, so resuming needs only the optimiser
    state and the last frames count. ``frozen=True`` turns the level's parameters off for good: no optimiser
    is built and :meth:`step` changes nothing. ``options`` go to the torch optimiser (e.g. ``eps``).
    """

    def __init__(
        self,
        parameters: Iterable[nn.Parameter],
        *,
        optimizer: str = "adam",
        lr: float = 3e-4,
        lr_schedule: str = "constant",
        lr_final: float = 0.0,
        total_frames: int = 1,
        max_grad_norm: float | None = None,
        frozen: bool = False,
        max_consecutive_skips: int = 10,
        name: str = "level",
        options: Mapping[str, Any] | None = None,
        parts: Mapping[str, Sequence[nn.Parameter]] | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"{name}: unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{name}: unknown lr_schedule {lr_schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")
        if total_frames < 1 or lr <= 0 or (max_grad_norm is not None and max_grad_norm <= 0):
            raise ValueError(f"{name}: total_frames, lr and max_grad_norm must be positive")
        if not 0.0 <= lr_final <= lr:
            raise ValueError(f"{name}: lr_final must be between 0 and lr ({lr:g}), got {lr_final:g}")
        self.name, self.base_lr, self.lr_schedule, self.total_frames = name, lr, lr_schedule, total_frames
        self.final_lr = lr_final
        self.max_grad_norm, self.frozen, self.max_consecutive_skips = max_grad_norm, frozen, max_consecutive_skips
        self.consecutive_skips, self.frames = 0, 0
        self.parts = {part: list(members) for part, members in (parts or {}).items()}
        """Named subsets of the parameters whose gradient norms each step also reports (a level's heads)."""
        self.optimizer: torch.optim.Optimizer | None = None
        if frozen:
            self.parameters = select_parameters(parameters, trainable_only=False)
            for parameter in self.parameters:
                parameter.requires_grad_(False)
            return
        self.parameters = select_parameters(parameters)
        if not self.parameters:
            raise ValueError(f"{name}: no trainable parameters to optimise (set frozen: true to keep the level fixed)")
        # A policy has many small tensors, so a step is mostly per-tensor dispatch. The fused step (one kernel over all
        # of them) was about 3x faster than the multi-tensor one for a hierarchical policy's 42 tensors on one CPU
        # thread, and the multi-tensor step, for the optimisers without a fused one, 2x faster than a loop over them.
        # Torch defaults to the multi-tensor step on GPUs only and never to the fused one. An explicit `fused` or
        # `foreach` option in `options` takes precedence; a resumed optimiser keeps the step its checkpoint saved.
        options = dict(options or {})
        if "fused" not in options and "foreach" not in options:
            options["fused" if optimizer in FUSED else "foreach"] = True
        self.optimizer = OPTIMIZERS[optimizer](self.parameters, lr=self.lr, **options)

    @classmethod
    def from_settings(
        cls, parameters: Iterable[nn.Parameter], settings: LevelAlgorithmConfig, total_frames: int, **keywords: Any
    ) -> LevelOptimizer:
        """Build from a level's algorithm section (:class:`~himo.agents.settings.LevelAlgorithmConfig`) and the run's total frames."""
        return cls(
            parameters,
            optimizer=settings.optimizer,
            lr=settings.lr,
            lr_schedule=settings.lr_schedule,
            lr_final=settings.lr_final,
            max_grad_norm=settings.max_grad_norm,
            frozen=settings.frozen,
            total_frames=total_frames,
            **keywords,
        )

    @property
    def lr(self) -> float:
        """The learning rate at the last frames count seen (0 when frozen)."""
        return 0.0 if self.frozen else scheduled_lr(
            self.lr_schedule, self.base_lr, self.frames, self.total_frames, self.final_lr
        )

    def step(self, loss: torch.Tensor, frames: int) -> StepReport:
        """Zero grads, backpropagate ``loss``, clip, and update at the lr of ``frames``; skip if not finite."""
        if self.optimizer is None:
            return StepReport(grad_norm=0.0, lr=0.0, skipped=False, frozen=True)
        self.frames = int(frames)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self._grad_norm(self.parameters)
        # One host sync for both checks; the norm is taken before clipping so a blow-up is visible in logs.
        finite = bool(torch.isfinite(loss.detach()).all() & torch.isfinite(grad_norm))
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.consecutive_skips += 1
            return StepReport(grad_norm=float(grad_norm), lr=self.lr, skipped=True)
        part_norms = {part: float(self._grad_norm(members)) for part, members in self.parts.items()}
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(self.parameters, self.max_grad_norm, grad_norm)
        self.optimizer.step()
        self.consecutive_skips = 0
        return StepReport(grad_norm=float(grad_norm), lr=self.lr, skipped=False, part_norms=part_norms)

    @staticmethod
    def _grad_norm(parameters: Sequence[nn.Parameter]) -> torch.Tensor:
        """The total norm of the gradients ``parameters`` hold (zero where none has one)."""
        grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())

    def raise_if_diverged(self) -> None:
        """Raise :class:`NonFiniteLossError` when more than ``max_consecutive_skips`` updates in a row were skipped."""
        if self.consecutive_skips > self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"{self.name}: {self.consecutive_skips} consecutive updates skipped because the loss or the gradient "
                f"norm was not finite (limit {self.max_consecutive_skips}) at {self.frames} frames, lr {self.lr:.3g}; "
                "the run is diverging: lower the lr, set max_grad_norm, or check the rewards and observations"
            )

    def state_dict(self) -> dict[str, Any]:
        """Optimiser state, frames count (which fixes the lr) and skip counter."""
        return {
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "frames": self.frames,
            "consecutive_skips": self.consecutive_skips,
            "frozen": self.frozen,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next step continues with the lr the saved run would have used."""
        if bool(state["frozen"]) != self.frozen:
            saved = state["frozen"]
            raise ValueError(f"{self.name}: checkpoint has frozen={saved} but this level has frozen={self.frozen}")
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.frames, self.consecutive_skips = int(state["frames"]), int(state["consecutive_skips"])
