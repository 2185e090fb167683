"""One batch collected from a scenario with a fresh policy: what the hierarchy tests inspect and learn from."""

from __future__ import annotations

from tensordict import TensorDictBase
from torchrl.collectors import Collector

from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.schema import Scenario


def collect_batch(scenario: Scenario, frames: int, evaluation_mode: bool = False) -> tuple[HierarchicalPolicy, TensorDictBase]:
    """The scenario's policy (seed 0; in ``eval()`` mode if asked) and one ``frames``-frame batch collected with it."""
    seed_everything(0)
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    if evaluation_mode:
        policy.eval()
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    return policy, batch
