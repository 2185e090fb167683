"""A single worker (a flat agent): no manager network is built, and that worker acts at every step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchrl.collectors import Collector
from torchrl.data import Categorical

from himo.envs import keys
from himo.hierarchy.actions import action_space
from himo.hierarchy.selectors import OptionRules, OptionSelector
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load
from himo.scenarios.run import train

GROUP = "agent"


def collect(overrides: list[str], frames: int = 64):
    seed_everything(0)
    scenario = load("cartpole", ["env.num_envs=4", *overrides])
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    return batch, policy.groups[GROUP]


def test_a_single_worker_has_no_manager_network_and_acts_at_every_step() -> None:
    batch, group = collect([])
    assert group.manager is None
    assert not [name for name, _ in group.named_parameters() if "manager" in name]
    heads_and_encoders = [*group.encoders.parameters(), *group.shared_encoders.parameters(), *group.workers.parameters()]
    assert sum(p.numel() for p in group.parameters()) == sum(p.numel() for p in heads_and_encoders)
    assert (batch.get((keys.NEXT, *keys.manager(GROUP, keys.OPTION))) == 0).all()
    assert (batch.get(keys.manager(GROUP, keys.LOG_PROB)) == 0).all()
    # The acting policy is the worker's own: the behaviour log-probability is the worker's.
    worker = next(iter(group.workers))
    assert torch.equal(batch.get((GROUP, keys.LOG_PROB)), batch.get(keys.worker(GROUP, worker, keys.LOG_PROB)))
    assert batch.get(keys.manager(GROUP, keys.LOGITS), None) is None


def test_the_interval_still_sets_the_decisions_goals_are_refreshed_at() -> None:
    batch, _ = collect(["manager.termination={kind: interval, every: 3}"])
    age = batch.get((keys.NEXT, *keys.manager(GROUP, keys.AGE)))
    assert age.max() == 3 and (age >= 1).all()


def test_learned_termination_with_a_single_worker_decides_at_every_step(tmp_path: Path) -> None:
    batch, group = collect(["manager.termination={kind: learned}"])
    assert not group.rules.learned
    assert batch.get(keys.manager(GROUP, keys.DECISION)).all()
    scenario = load("cartpole", ["manager.termination={kind: learned}", "train.frames=128", "train.frames_per_batch=64",
                                 "env.num_envs=2", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert result.frames == 128
    # A flat agent's time: collection and the workers' learning, no manager's; together at most the whole run.
    assert set(result.seconds) == {"run", "collect", "learn/workers"}
    assert 0 < result.seconds["collect"] + result.seconds["learn/workers"] <= result.seconds["run"]


def test_a_selector_of_one_worker_refuses_learned_termination() -> None:
    actions = action_space(GROUP, Categorical(2))
    with pytest.raises(ValueError, match="single worker"):
        OptionSelector(GROUP, ["only"], OptionRules(termination="learned"), actions, torch.ones(1, 1, dtype=torch.bool))
