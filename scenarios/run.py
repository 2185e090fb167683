"""The run loop: collect with a TorchRL ``Collector``, learn per group, log to TensorBoard, checkpoint.

A run lives in ``<log.dir>/<scenario>-<time>/``: ``scenario.yaml`` (the resolved scenario),
TensorBoard event files, and ``checkpoints/frames-<frames>.pt`` (written atomically every
``log.checkpoint_every`` frames, at the end, and when Ctrl-C stops the run; the last
``log.keep_checkpoints`` are kept, see ``himo.scenarios.run_checkpoints``). A checkpoint holds the
state after a batch: policy, optimisers and schedules, and the resume point (``himo.scenarios.resume_point``:
random generators, collector, carried TensorDict and env state), so a resumed run continues exactly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from tensordict import TensorDictBase
from torch.utils.tensorboard import SummaryWriter
from torchrl.collectors import BaseCollector, Collector, MultiAsyncCollector
from tqdm import tqdm

from himo.agents.optim import NonFiniteLossError
from himo.agents.sac import ReplayBufferTooLarge
from himo.agents import tags
from himo.envs import keys
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env, build_learners, build_policy, load_level_checkpoints
from himo.scenarios.hparams import write_hparams, write_layout
from himo.scenarios.errors import RunError
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.asynchronous import run_actor_learners, uses_actor_learners
from himo.scenarios.collection import is_asynchronous, make_collector
from himo.scenarios.interrupt import InterruptGuard, RunInterrupted
from himo.scenarios.loader import load, to_yaml
from himo.scenarios.metrics import batch_metrics, option_histograms
from himo.scenarios.media import record_episode, write_episode
from himo.scenarios.resume_point import capture_resume_point, restore_resume_point
from himo.scenarios.run_checkpoints import CHECKPOINT_FOLDER, FoundCheckpoint, read_newest, save_checkpoint
from himo.scenarios.schema import Scenario

SCENARIO_FILE = "scenario.yaml"

Observer = Callable[[int, Mapping[str, float]], None]
"""Called after each logged batch with the run's frames and that batch's metrics (TensorBoard tag -> value); what it
raises stops the run (after the batch's checkpoint, if one was due), as ``himo tune``'s pruning does."""


@dataclass
class TrainResult:
    """What a training run did."""

    folder: Path
    frames: int
    returns: list[tuple[int, float]] = field(default_factory=list)
    """(frames, mean return of the episodes that ended in that batch), per batch that ended any."""
    episodes: list[tuple[int, int, int | None]] = field(default_factory=list)
    """(frames, episodes that ended in that batch, how many of them succeeded), per batch that ended any;
    successes are counted with ``env.success_above``, else the env's own success signal (else None)."""
    fps: float = 0.0
    """Env frames per second of this process's part of the run (collection and learning)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds of this process's part of the run: ``"run"`` in all, and the sum over its batches of each
    ``time/`` tag but the speed (``"collect"``, ``"learn/workers"``, ``"learn/manager"``; with several groups, each
    group's learning under ``"<group>/learn/<level>"``)."""

    def summary(self) -> str:
        """Start and end of the learning curve, and where to look."""
        lines = [f"run folder: {self.folder}", f"frames: {self.frames}"]
        if self.returns:
            window = max(1, len(self.returns) // 10)
            first = sum(value for _, value in self.returns[:window]) / window
            last = sum(value for _, value in self.returns[-window:]) / window
            lines.append(f"episode return: {first:.3f} at the start -> {last:.3f} at the end (mean of {window} batches)")
        counted = [(ended, succeeded) for _, ended, succeeded in self.episodes if succeeded is not None]
        if counted:
            window = max(1, len(counted) // 10)
            first, last = (sum(s for _, s in part) / sum(e for e, _ in part) for part in (counted[:window], counted[-window:]))
            lines.append(f"success rate: {first:.1%} at the start -> {last:.1%} at the end (episodes of {window} batches)")
        if self.seconds.get("run"):
            shares = ", ".join(f"{name} {value / self.seconds['run']:.0%}" for name, value in self.seconds.items() if name != "run")
            lines.append(f"time: {self.seconds['run']:.1f} s" + (f" ({shares})" if shares else ""))
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

    def __init__(
        self, scenario: Scenario, folder: Path, resumed: FoundCheckpoint | None = None, observer: Observer | None = None
    ) -> None:
        self.scenario = scenario
        self.folder = folder
        self.observer = observer
        checkpoint = resumed.state if resumed else None
        self.frames = int(checkpoint["frames"]) if checkpoint else 0
        seed_everything(scenario.train.seed)
        # Where the env's state is in the checkpoint it is restored; where not, the resumed envs start
        # fresh episodes rather than replaying the first ones.
        self.env = build_env(scenario, seed=scenario.train.seed + self.frames)
        self.reports_success = scenario.env.success_above is not None or keys.SUCCESS in self.env.full_observation_spec.keys()
        """Whether episodes are counted as successes (``env.success_above``, or the env's own signal)."""
        # Before building the policy: some initialisations (orthogonal) give other floats on other thread counts.
        torch.set_num_threads(scenario.train.threads)
        self.policy: HierarchicalPolicy = build_policy(scenario, self.env)
        load_level_checkpoints(scenario, self.policy)
        self.learners = build_learners(scenario, self.policy)
        if checkpoint:
            try:
                self.policy.load_state_dict(checkpoint["policy"])
                for group, learner in self.learners.items():
                    learner.load_state_dict(checkpoint["learners"][group])
            except (RuntimeError, ValueError, KeyError) as error:
                raise self._mismatch(error) from None
        # Its collection state and random generators are restored once the collector exists (see `_start`).
        self._checkpoint = checkpoint
        self.resumed_exactly: bool | None = None
        """After `run` resumed a checkpoint: whether the envs continued their episodes (else fresh ones began)."""
        self._resume_point: dict | None = None
        self._saved_frames: int | None = int(checkpoint["frames"]) if checkpoint else None
        self._saved_path: Path | None = resumed.path if resumed else None
        # Newer files the resume could not read: set aside at the first save, which outranks them.
        self._unreadable: Sequence[Path] = resumed.skipped_paths if resumed else ()
        self._clock = (datetime.now(), self.frames)  # when and at which frames this process's part of the run began
        self._seconds: dict[str, float] = {}  # each time/ tag's sum over this process's batches (TrainResult.seconds)
        # TensorBoard drops what a resumed run logged past its checkpoint, i.e. steps above its frames: the
        # checkpoint's own batch was logged before it was saved, so it stays (purge_step = frames would drop it).
        self.writer = SummaryWriter(str(folder), purge_step=self.frames + 1 if checkpoint else None)
        self.returns: list[tuple[int, float]] = []
        self.episodes: list[tuple[int, int, int | None]] = []

    def _mismatch(self, error: Exception) -> RunError:
        return RunError(
            f"{self.folder / SCENARIO_FILE} no longer matches the checkpoint it resumes "
            f"(was the scenario edited beyond train.frames, or the run saved by a himo that built its policy "
            f"differently?): {error}"
        )

    @property
    def checkpoint_path(self) -> Path | None:
        """The run's newest checkpoint: the last one saved, or the one it resumed from (None before either)."""
        return self._saved_path

    def save(self) -> None:
        """Write a checkpoint atomically: the state after the last batch (see `himo.scenarios.resume_point`);
        the oldest beyond ``log.keep_checkpoints`` are then deleted."""
        if self._resume_point is None:
            raise RuntimeError("Trainer.save() is called by run(), once the collector exists")
        state = {
            "frames": self.frames,
            "policy": self.policy.state_dict(),
            "learners": {group: learner.state_dict() for group, learner in self.learners.items()},
            **self._resume_point,
            "scenario": to_yaml(self.scenario),
        }
        self._saved_path = save_checkpoint(
            state, self.folder / CHECKPOINT_FOLDER, self.frames, self.scenario.log.keep_checkpoints, self._unreadable
        )
        self._unreadable = ()
        self._saved_frames = self.frames

    def run(self, progress: bool = True) -> TrainResult:
        """Train until ``train.frames``; returns the learning curve.

        Ctrl-C stops the run between two batches and saves its checkpoint (`himo.scenarios.interrupt`);
        ``RunInterrupted`` then says where it is and how to resume.
        """
        scenario = self.scenario
        remaining = scenario.train.frames - self.frames
        if remaining <= 0:
            return TrainResult(self.folder, self.frames, self.returns, self.episodes)
        batch_frames = scenario.train.frames_per_batch
        target = self.frames + -(-remaining // batch_frames) * batch_frames  # whole batches, so the last one is full
        if uses_actor_learners(scenario):
            return self._run_actor_learners(target, progress)
        collector = make_collector(scenario, self.env, self.policy, self.frames)
        torch.set_num_threads(scenario.train.threads)
        bar = tqdm(total=scenario.train.frames, initial=self.frames, unit="frames", disable=not progress)
        self._clock = (datetime.now(), self.frames)
        try:
            self._start(collector)
            with InterruptGuard() as guard:
                learning = False
                try:
                    waiting = time.perf_counter()
                    for batch in collector:
                        learning = True
                        collect_seconds = time.perf_counter() - waiting
                        with guard.deferred():
                            self._learn(batch, collector, target, bar, collect_seconds)
                        learning = False
                        waiting = time.perf_counter()
                        if self.frames >= target:
                            break
                        if guard.requested:  # Ctrl-C came during the update: stop now that it is done
                            raise KeyboardInterrupt
                except KeyboardInterrupt:
                    if learning:  # a second Ctrl-C (or an error) left the update half done: nothing to save
                        raise self._interruption(saved=False) from None
                    # Collection changes neither the policy nor the learners: with the last resume point they are whole.
                    if self._saved_frames != self.frames:
                        self.save()
                    raise self._interruption(saved=True) from None
        except (NonFiniteLossError, ReplayBufferTooLarge) as error:
            if self.checkpoint_path is not None:
                saved = f"last good checkpoint: {self.checkpoint_path}"
            else:  # naming a file that is not there would send the user looking for it
                saved = f"no checkpoint was written yet (log.checkpoint_every is {scenario.log.checkpoint_every} frames)"
            raise RunError(f"{error}\n{saved}") from None
        finally:
            bar.close()
            collector.shutdown()
            self.writer.close()
        return self._result()

    def _run_actor_learners(self, target: int, progress: bool) -> TrainResult:
        """A3C: actor-learner processes update the shared policy (``himo.scenarios.asynchronous``); this process logs,
        checkpoints and handles Ctrl-C."""
        scenario = self.scenario
        groups = list(self.policy.groups)
        self._start(None)
        bar = tqdm(total=scenario.train.frames, initial=self.frames, unit="frames", disable=not progress)
        self._clock = (datetime.now(), self.frames)
        every = scenario.log.checkpoint_every

        def on_report(frames: int, batch_frames: int, metrics: dict[str, float]) -> None:
            before, self.frames = self.frames, max(self.frames, frames)
            started, start_frames = self._clock
            metrics[tags.FPS] = (self.frames - start_frames) / max((datetime.now() - started).total_seconds(), 1e-9)
            self._log(metrics, groups)
            self._resume_point = capture_resume_point(None, self.env)
            if self.frames // every > before // every:
                self.save()
            bar.update(batch_frames)
            recent = f"{self.returns[-1][1]:.3f}" if self.returns else "n/a"
            bar.set_postfix(fps=f"{metrics[tags.FPS]:.0f}", ret=recent)
            if self.observer is not None:
                self.observer(self.frames, metrics)

        try:
            with InterruptGuard():
                try:
                    run_actor_learners(self, target, on_report)
                except KeyboardInterrupt:
                    self._resume_point = capture_resume_point(None, self.env)
                    self.save()
                    raise self._interruption(saved=True) from None
        finally:
            bar.close()
            self.writer.close()
        self.save()
        return self._result()

    def _result(self) -> TrainResult:
        """The run's curves, and its speed and time of this process's part of it."""
        seconds = max((datetime.now() - self._clock[0]).total_seconds(), 1e-9)
        # Collection first, then each level's learning in the order the learners report it.
        ordered = sorted(self._seconds.items(), key=lambda item: item[0] != tags.COLLECT_SECONDS)
        spent = {"run": seconds, **{tag.replace(tags.TIME, ""): value for tag, value in ordered}}
        return TrainResult(self.folder, self.frames, self.returns, self.episodes, (self.frames - self._clock[1]) / seconds, spent)

    def _local(self, collector: BaseCollector | None) -> Collector | None:
        """The collector whose envs run in this process (whose state a checkpoint holds), if any."""
        return collector if isinstance(collector, Collector) else None

    def _start(self, collector: BaseCollector | None) -> None:
        """Restore the checkpoint's collection state and random generators, or note the fresh run's starting point."""
        if self._checkpoint is not None:
            try:
                self.resumed_exactly = restore_resume_point(self._local(collector), self.env, self._checkpoint)
            except ValueError as error:
                raise self._mismatch(error) from None
            except KeyError as error:
                raise RunError(f"{self.checkpoint_path}: this checkpoint holds no resume point (no {error})") from None
            self._checkpoint = None
            if self.resumed_exactly:
                note = "the envs continue their episodes where the checkpoint left them"
            elif self.scenario.train.backend == "ray":
                note = (
                    "the envs run in Ray actors, whose state is not in the checkpoint, so they start fresh episodes; "
                    "policy, optimisers, schedules and random generators are restored"
                )
            elif is_asynchronous(self.scenario) or uses_actor_learners(self.scenario):
                note = (
                    "the envs run in actor processes, whose state is not in the checkpoint, so they start fresh "
                    "episodes; policy, optimisers, schedules and random generators are restored"
                )
            else:
                note = (
                    f"the state of {self.scenario.env.id} is not in the checkpoint (it cannot be saved), so its envs "
                    "start fresh episodes; policy, optimisers, schedules and random generators are restored"
                )
            tqdm.write(f"resuming at {self.frames} frames: {note}", file=sys.stderr)
        self._resume_point = capture_resume_point(self._local(collector), self.env)

    def _learn(self, batch: TensorDictBase, collector: BaseCollector, target: int, bar: tqdm, collect_seconds: float) -> None:
        """Learn from one batch (which took ``collect_seconds`` to arrive), log it and checkpoint when due."""
        scenario = self.scenario
        groups, workers = list(self.policy.groups), list(scenario.workers)
        self.frames += batch.numel()
        metrics = batch_metrics(batch, groups, workers, scenario.env.success_above)
        for group, learner in self.learners.items():
            learned = learner.update(batch, self.frames)
            metrics |= {tags.in_group(group, name, len(groups)): value for name, value in learned.items()}
        if isinstance(collector, MultiAsyncCollector):
            collector.update_policy_weights_()  # the actors' next batches come from the updated policy
        # (Ray collectors push the weights themselves when their iteration resumes: himo.scenarios.ray_collection.)
        metrics[tags.COLLECT_SECONDS] = collect_seconds
        started, start_frames = self._clock
        metrics[tags.FPS] = (self.frames - start_frames) / max((datetime.now() - started).total_seconds(), 1e-9)
        self._log(metrics, groups)
        for tag, values in option_histograms(batch, groups, len(workers)).items():
            self.writer.add_histogram(tag, values, self.frames)
        self._resume_point = capture_resume_point(self._local(collector), self.env)
        every = scenario.log.checkpoint_every
        if self.frames // every > (self.frames - batch.numel()) // every or self.frames >= target:
            self.save()
        evaluate_every = scenario.log.eval_every
        if evaluate_every and self.frames // evaluate_every > (self.frames - batch.numel()) // evaluate_every:
            self._evaluate()
        media_every = scenario.log.media_every
        if media_every and self.frames // media_every > (self.frames - batch.numel()) // media_every:
            write_episode(self.writer, record_episode(scenario, self.policy), self.frames)
        bar.update(batch.numel())
        recent = f"{self.returns[-1][1]:.3f}" if self.returns else "n/a"
        bar.set_postfix(fps=f"{metrics[tags.FPS]:.0f}", ret=recent)
        if self.observer is not None:
            self.observer(self.frames, metrics)

    def _evaluate(self) -> None:
        """The greedy and the sampling policy as they are now, on fresh episodes, logged under ``eval/``."""
        from himo.scenarios.evaluate import evaluate_live  # it reads run folders through this module

        for sampled in (False, True):
            result = evaluate_live(self.scenario, self.policy, self.scenario.log.eval_episodes, sampled)
            self.writer.add_scalar(tags.evaluation(tags.EVAL_RETURN, sampled), result.team_return, self.frames)
            self.writer.add_scalar(tags.evaluation(tags.EVAL_LENGTH, sampled), result.episode_length, self.frames)
            if result.success_rate is not None:
                self.writer.add_scalar(tags.evaluation(tags.EVAL_SUCCESS_RATE, sampled), result.success_rate, self.frames)

    def _interruption(self, saved: bool) -> RunInterrupted:
        """What to tell the user when Ctrl-C stopped the run (``saved``: at the current frames)."""
        if saved:
            head = f"interrupted at {self.frames} frames; checkpoint saved: {self.checkpoint_path}"
        elif self._saved_frames is not None:
            head = (
                f"aborted at {self.frames} frames without saving; "
                f"the last checkpoint ({self._saved_frames} frames) is {self.checkpoint_path}"
            )
        else:
            return RunInterrupted(f"aborted at {self.frames} frames; no checkpoint was written")
        return RunInterrupted(f"{head}\nresume with: himo resume {self.folder}")

    def _log(self, metrics: dict[str, float], groups: list[str]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, self.frames)
            if tags.TIME in name and name != tags.FPS:
                self._seconds[name] = self._seconds.get(name, 0.0) + value
        team = [metrics.get(tags.in_group(group, tags.EPISODE_RETURN, len(groups))) for group in groups]
        if all(value is not None for value in team):
            self.returns.append((self.frames, sum(team) / len(team)))
        ended = int(metrics[tags.EPISODE_COUNT])
        if ended:
            rate = metrics.get(tags.EPISODE_SUCCESS_RATE)
            self.episodes.append((self.frames, ended, None if rate is None else round(rate * ended)))


def train(
    scenario: Scenario, folder: Path | None = None, progress: bool = True, observer: Observer | None = None
) -> TrainResult:
    """Train ``scenario`` in a new run folder (or ``folder``); writes the resolved scenario there first.
    ``observer`` sees each batch's metrics (see :data:`Observer`)."""
    folder = folder or new_run_folder(scenario)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SCENARIO_FILE).write_text(to_yaml(scenario))
    trainer = Trainer(scenario, folder, observer=observer)
    trainer.writer.add_text(tags.SCENARIO, f"```yaml\n{to_yaml(scenario)}```", 0)
    write_hparams(trainer.writer, scenario, list(trainer.policy.groups), trainer.reports_success)
    write_layout(trainer.writer, list(trainer.policy.groups))
    return trainer.run(progress)


def resume(folder: Path, progress: bool = True) -> TrainResult:
    """Continue the run in ``folder`` from its newest readable checkpoint (see the module docstring for what it
    restores); a newer one that cannot be read is skipped with a warning on stderr."""
    scenario = load(folder / SCENARIO_FILE)
    resumed = read_newest(folder / CHECKPOINT_FOLDER)
    for line in resumed.warnings():
        print(line, file=sys.stderr)
    if resumed.skipped:
        print(
            "warning: once the resumed run saves a checkpoint, the skipped files are renamed *.unreadable "
            "(kept for inspection, no longer tried)",
            file=sys.stderr,
        )
    return Trainer(scenario, folder, resumed).run(progress)
