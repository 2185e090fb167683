"""Modality-specific parts of a composite action: a worker acts on named parts, the rest take their default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from short_runs import SMALL_BEACON
from tensordict import TensorDictBase
from torchrl.collectors import Collector

from himo.envs import keys
from himo.hierarchy.actions import DiscreteActions
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train

GROUP = "agents"
PARTS = ["env.kwargs.action_parts=true", "workers.audio.parts=[turn]"]
AUDIO = 2  # index of the audio worker in the beacon scenario's manager choices


def collect(overrides: list[str], frames: int = 512) -> tuple[TensorDictBase, DiscreteActions]:
    seed_everything(0)
    scenario = load("beacon", [*SMALL_BEACON, *PARTS, *overrides])
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    # Acting does not keep the logits it drew from; the same parameters give them again from the observations.
    with torch.no_grad():
        policy.groups[GROUP].evaluate(batch)
    return batch, policy.groups[GROUP].actions


def test_the_action_parts_come_from_the_env_spec() -> None:
    batch, parts = collect([], frames=64)
    assert parts.names == ("turn", "move") and parts.sizes == (3, 2)
    action = batch.get((GROUP, keys.ACTION))
    assert set(action.keys()) == {"turn", "move"}


def test_while_a_worker_acts_the_parts_it_does_not_control_take_their_default() -> None:
    batch, parts = collect([])
    acting = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.OPTION))  # the option used at each step
    move = batch.get((GROUP, keys.ACTION, "move"))
    assert (acting == AUDIO).any() and (acting != AUDIO).any()
    assert (move[acting == AUDIO] == 0).all()
    assert (move[acting != AUDIO] == 1).any(), "the workers that control 'move' sample it"
    # The behaviour log-probability counts the sampled parts only: under audio, the turn alone.
    audio_logits = batch.get(keys.worker(GROUP, "audio", keys.LOGITS))
    turn_log_prob = parts.part_log_probs(audio_logits, parts.read(batch))[..., 0]
    behaviour = batch.get((GROUP, keys.LOG_PROB))
    assert torch.allclose(behaviour[acting == AUDIO], turn_log_prob[acting == AUDIO])
    # Each worker's own log-probability covers the parts it controls, whoever acted.
    assert torch.allclose(batch.get(keys.worker(GROUP, "audio", keys.LOG_PROB)), turn_log_prob)
    image_logits = batch.get(keys.worker(GROUP, "image", keys.LOGITS))
    both = parts.part_log_probs(image_logits, parts.read(batch)).sum(-1)
    assert torch.allclose(batch.get(keys.worker(GROUP, "image", keys.LOG_PROB)), both)


def test_in_weighted_mode_each_part_mixes_only_the_workers_that_control_it() -> None:
    batch, parts = collect(["manager.mode=weighted"])
    weights = batch.get((keys.NEXT, GROUP, keys.MANAGER, keys.WEIGHTS))
    action = parts.read(batch)
    logits = torch.stack([batch.get(keys.worker(GROUP, name, keys.LOGITS)) for name in ("image", "text", "audio")], -2)
    expected = torch.zeros(action.shape[:-1])
    for index, (part_logits, controllers) in enumerate(zip(parts.split(logits), ([1, 1, 1], [1, 1, 0]))):
        part_weights = weights * torch.tensor(controllers, dtype=weights.dtype)
        part_weights = part_weights / part_weights.sum(-1, keepdim=True)
        probabilities = (part_weights.unsqueeze(-1) * part_logits.softmax(-1)).sum(-2)
        expected += probabilities.gather(-1, action[..., index : index + 1]).squeeze(-1).log()
    assert torch.allclose(batch.get((GROUP, keys.LOG_PROB)), expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["select", "weighted"])
def test_a_run_with_composite_actions_trains(mode: str, tmp_path: Path) -> None:
    scenario = load("beacon", [*SMALL_BEACON, *PARTS, f"manager.mode={mode}", f"log.dir={tmp_path}"])
    result = train(scenario, progress=False)
    assert result.frames == scenario.train.frames


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (["env.kwargs.action_parts=true", "workers.audio.parts=[jump]"], "workers.audio.parts", "unknown action part 'jump'"),
        (["workers.audio.parts=[turn]"], "workers.audio.parts", "no named parts"),
        (["env.kwargs.action_parts=true", "workers.audio.actions=[left]"], "workers.audio.actions", "choose its parts"),
        (
            ["env.kwargs.action_parts=true", *(f"workers.{name}.parts=[turn]" for name in ("image", "text", "audio"))],
            "workers",
            r"no worker acts on action part\(s\) \['move'\]",
        ),
        (["env.kwargs.action_parts=true", "algorithm.workers={name: sac}"], "algorithm.workers.name", "single categorical"),
    ],
)
def test_bad_action_parts_are_clear_errors(overrides: list[str], field: str, message: str) -> None:
    scenario = load("beacon", [*SMALL_BEACON, *overrides])
    with pytest.raises(ScenarioError, match=message) as error:
        build_policy(scenario, build_env(scenario))
    assert field in str(error.value)
