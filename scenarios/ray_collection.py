"""Collection on Ray (``train.backend: ray``): the envs and the acting policy in Ray actors, learning here.

TorchRL's ``RayCollector`` starts ``train.collectors`` actors, each holding a ``Collector`` over its own
``env.num_envs`` envs (seeded apart, as IMPALA's actor processes are) and a copy of the policy. After every
update the trainer pushes the policy's weights to every actor (``update_policy_weights_``).

- Algorithms that learn from batches of the current policy (PPO, A2C, TRPO, SAC) collect synchronously: each
  batch holds ``train.frames_per_batch / train.collectors`` frames from every actor, all collected with the
  weights of the last update, stacked as ``[collectors * num_envs, time]`` like one env batch of the local
  backend.
- IMPALA's actors collect asynchronously: each batch is one actor's ``train.frames_per_batch`` frames, as soon as
  it is ready, and that actor goes on at once with the weights it has, so batches come from lagged policies
  (V-trace corrects them), as with the local backend's actor processes.

``train.ray_address: null`` starts a Ray runtime on this machine (every core, no dashboard); ``auto`` or
``host:port`` joins a cluster started with ``ray start``, whose machines must have himo installed. The run's
checkpoints hold the policy, learners and random generators; the envs' state lives in the actors and is not
saved, so a resumed run starts fresh episodes.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase

from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env
from himo.scenarios.errors import RunError
from himo.scenarios.schema import Scenario

COLLECTOR_SEED_STRIDE = 10_000
"""Collector ``i`` seeds its envs with ``train.seed + frames + (i + 1) * COLLECTOR_SEED_STRIDE``."""


def _collector_env(scenario_data: dict[str, Any], seed: int, threads: int) -> EnvBase:
    # Runs in a Ray actor: the scenario travels as plain data (its frozen mappings do not pickle).
    torch.set_num_threads(threads)
    return build_env(Scenario.model_validate(scenario_data), seed=seed)


def _collectors_as_envs(batch: TensorDictBase) -> TensorDictBase:
    """A synchronous batch ``[collectors, num_envs, time]`` as ``[collectors * num_envs, time]``."""
    return batch.flatten(0, 1)


def connect_ray(address: str | None, log_to_driver: bool = False) -> None:
    """Start a Ray runtime on this machine (``address`` None) or join the cluster at ``address``, unless this process
    already has one. ``log_to_driver``: the tasks' and actors' output is printed here too (their errors always reach
    this process, raised where their results are read)."""
    try:
        import ray
    except ModuleNotFoundError:
        raise RunError("Ray is in the 'ray' extra: pip install -e '.[ray]'") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=log_to_driver, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise RunError(f"train.ray_address {address!r}: cannot start or join Ray: {error}") from None


def start_ray(scenario: Scenario) -> None:
    """Start (or join) the Ray runtime the scenario names, and check it has a CPU for every collector."""
    train = scenario.train
    connect_ray(train.ray_address)
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < train.collectors:
        raise RunError(
            f"train.collectors is {train.collectors} but the Ray cluster has {cpus:g} CPUs; each collector takes one"
        )


def ray_collector(scenario: Scenario, policy: HierarchicalPolicy, frames: int, asynchronous: bool) -> Any:
    """The run's ``RayCollector`` (see the module docstring); endless, as the local collectors are."""
    from torchrl.collectors.distributed import RayCollector

    start_ray(scenario)
    train = scenario.train
    data = scenario.model_dump(mode="json")
    base_seed = train.seed + frames
    factories = [
        functools.partial(_collector_env, data, base_seed + (index + 1) * COLLECTOR_SEED_STRIDE, train.threads)
        for index in range(train.collectors)
    ]
    if not asynchronous and train.frames_per_batch % train.collectors:
        raise RunError(
            f"train.frames_per_batch ({train.frames_per_batch}) must be a multiple of train.collectors "
            f"({train.collectors}): each collector gives an equal share of every batch"
        )
    collector = RayCollector(
        factories,
        policy,
        frames_per_batch=train.frames_per_batch,
        total_frames=sys.maxsize,  # the run stops itself
        collector_class=Collector,
        collector_kwargs={"auto_register_policy_transforms": False, "track_traj_ids": False},
        remote_configs={"num_cpus": 1},
        sync=not asynchronous,
        postproc=None if asynchronous else _collectors_as_envs,
    )
    collector.update_policy_weights_()  # the actors start from the learner's weights
    return collector
