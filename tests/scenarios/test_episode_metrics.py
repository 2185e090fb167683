"""Episode counts and success rates: the team return of each ended episode, counted per batch."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from himo.envs import keys
from himo.scenarios.evaluate import evaluate
from himo.scenarios.loader import load
from himo.scenarios.metrics import team_returns
from himo.scenarios.run import train
from short_runs import SMALL_BEACON


def test_team_return_is_the_mean_over_every_group_agent_of_the_episodes_that_ended() -> None:
    done = torch.tensor([[False, True, False], [True, False, True]]).unsqueeze(-1)  # 2 envs x 3 steps
    speaker = torch.arange(6.0).reshape(2, 3, 1, 1)  # one agent
    listener = torch.arange(12.0).reshape(2, 3, 2, 1) * 10  # two agents
    batch = TensorDict(
        {
            keys.NEXT: {
                keys.DONE: done,
                "speaker": {keys.EPISODE_REWARD: speaker},
                "listener": {keys.EPISODE_REWARD: listener},
            }
        },
        batch_size=(2, 3),
    )
    # Ended at (0, 1), (1, 0), (1, 2): speaker 1, 3, 5; listener means (20+30)/2, (60+70)/2, (100+110)/2.
    expected = torch.tensor([(1 + 25) / 2, (3 + 65) / 2, (5 + 105) / 2])
    ends = batch.get(keys.NEXT)[done.squeeze(-1)]
    torch.testing.assert_close(team_returns(ends, ["speaker", "listener"]), expected)


@pytest.mark.parametrize(("threshold", "all_succeed"), [(-1.0e9, True), (1.0e9, False)])
def test_a_run_counts_its_episodes_and_those_above_the_success_threshold(tmp_path, threshold, all_succeed) -> None:
    scenario = load("beacon", [*SMALL_BEACON, f"env.success_above={threshold}", f"log.dir={tmp_path}"])
    run = train(scenario, progress=False)
    assert run.episodes, "an 8-step beacon episode ends within every 256-frame batch"
    # 512 frames of episodes cut at 8 steps (some reach the beacon sooner).
    assert 512 // 8 <= sum(ended for _, ended, _ in run.episodes) <= 512
    assert [frames for frames, _, _ in run.episodes] == [frames for frames, _ in run.returns]
    for _, ended, succeeded in run.episodes:
        assert succeeded == (ended if all_succeed else 0)
    assert evaluate(run.folder, episodes=4).success_rate == (1.0 if all_succeed else 0.0)
    rate = "100.0%" if all_succeed else "0.0%"
    assert f"success rate: {rate} at the start -> {rate} at the end" in run.summary()


def test_without_a_success_threshold_or_signal_successes_are_not_counted(tmp_path) -> None:
    cartpole = ["env.num_envs=4", "train.frames=512", "train.frames_per_batch=256", f"log.dir={tmp_path}"]
    run = train(load("cartpole", cartpole), progress=False)
    assert run.episodes and all(succeeded is None for _, _, succeeded in run.episodes)
    assert evaluate(run.folder, episodes=4).success_rate is None
    assert "success rate" not in run.summary()


def test_the_built_in_world_reports_its_own_success_and_a_threshold_overrides_it(tmp_path) -> None:
    # On beacon a team-return threshold cannot tell success from failure (one early arrival earns up to ~0.49,
    # two late ones as little as 0.1): the world says whether every agent arrived.
    scenario = load("beacon", [*SMALL_BEACON, f"log.dir={tmp_path}"])
    run = train(scenario, progress=False)
    assert run.episodes and all(successes is not None and 0 <= successes <= ended for _, ended, successes in run.episodes)
    assert 0.0 <= evaluate(run.folder, episodes=16).success_rate <= 1.0


def test_options_chosen_and_option_lengths_are_histograms_of_each_batch(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from himo.agents import tags

    every = 3
    overrides = [*SMALL_BEACON, f"manager.termination.every={every}", f"log.dir={tmp_path}"]
    result = train(load("beacon", overrides), progress=False)
    events = EventAccumulator(str(result.folder), size_guidance={"histograms": 0})
    events.Reload()
    assert {tags.OPTIONS_CHOSEN, tags.OPTION_LENGTHS} <= set(events.Tags()["histograms"])
    for batch in events.Histograms(tags.OPTION_LENGTHS):
        # Interval termination: every option a decision ends ran exactly `every` steps.
        assert batch.histogram_value.min == every and batch.histogram_value.max == every
    chosen = events.Histograms(tags.OPTIONS_CHOSEN)
    assert len(chosen) == 2 and all(0 <= batch.histogram_value.min <= batch.histogram_value.max <= 2 for batch in chosen)


def test_evaluation_on_a_schedule_logs_the_greedy_and_the_sampling_policy_and_changes_no_training(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(overrides: list[str], folder) -> dict[str, list[float]]:
        result = train(load("beacon", [*SMALL_BEACON, *overrides, f"log.dir={folder}"]), progress=False)
        events = EventAccumulator(str(result.folder), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [point.value for point in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    evaluated = scalars(["log.eval_every=256", "log.eval_episodes=4"], tmp_path / "evaluated")
    plain = scalars([], tmp_path / "plain")
    for tag in ("eval/return", "eval/length", "eval/success_rate", "eval/sampled/return", "eval/sampled/success_rate"):
        assert len(evaluated[tag]) == 2, tag  # at 256 and 512 frames
    assert all(0.0 <= rate <= 1.0 for rate in evaluated["eval/success_rate"])
    # Evaluating draws from generators of its own: the training itself is the same, batch for batch.
    assert evaluated["loss/workers/objective"] == plain["loss/workers/objective"]
    assert not any(tag.startswith("eval/") for tag in plain)
