"""Intra-option learning: in select mode every worker's actor also learns from the steps another worker acted,
importance-weighted, and the manager's update reads embeddings encoded once."""

from __future__ import annotations

import pytest
import torch
from one_batch import collect_batch
from tensordict import TensorDict

from himo.envs import keys
from himo.hierarchy.learner import GroupLearner
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load

SMALL = ["env.num_envs=4", "env.kwargs.max_steps=8"]
GROUP = "agents"


def learner_and_batch(overrides: list[str]) -> tuple[GroupLearner, TensorDict]:
    scenario = load("beacon", [*SMALL, *overrides])
    policy, batch = collect_batch(scenario, 256)
    algorithm = scenario.algorithm
    return GroupLearner(policy.groups[GROUP], algorithm.manager, algorithm.workers, scenario.train.gamma, 256), batch


@pytest.mark.parametrize("intra_option", [False, True])
def test_a_worker_learns_from_its_own_steps_and_with_intra_option_from_the_others_importance_weighted(intra_option: bool) -> None:
    learner, batch = learner_and_batch([f"manager.intra_option={str(intra_option).lower()}"])
    data, after = batch.get(GROUP), batch.get((keys.NEXT, GROUP))
    option = after.get((keys.MANAGER, keys.OPTION))
    acting = data.get(keys.LOG_PROB)
    for index, name in enumerate(learner.policy.worker_names):
        active = option == index
        assert active.any() and (~active).any()
        weight = learner._actor_weight(data, name, active.to(acting.dtype))
        assert torch.equal(weight[active], torch.ones_like(weight[active]))
        others = weight[~active]
        if not intra_option:
            assert torch.equal(others, torch.zeros_like(others))
            continue
        ratio = (data.get((keys.WORKERS, name, keys.LOG_PROB)) - acting).exp()[~active]
        assert torch.allclose(others, ratio.clamp(max=1.0))
        assert ((others > 0) & (others < 1)).any(), "no step of another worker was partly this worker's"


def test_intra_option_learning_updates_every_worker_from_one_worker_steps() -> None:
    # Every decision picks the audio worker (the manager is frozen on it): without intra-option learning the
    # other workers' actors have nothing to learn from; with it, they learn from the audio worker's steps.
    changed = {}
    for intra_option in (False, True):
        learner, batch = learner_and_batch([f"manager.intra_option={str(intra_option).lower()}"])
        option = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.OPTION))
        audio = learner.policy.worker_names.index("audio")
        # Relabel the batch as if the audio worker had acted everywhere: its stored log-probabilities become the acting ones.
        option.fill_(audio)
        batch.get((keys.NEXT, GROUP)).set((keys.MANAGER, keys.WEIGHTS), torch.nn.functional.one_hot(option, 3).float())
        data = batch.get(GROUP)
        data.set(keys.LOG_PROB, data.get((keys.WORKERS, "audio", keys.LOG_PROB)).clone())
        image_actor = learner.policy.workers["image"].module.actor
        before = [parameter.clone() for parameter in image_actor.parameters()]
        learner.update(batch, 256)
        changed[intra_option] = any(not torch.equal(old, new) for old, new in zip(before, image_actor.parameters()))
    assert changed == {False: False, True: True}


def test_the_manager_reads_the_same_embeddings_encoded_once() -> None:
    learner, batch = learner_and_batch([])
    policy = learner.policy
    with torch.no_grad():
        fresh = policy.evaluate_manager(batch.select(GROUP).copy())
        encoded = policy.manager(TensorDict({GROUP: policy.manager_inputs(batch.select(GROUP).copy())}, batch_size=batch.shape))
    for key in (keys.manager(GROUP, keys.LOGITS), keys.manager(GROUP, keys.STATE_VALUE)):
        assert torch.equal(fresh.get(key), encoded.get(key))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["manager.mode=weighted"], "already learns from every step"),
        (["algorithm.workers.name=sac"], "already learn from every step"),
        (["env.kwargs.action_parts=true", "workers.audio.parts=[turn]"], "parts of a composite action"),
    ],
)
def test_intra_option_learning_where_it_cannot_apply_is_a_clear_error(overrides: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as error:
        load("beacon", ["manager.intra_option=true", *overrides])
    assert "intra_option" in str(error.value)
