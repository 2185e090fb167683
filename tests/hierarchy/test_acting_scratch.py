"""Acting keeps out of the collected batch what it computed on the way to the action and learning recomputes."""

from __future__ import annotations

import torch
from one_batch import collect_batch

from himo.envs import keys
from himo.scenarios.loader import load

GROUP = "agents"
MEMORY = "{kind: gru, hidden: 8}"


def test_the_batch_holds_no_embedding_worker_distribution_recurrent_feature_or_manager_score() -> None:
    scenario = load("beacon", ["env.num_envs=2", f"workers.audio.memory={MEMORY}"])
    policy, batch = collect_batch(scenario, frames=16)
    group = policy.groups[GROUP]
    scratch = [(keys.EMBEDDING,), (keys.MANAGER, keys.LOGITS), (keys.WORKERS, "audio", keys.MEMORY)]
    scratch += [(keys.WORKERS, name, keys.LOGITS) for name in group.worker_names]
    assert sorted(group.acting_scratch) == sorted(scratch)
    stored = set(batch.get(GROUP).keys(True))
    assert not stored & set(scratch)
    assert not {(GROUP, *key) for key in scratch} & set(group.out_keys)
    # What acting drew from is there again when the observations are evaluated: each worker's stored log-probability
    # of the action taken is that of the logits learning recomputes (no memory here: the state is not re-run).
    plain = load("beacon", ["env.num_envs=2"])
    policy, batch = collect_batch(plain, frames=16)
    group = policy.groups[GROUP]
    with torch.no_grad():
        evaluated = group.evaluate(batch.clone())
    action = batch.get((GROUP, keys.ACTION))
    for name in group.worker_names:
        logits = evaluated.get(keys.worker(GROUP, name, keys.LOGITS))
        recomputed = logits.log_softmax(-1).gather(-1, action.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(batch.get(keys.worker(GROUP, name, keys.LOG_PROB)), recomputed, atol=1e-6)
