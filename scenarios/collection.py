"""How a run collects: one synchronous TorchRL ``Collector``, or asynchronous actor processes (IMPALA); or, with
``train.backend: ray``, Ray actors (``himo.scenarios.ray_collection``).

On-policy algorithms (PPO, A2C, TRPO) learn from batches collected with the current policy: one
``Collector`` in the training process steps the env with the policy the learner updates. IMPALA's
actors run in ``train.actors`` processes of a ``MultiAsyncCollector``, each with its own copy of the
env (seeded apart) and a copy of the policy that the learner refreshes after each update; a batch
therefore comes from a policy one or more updates old, which V-trace corrects.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torchrl.collectors import BaseCollector, Collector, MultiAsyncCollector
from torchrl.envs import EnvBase

from himo.agents.declaration import Collection
from himo.agents.registry import collections_of
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.schema import Scenario

ACTOR_SEED_STRIDE = 10_000
"""Actor ``i`` seeds its envs with ``train.seed + frames + (i + 1) * ACTOR_SEED_STRIDE``."""


def is_asynchronous(scenario: Scenario) -> bool:
    """Whether the run's actors collect asynchronously on lagged policies (a level learns with IMPALA)."""
    return Collection.LAGGED in collections_of(scenario.algorithm.workers.name, scenario.algorithm.manager.name)


def actor_env(scenario_data: dict[str, Any], seed: int) -> EnvBase:
    """The envs of actor seeded ``seed``, built in the actor's process (a local process or a Ray actor), whose random
    generators it seeds too (the policy samples its actions there) and whose torch threads it sets.

    The scenario travels as plain data (its frozen mappings do not pickle).
    """
    scenario = Scenario.model_validate(scenario_data)
    seed_everything(seed)
    torch.set_num_threads(scenario.train.threads)
    return build_env(scenario, seed=seed)


def actor_envs(scenario: Scenario, frames: int, count: int) -> list[functools.partial]:
    """The env factories of ``count`` actors (local processes or Ray actors): actor ``i`` seeds its envs and its
    sampling with ``train.seed + frames + (i + 1) * ACTOR_SEED_STRIDE``."""
    data = scenario.model_dump(mode="json")
    base_seed = scenario.train.seed + frames
    return [functools.partial(actor_env, data, base_seed + (actor + 1) * ACTOR_SEED_STRIDE) for actor in range(count)]


def make_collector(scenario: Scenario, env: EnvBase, policy: HierarchicalPolicy, frames: int) -> BaseCollector:
    """The run's collector: synchronous over ``env``, or asynchronous actors (see the module docstring).

    Both are endless (the run stops itself), so a resumed run's collector counts on from its frames.
    """
    batch_frames = scenario.train.frames_per_batch
    if scenario.train.backend == "ray":
        from himo.scenarios.ray_collection import ray_collector

        return ray_collector(scenario, policy, frames, asynchronous=is_asynchronous(scenario))
    if not is_asynchronous(scenario):
        # One device for env, policy and storage: otherwise the collector strips the device from the
        # TensorDict it carries and casts it back to the env's device at every step.
        return Collector(
            env,
            policy,
            frames_per_batch=batch_frames,
            total_frames=-1,
            device=env.device,
            auto_register_policy_transforms=False,
            track_traj_ids=False,
        )
    return MultiAsyncCollector(
        actor_envs(scenario, frames, scenario.train.actors),
        policy,
        frames_per_batch=batch_frames,
        total_frames=-1,
        auto_register_policy_transforms=False,
        num_threads=scenario.train.threads,
    )
