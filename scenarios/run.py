"""The run loop: collect with a TorchRL ``Collector``, learn per group, log to TensorBoard, checkpoint.

A run lives in ``<log.dir>/<scenario>-<time>/``: ``scenario.yaml`` (the resolved scenario),
TensorBoard event files, and ``checkpoints/latest.pt`` (written atomically every
``log.checkpoint_every`` frames and at the end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchrl.collectors import Collector
from tqdm import tqdm

from agents.optim import NonFiniteLossError
from hierarchy import tags
from hierarchy.learner import GroupLearner
from hierarchy.policy import HierarchicalPolicy
from scenarios.build import build_env, build_policy, load_level_checkpoints
from scenarios.errors import RunError
from scenarios.checkpoint import (
    LATEST,
    load_checkpoint,
    random_states,
    restore_random_states,
    save_atomically,
    seed_everything,
)
from scenarios.loader import load, to_yaml
from scenarios.metrics import batch_metrics
from scenarios.schema import Scenario

SCENARIO_FILE = "scenario.yaml"
CHECKPOINT_FOLDER = "checkpoints"


@dataclass
class TrainResult:
    """What a training run did."""

    folder: Path
    frames: int
    returns: list[tuple[int, float]] = field(default_factory=list)
    """(frames, mean return of the episodes that ended in that batch), per batch that ended any."""
    fps: float = 0.0
    """Env frames per second of this process's part of the run (collection and learning)."""

    def summary(self) -> str:
        """Start and end of the learning curve, and where to look."""
        lines = [f"run folder: {self.folder}", f"frames: {self.frames}"]
        if self.returns:
            window = max(1, len(self.returns) // 10)
            first = sum(value for _, value in self.returns[:window]) / window
            last = sum(value for _, value in self.returns[-window:]) / window
            lines.append(f"episode return: {first:.3f} at the start -> {last:.3f} at the end (mean of {window} batches)")
        lines.append(f"TensorBoard: tensorboard --logdir {self.folder.parent}")
        return "\n".join(lines)


def new_run_folder(scenario: Scenario) -> Path:
    """A fresh folder ``<log.dir>/<name>-<YYYYmmdd-HHMMSS>`` (suffixed if taken)."""
    base = Path(scenario.log.dir) / f"{scenario.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder, suffix = base, 1
    while folder.exists():
        folder, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    return folder


class Trainer:
    """Everything a run holds: env, policy, learners, collector, writer and counters."""

    def __init__(self, scenario: Scenario, folder: Path, checkpoint: dict | None = None) -> None:
        self.scenario = scenario
        self.folder = folder
        self.frames = int(checkpoint["frames"]) if checkpoint else 0
        seed_everything(scenario.train.seed)
        # A resumed run's envs continue with fresh episodes rather than replaying the first ones.
        self.env = build_env(scenario, seed=scenario.train.seed + self.frames)
        self.policy: HierarchicalPolicy = build_policy(scenario, self.env)
        load_level_checkpoints(scenario, self.policy)
        algorithm = scenario.algorithm
        self.learners = {
            group: GroupLearner(policy, algorithm.manager, algorithm.workers, scenario.train.gamma, scenario.train.frames)
            for group, policy in self.policy.groups.items()
        }
        if checkpoint:
            try:
                self.policy.load_state_dict(checkpoint["policy"])
                for group, learner in self.learners.items():
                    learner.load_state_dict(checkpoint["learners"][group])
            except (RuntimeError, ValueError, KeyError) as error:
                raise RunError(
                    f"{folder / SCENARIO_FILE} no longer matches the checkpoint it resumes "
                    f"(was the scenario edited beyond train.frames?): {error}"
                ) from None
            restore_random_states(checkpoint["random"])
        torch.set_num_threads(scenario.train.threads)
        # TensorBoard drops what a resumed run logged past its checkpoint, i.e. steps above its frames: the
        # checkpoint's own batch was logged before it was saved, so it stays (purge_step = frames would drop it).
        self.writer = SummaryWriter(str(folder), purge_step=self.frames + 1 if checkpoint else None)
        self.returns: list[tuple[int, float]] = []

    @property
    def checkpoint_path(self) -> Path:
        """Where the latest checkpoint is written."""
        return self.folder / CHECKPOINT_FOLDER / LATEST

    def save(self) -> None:
        """Write the latest checkpoint atomically."""
        state = {
            "frames": self.frames,
            "policy": self.policy.state_dict(),
            "learners": {group: learner.state_dict() for group, learner in self.learners.items()},
            "random": random_states(),
            "scenario": to_yaml(self.scenario),
        }
        save_atomically(state, self.checkpoint_path)

    def run(self, progress: bool = True) -> TrainResult:
        """Train until ``train.frames``; returns the learning curve."""
        scenario = self.scenario
        remaining = scenario.train.frames - self.frames
        if remaining <= 0:
            return TrainResult(self.folder, self.frames, self.returns)
        batch_frames = scenario.train.frames_per_batch
        remaining = -(-remaining // batch_frames) * batch_frames  # whole batches, so the last one is full
        collector = Collector(
            self.env,
            self.policy,
            frames_per_batch=scenario.train.frames_per_batch,
            total_frames=remaining,
            auto_register_policy_transforms=False,
        )
        torch.set_num_threads(scenario.train.threads)
        groups, workers = list(self.policy.groups), list(scenario.workers)
        bar = tqdm(total=scenario.train.frames, initial=self.frames, unit="frames", disable=not progress)
        next_checkpoint = (self.frames // scenario.log.checkpoint_every + 1) * scenario.log.checkpoint_every
        start, start_frames = datetime.now(), self.frames
        try:
            for batch in collector:
                self.frames += batch.numel()
                metrics = batch_metrics(batch, groups, workers)
                for group, learner in self.learners.items():
                    learned = learner.update(batch, self.frames)
                    metrics |= {tags.in_group(group, name, len(groups)): value for name, value in learned.items()}
                metrics[tags.FPS] = (self.frames - start_frames) / max((datetime.now() - start).total_seconds(), 1e-9)
                self._log(metrics, groups)
                if self.frames >= next_checkpoint:
                    self.save()
                    next_checkpoint += scenario.log.checkpoint_every
                bar.update(batch.numel())
                recent = f"{self.returns[-1][1]:.3f}" if self.returns else "n/a"
                bar.set_postfix(fps=f"{metrics[tags.FPS]:.0f}", ret=recent)
        except NonFiniteLossError as error:
            if self.checkpoint_path.is_file():
                saved = f"last good checkpoint: {self.checkpoint_path}"
            else:  # naming a file that is not there would send the user looking for it
                saved = f"no checkpoint was written yet (log.checkpoint_every is {scenario.log.checkpoint_every} frames)"
            raise RunError(f"{error}\n{saved}") from None
        finally:
            bar.close()
            collector.shutdown()
            self.writer.close()
        self.save()
        seconds = max((datetime.now() - start).total_seconds(), 1e-9)
        return TrainResult(self.folder, self.frames, self.returns, (self.frames - start_frames) / seconds)

    def _log(self, metrics: dict[str, float], groups: list[str]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, self.frames)
        team = [metrics.get(tags.in_group(group, tags.EPISODE_RETURN, len(groups))) for group in groups]
        if all(value is not None for value in team):
            self.returns.append((self.frames, sum(team) / len(team)))


def train(scenario: Scenario, folder: Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``scenario`` in a new run folder (or ``folder``); writes the resolved scenario there first."""
    folder = folder or new_run_folder(scenario)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SCENARIO_FILE).write_text(to_yaml(scenario))
    trainer = Trainer(scenario, folder)
    trainer.writer.add_text(tags.SCENARIO, f"```yaml\n{to_yaml(scenario)}```", 0)
    return trainer.run(progress)


def resume(folder: Path, progress: bool = True) -> TrainResult:
    """Continue the run in ``folder`` from its latest checkpoint (frames, optimisers, schedules, RNG)."""
    scenario = load(folder / SCENARIO_FILE)
    checkpoint = load_checkpoint(folder / CHECKPOINT_FOLDER / LATEST)
    return Trainer(scenario, folder, checkpoint).run(progress)
