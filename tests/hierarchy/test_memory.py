"""Memory: recurrent cores carry their state between steps and reset it at episode start, and learning's re-run over
sequences reproduces the acting policy exactly (whole batches, minibatches of sequences, chunks; GRU and LSTM)."""

from __future__ import annotations

import pytest
import torch
from one_batch import collect_batch

from himo.agents.base import LevelMetrics, minibatches
from himo.envs import keys
from himo.hierarchy.state import IS_INIT
from himo.scenarios.build import build_learners
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load

GROUP = "agents"
FRAMES = 128  # 32 steps of 4 envs; episodes of at most 8 steps, so several start inside every env's sequence


def memory(chunk: int | None = None) -> list[str]:
    chunked = f", chunk: {chunk}" if chunk else ""
    return [
        "env.num_envs=4",
        "env.kwargs.max_steps=8",
        f"workers.audio.memory={{kind: gru, hidden: 8{chunked}}}",
        f"workers.image.memory={{kind: lstm, hidden: 8, layers: 2{chunked}}}",  # the text worker has none
        f"manager.memory={{kind: gru, hidden: 8{chunked}}}",
    ]


def test_the_state_carries_between_steps_and_resets_at_episode_start() -> None:
    policy, batch = collect_batch(load("beacon", memory()), FRAMES)
    group = policy.groups[GROUP]
    assert sorted(group.memory_states) == [
        (keys.MANAGER, keys.HIDDEN),
        (keys.WORKERS, "audio", keys.HIDDEN),
        (keys.WORKERS, "image", keys.CELL),
        (keys.WORKERS, "image", keys.HIDDEN),
    ]
    starts = batch.get(IS_INIT).squeeze(-1)
    assert starts[:, 1:].any(), "episodes must start inside the batch"
    later = ~starts[:, 1:]
    for key in group.memory_states:
        held, successor = batch.get((GROUP, *key)), batch.get((keys.NEXT, GROUP, *key))
        assert held.shape[:3] == batch.get(GROUP).shape and held.shape[-1] == 8
        assert (held[starts] == 0).all(), key
        assert torch.equal(held[:, 1:][later], successor[:, :-1][later]), key
        assert held[:, 1:][later].abs().min() > 0, key


def test_what_a_worker_does_depends_on_its_state() -> None:
    policy, batch = collect_batch(load("beacon", memory()), FRAMES, evaluation_mode=True)
    group = policy.groups[GROUP]
    inputs = batch.select(GROUP, IS_INIT).copy()
    inputs.set(IS_INIT, torch.zeros_like(inputs.get(IS_INIT)))
    logits = {}
    for value in (0.0, 0.5):
        inputs.get(GROUP).get((keys.WORKERS, "audio", keys.HIDDEN)).fill_(value)
        with torch.no_grad():
            logits[value] = group.evaluate_workers(inputs.copy()).get(keys.worker(GROUP, "audio", keys.LOGITS))
    assert not torch.allclose(logits[0.0], logits[0.5])


def captured_problems(overrides: list[str]) -> dict:
    """Each level's learning problem for one fresh batch, the levels left unchanged (the update is not run)."""
    scenario = load("beacon", overrides)
    policy, batch = collect_batch(scenario, FRAMES, evaluation_mode=True)  # no dropout: acting and learning agree
    (learner,) = build_learners(scenario, policy).values()
    problems = {}
    for level in (learner.workers, learner.manager):
        def record(problem, frames, level=level):
            problems[problem.level] = problem
            return LevelMetrics(problem.level)

        level.update = record
    learner.update(batch, FRAMES)
    return problems


@pytest.mark.parametrize(
    "overrides",
    [memory(), memory(chunk=4), [*memory(chunk=8), "algorithm.workers={name: impala}", "algorithm.manager={name: impala}"]],
    ids=["whole-sequences", "chunks", "impala"],
)
def test_learning_reruns_the_sequences_to_the_acting_log_probabilities(overrides: list[str]) -> None:
    problems = captured_problems(overrides)
    assert problems.keys() == {"workers", "manager"}
    for problem in problems.values():
        assert problem.runs is not None
        with torch.no_grad():
            whole = problem.evaluate(torch.arange(problem.rows))
            parts = [(indices, problem.evaluate(indices)) for indices in minibatches(problem.rows, 16, 1, problem.runs)]
        for head, output in whole.items():
            acted = problem.targets[head].get("old_log_prob")
            torch.testing.assert_close(output.log_prob, acted, rtol=0, atol=1e-5, msg=f"{problem.level} {head}")
            for indices, part in parts:
                torch.testing.assert_close(part[head].log_prob, acted[indices], rtol=0, atol=1e-5)
                torch.testing.assert_close(part[head].value, output.value[indices], rtol=0, atol=1e-5)


def test_minibatches_of_sequences_hold_whole_sequences_in_order() -> None:
    runs = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    for _ in range(5):
        batches = list(minibatches(len(runs), 4, 1, runs))
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(len(runs)))  # every row, once per epoch
        for indices in batches:
            for run in runs[indices].unique():
                assert torch.equal(indices[runs[indices] == run], (runs == run).nonzero().squeeze(-1)), "split or reordered"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (["workers.audio.memory={}", "algorithm.workers={name: sac}"], "workers.audio.memory", "sac learns from replayed"),
        (["manager.memory={}", "manager.termination={kind: learned}"], "manager.memory", "not built for learned termination"),
        (["workers.audio.memory={chunk: 5}"], "workers.audio.memory.chunk", "divide 128"),
        (["workers.audio.memory={chunk: 8}", "workers.image.memory={}"], "workers", "the same chunk"),
    ],
)
def test_memory_that_cannot_be_learned_is_a_clear_error(overrides: list[str], field: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as error:
        load("beacon", overrides)
    assert field in str(error.value)
