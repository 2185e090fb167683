"""Collection on Ray (``train.backend: ray``): the envs and the acting policy in Ray actors, learning here.

TorchRL's ``RayCollector`` starts ``train.collectors`` actors, each holding a ``Collector`` over its own
``env.num_envs`` envs (seeded apart, as IMPALA's actor processes are) and a copy of the policy. The collector
pushes the learner's weights (:class:`ObjectStoreWeights`) when its iteration resumes after each update.

- Algorithms that learn from batches of the current policy (PPO, A2C, TRPO, SAC) collect synchronously: each
  batch holds ``train.frames_per_batch / train.collectors`` frames from every actor, all collected with the
  weights of the last update, stacked as ``[collectors * num_envs, time]`` like one env batch of the local
  backend.
- IMPALA's actors collect asynchronously: each batch is one actor's ``train.frames_per_batch`` frames, as soon as
  it is ready; that actor then gets the weights of the update its batch fed and goes on, while the others collect
  on with lagged weights (V-trace corrects them), as with the local backend's actor processes.

``train.ray_address: null`` lets Ray choose as ``ray.init()`` does (``RAY_ADDRESS``, a cluster started on this
machine, else a new runtime in this process, without dashboard); ``auto`` or ``host:port`` joins a cluster
started with ``ray start``, whose machines must have himo installed. The run's
checkpoints hold the policy, learners and random generators; the envs' state lives in the actors and is not
saved, so a resumed run starts fresh episodes.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tensordict import TensorDict, TensorDictBase
from torchrl.collectors import Collector, RayWeightUpdater

from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.collection import actor_envs
from himo.scenarios.errors import RunError
from himo.scenarios.schema import Scenario


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


class ObjectStoreWeights(RayWeightUpdater):
    """Sends the learner's weights to the collector's actors through Ray's object store: one ``ray.put`` per update,
    then a call on each actor, which Ray runs before that actor's next batch (an actor's calls keep their order).

    Chosen over TorchRL's default for Ray collectors, a torch.distributed (gloo) group between the learner and the
    actors set up at the first update: on this 2-core machine its 60-second rendezvous timed out again and again
    in the test suite while trainings ran beside it. The object store needs no connection of its own.
    """

    def __init__(self, policy: HierarchicalPolicy) -> None:
        super().__init__(TensorDict.from_module(policy).data, remote_collectors=[])

    def register_collector(self, collector: Any) -> None:
        """Called by the collector once its actors exist: they are the ones to update."""
        super().register_collector(collector)
        self.remote_collectors = collector.remote_collectors
        self._batches_since_weight_update = [0] * len(self.remote_collectors)


def ray_collector(scenario: Scenario, policy: HierarchicalPolicy, frames: int, asynchronous: bool) -> Any:
    """The run's ``RayCollector`` (see the module docstring); endless, as the local collectors are."""
    from torchrl.collectors.distributed import RayCollector

    start_ray(scenario)
    train = scenario.train
    collector = RayCollector(
        actor_envs(scenario, frames, train.collectors),  # seeded as local IMPALA actors are
        policy,
        frames_per_batch=train.frames_per_batch,
        total_frames=sys.maxsize,  # the run stops itself
        collector_class=Collector,
        collector_kwargs={"auto_register_policy_transforms": False, "track_traj_ids": False},
        remote_configs={"num_cpus": 1},
        sync=not asynchronous,
        # After each batch is learned from: every actor gets the new weights before the next synchronous batch; in
        # asynchronous mode only the actor that gave the batch, which then goes on (the others keep collecting).
        update_after_each_batch=True,
        weight_updater=ObjectStoreWeights(policy),
        postproc=None if asynchronous else _collectors_as_envs,
    )
    collector.update_policy_weights_()  # the actors start from the learner's weights
    return collector
