"""Every registered encoder is reachable from a scenario file and runs inside the hierarchical policy."""

from __future__ import annotations

import pytest
import torch
from torchrl.collectors import Collector

from himo.envs import keys
from himo.modalities.registry import ENCODERS
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.loader import load

# The built-in world's observation that each kind of encoder reads.
KEY_OF_MODALITY = {"vector": "direction", "image": "view", "text": "mission", "audio": "sound"}
# Encoders of observations the built-in world does not have: (scenario, key, group, agents).
ELSEWHERE = {"grid": ("minigrid-doorkey", "image", "agent", 1)}


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_encoder_named_in_a_scenario_runs_in_a_collector(encoder: str) -> None:
    default = ("beacon", KEY_OF_MODALITY[ENCODERS[encoder].modality], "agents", 2)
    name, key, group, agents = ELSEWHERE.get(encoder, default)
    scenario = load(
        name,
        [
            "env.num_envs=2",
            f"modalities={{probe: {{key: {key}, encoder: {encoder}, embedding_dim: 8}}}}",
            "workers={probe: {}}",
        ],
    )
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    collector = Collector(env, policy, frames_per_batch=8, total_frames=8, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    assert keys.EMBEDDING not in batch.get(group).keys(), "acting keeps no embedding in the batch"
    with torch.no_grad():
        embedding = policy.groups[group].encode(batch).get(keys.embedding(group, "probe"))
    assert embedding.shape == (2, 4, agents, 8)
    assert torch.isfinite(embedding).all()
