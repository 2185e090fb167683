"""A3C's run: ``train.actors`` actor-learner processes update shared parameters without waiting for each other.

The training process puts the policy's parameters and each level's optimiser state in shared memory
and starts the processes (``spawn``). Each one builds its own env (``env.num_envs`` envs, seeded
apart) and TorchRL ``Collector`` over the shared policy, and after each batch takes its learners'
A3C step (``himo.agents.a3c``) straight on the shared parameters. The frame counter is shared; each
process reports its batch's metrics, which the training process logs, checkpoints and shows, as
the synchronous run does. The running statistics (value and input normalisers) are shared buffers too; each
process folds a batch into them, and evaluates its targets' values, under one lock (an update reads and writes
several of them, and moves them far at first). A checkpoint is a snapshot of parameters that other processes may
be updating at that moment (lock-free updates), and a resumed run starts fresh episodes.
"""

from __future__ import annotations

import queue
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.multiprocessing as multiprocessing

from himo.agents.declaration import Collection
from himo.agents.registry import collections_of
from himo.agents.a3c import attach_optimizer_state, share_optimizer_state
from himo.agents.optim import NonFiniteLossError
from himo.agents import tags
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env, build_learners
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.collection import ACTOR_SEED_STRIDE
from himo.scenarios.errors import RunError
from himo.scenarios.metrics import batch_metrics
from himo.scenarios.schema import Scenario

if TYPE_CHECKING:
    from himo.scenarios.run import Trainer

REPORT_TIMEOUT_SECONDS = 600.0
"""How long the training process waits for any actor-learner's report before it gives up on them."""


def uses_actor_learners(scenario: Scenario) -> bool:
    """Whether a level's algorithm collects and learns in asynchronous actor-learner processes (A3C)."""
    return Collection.ASYNCHRONOUS in collections_of(scenario.algorithm.workers.name, scenario.algorithm.manager.name)


@dataclass
class Shared:
    """What the actor-learner processes share with the training process."""

    frames: Any
    """``multiprocessing.Value``: env frames collected by all processes."""
    stop: Any
    """``multiprocessing.Event``: set when the run must end."""
    reports: Any
    """``multiprocessing.Queue`` of ``(rank, frames, batch frames, metrics)``, ``(rank, None, 0, error)`` on failure."""
    statistics: Any
    """``multiprocessing.Lock`` held while a process folds a batch into the shared running statistics or evaluates the
    values its targets compare (``GroupLearner.share_statistics``)."""


def shared_learner_states(learners: dict[str, GroupLearner]) -> dict[str, dict[str, list]]:
    """Every level's optimiser state, created now in shared memory (the parameters are shared by the caller)."""
    return {
        group: {
            "workers": share_optimizer_state(learner.workers.optimizer),
            "manager": share_optimizer_state(learner.manager.optimizer) if learner.manager else [],
        }
        for group, learner in learners.items()
    }


def _actor_learner(
    rank: int, scenario_data: dict, policy: HierarchicalPolicy, states: dict, shared: Shared, target: int
) -> None:
    """One actor-learner process: collect, update the shared parameters, report; until the target frames."""
    from torchrl.collectors import Collector

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the training process handles Ctrl-C and sets `stop`
    scenario = Scenario.model_validate(scenario_data)
    torch.set_num_threads(scenario.train.threads)
    seed = scenario.train.seed + shared.frames.value + (rank + 1) * ACTOR_SEED_STRIDE
    seed_everything(seed)
    learners = build_learners(scenario, policy)
    for group, learner in learners.items():
        learner.share_statistics(shared.statistics)
        attach_optimizer_state(learner.workers.optimizer, states[group]["workers"])
        if learner.manager is not None:
            attach_optimizer_state(learner.manager.optimizer, states[group]["manager"])
    env = build_env(scenario, seed=seed)
    collector = Collector(
        env,
        policy,
        frames_per_batch=scenario.train.frames_per_batch,
        total_frames=-1,
        auto_register_policy_transforms=False,
        track_traj_ids=False,
    )
    groups, workers = list(policy.groups), list(scenario.workers)
    try:
        for batch in collector:
            if shared.stop.is_set():
                break
            with shared.frames.get_lock():
                shared.frames.value += batch.numel()
                frames = shared.frames.value
            metrics = batch_metrics(batch, groups, workers)
            for group, learner in learners.items():
                learned = learner.update(batch, frames)
                metrics |= {tags.in_group(group, name, len(groups)): value for name, value in learned.items()}
            shared.reports.put((rank, frames, batch.numel(), metrics))
            if frames >= target:
                break
    except (NonFiniteLossError, RuntimeError, ValueError) as error:
        shared.reports.put((rank, None, 0, f"actor-learner {rank}: {error}"))
    finally:
        collector.shutdown()


def run_actor_learners(trainer: Trainer, target: int, on_report: Any) -> None:
    """Start the processes, pass each report to ``on_report(frames, batch_frames, metrics)`` until all have
    stopped; a KeyboardInterrupt stops them (after their current update) and is re-raised."""
    scenario = trainer.scenario
    context = multiprocessing.get_context("spawn")
    trainer.policy.share_memory()
    states = shared_learner_states(trainer.learners)
    shared = Shared(context.Value("q", trainer.frames), context.Event(), context.Queue(), context.Lock())
    data = scenario.model_dump(mode="json")
    processes = [
        context.Process(target=_actor_learner, args=(rank, data, trainer.policy, states, shared, target), daemon=True)
        for rank in range(scenario.train.actors)
    ]
    for process in processes:
        process.start()
    updates = [0] * len(processes)
    try:
        while any(process.is_alive() for process in processes) or not shared.reports.empty():
            try:
                rank, frames, batch_frames, metrics = shared.reports.get(timeout=1.0)
            except queue.Empty:
                continue
            if frames is None:
                raise RunError(metrics)
            updates[rank] += 1
            metrics |= {tags.actor_updates(index): float(count) for index, count in enumerate(updates)}
            on_report(frames, batch_frames, metrics)
    finally:
        shared.stop.set()
        for process in processes:
            process.join(timeout=REPORT_TIMEOUT_SECONDS)
            if process.is_alive():
                process.terminate()
