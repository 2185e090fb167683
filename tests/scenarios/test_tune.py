"""``himo tune``: the ``tune:`` schema and its errors, sampling, pruning, failed trials, resumed studies, best.yaml."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from himo.scenarios import run
from himo.scenarios.catalog import builtin_scenarios
from himo.scenarios.cli import main
from himo.scenarios.errors import RunError, ScenarioError
from himo.scenarios.loader import load, read_yaml
from himo.scenarios.tune import ERROR, ObjectiveTracker, searched_scenario, tune
from himo.scenarios.tune_space import TuneConfig

SPACE = {
    "algorithm.workers.lr": {"kind": "loguniform", "low": 1e-4, "high": 3e-3},
    "algorithm.workers.minibatch_size": {"kind": "pow2", "low": 64, "high": 512},
    "algorithm.workers.epochs": {"kind": "int", "low": 1, "high": 4},
    "algorithm.workers.gae_lambda": {"kind": "uniform", "low": 0.8, "high": 0.99},
    "workers.vector.hidden": {"kind": "categorical", "choices": [[32], [64, 64]]},
}
# Three reports per trial, and a pruner that stops any trial below the first one's curve.
TINY = ["train.frames=3072", "train.frames_per_batch=512", "tune.report_every=1024",
        "tune.pruner={kind: median, startup_trials: 1}"]


def test_every_distribution_turns_into_an_override_the_scenario_takes() -> None:
    config = TuneConfig.model_validate({"space": SPACE})
    trial = optuna.trial.FixedTrial({
        "algorithm.workers.lr": 1e-3, "algorithm.workers.minibatch_size": 128, "algorithm.workers.epochs": 3,
        "algorithm.workers.gae_lambda": 0.9, "workers.vector.hidden": "[64, 64]",
    })
    overrides = config.sample_overrides(trial)
    assert overrides == [
        "algorithm.workers.lr=0.001", "algorithm.workers.minibatch_size=128", "algorithm.workers.epochs=3",
        "algorithm.workers.gae_lambda=0.9", "workers.vector.hidden=[64, 64]",
    ]
    scenario = load("cartpole", overrides)
    assert scenario.algorithm.workers.lr == 1e-3 and scenario.workers["vector"].hidden == (64, 64)


def test_pow2_offers_every_power_of_two_between_its_ends() -> None:
    config = TuneConfig.model_validate({"space": {"train.frames_per_batch": {"kind": "pow2", "low": 256, "high": 2048}}})
    assert config.space["train.frames_per_batch"].choices() == [256, 512, 1024, 2048]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.gamma": {"kind": "uniform", "low": 0.99, "high": 0.9}}, r"tune\.space\.train\.gamma\.high: high \(0\.9\) must be above low"),
        ({"train.frames_per_batch": {"kind": "pow2", "low": 96, "high": 512}}, r"low: 96 is not a power of two"),
        ({"algorithm.workers.lr": {"kind": "loguniform", "low": 0, "high": 1}}, r"tune\.space\.algorithm\.workers\.lr\.low"),
        ({"train.frames": {"kind": "int", "low": 0, "high": 9, "log": True}}, r"a log-scale int needs low >= 1"),
        ({"train.frames": {"kind": "gaussian"}}, r"unknown kind 'gaussian'"),
        ({"log.dir": {"kind": "categorical", "choices": ["a", "b"]}}, r"'log\.dir' is not a field a trial can set"),
        ({"train.seed": {"kind": "categorical", "choices": []}}, r"tune\.space\.train\.seed\.choices"),
    ],
)
def test_a_wrong_space_is_an_error_naming_the_field(space: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load("cartpole", [f"tune={{space: {space}}}"])


def test_a_searched_field_the_scenario_cannot_take_fails_before_any_trial() -> None:
    with pytest.raises(ScenarioError, match=r"tune\.space\.algorithm\.workers\.lrr: the value 0\.1 does not fit .*did you mean 'lr'"):
        searched_scenario("cartpole", ["tune.space={algorithm.workers.lrr: {kind: uniform, low: 0.1, high: 0.2}}"])
    with pytest.raises(ScenarioError, match=r"the value 0 does not fit the scenario: env\.num_envs"):
        searched_scenario("cartpole", ["tune.space={env.num_envs: {kind: int, low: 0, high: 4}}"])
    with pytest.raises(ScenarioError, match="no 'tune' section"):
        searched_scenario("cartpole", ["tune=null"])


def test_every_shipped_search_space_fits_its_scenario() -> None:
    shipped = [name for name, path in builtin_scenarios().items() if "tune" in read_yaml(path)[0]]
    assert {"cartpole", "beacon"} <= set(shipped)
    for name in shipped:
        searched_scenario(name, [])


def test_the_tracker_reports_window_means_and_prunes_below_the_median() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    config = TuneConfig.model_validate({"report_every": 100, "pruner": {"kind": "median"}, "space": SPACE})
    first = study.ask()
    tracker = ObjectiveTracker(first, config)
    for frames, value in [(50, 4.0), (100, 6.0), (150, 10.0), (200, 12.0)]:
        tracker(frames, {"episode/return": value, "time/fps": 1.0})
    study.tell(first, tracker.final_value(200))
    assert first.number == 0 and study.trials[0].intermediate_values == {100: 5.0, 200: 11.0}
    assert study.trials[0].value == 11.0
    second = ObjectiveTracker(study.ask(), config)
    second(50, {"episode/return": 1.0})
    with pytest.raises(optuna.TrialPruned):
        second(130, {"episode/return": 2.0})  # reported at step 100, where the first trial's value is
    assert study.trials[1].intermediate_values == {100: 1.5}


def test_the_tracker_stops_at_the_first_report_when_episodes_ended_without_the_objective() -> None:
    config = TuneConfig.model_validate({"objective": "episode/retrun", "report_every": 100, "space": SPACE})
    tracker = ObjectiveTracker(optuna.create_study().ask(), config)
    tracker(50, {"episode/return": 1.0, "episode/count": 3})
    with pytest.raises(RunError, match=r"'episode/retrun' was never logged in 100 frames; the run logged: episode/count"):
        tracker(100, {"episode/return": 1.0, "episode/count": 2})


def test_a_study_trains_prunes_and_writes_its_best_scenario(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = [argument for override in TINY for argument in ("--set", override)]
    assert main(["tune", "cartpole", "--trials", "3", "--out", str(tmp_path), *settings]) == 0
    study = optuna.load_study(study_name="cartpole", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = [trial.state for trial in study.trials]
    assert len(states) == 3 and optuna.trial.TrialState.PRUNED in states
    assert optuna.trial.TrialState.COMPLETE in states
    for trial in study.trials:  # each trial is a run folder himo eval can read
        folder = tmp_path / f"trial-{trial.number:04d}"
        assert (folder / "scenario.yaml").is_file() and list(folder.glob("events.out.tfevents.*"))
    best = load(tmp_path / "best.yaml")
    assert best.algorithm.workers.lr == pytest.approx(study.best_trial.params["algorithm.workers.lr"])
    assert best.train.frames == 3072 and best.log.dir == "runs"
    output = capsys.readouterr().out
    assert f"best: trial {study.best_trial.number}" in output and "pruned at" in output
    assert (tmp_path / "trials.md").read_text().count("\n| ") == 4


def test_a_failed_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_train = run.train

    def crash_on_the_second(scenario, folder, **kwargs):
        if folder.name == "trial-0001":
            raise RunError("the loss became nan")
        return real_train(scenario, folder, **kwargs)

    monkeypatch.setattr(run, "train", crash_on_the_second)
    summary = tune("cartpole", trials=3, output=tmp_path, overrides=[*TINY, "tune.pruner={kind: none}"])
    states = [trial.state for trial in summary.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert summary.trials[1].user_attrs[ERROR] == "RunError: the loss became nan"


def test_a_study_resumes_from_its_storage(tmp_path: Path) -> None:
    overrides = [*TINY, "tune.pruner={kind: none}", "train.frames=1024"]
    first = tune("cartpole", trials=1, output=tmp_path, overrides=overrides)
    assert len(first.trials) == 1 and first.importances is None
    second = tune("cartpole", trials=2, output=tmp_path, overrides=overrides, jobs=2)
    assert [trial.number for trial in second.trials] == [0, 1, 2]
    assert len({tuple(trial.params.values()) for trial in second.trials}) == 3  # new points, not the first again
    assert sorted(path.name for path in tmp_path.glob("trial-*")) == ["trial-0000", "trial-0001", "trial-0002"]


def test_an_objective_the_run_never_logs_stops_the_study(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"tune.objective 'episode/retrun' was never logged .*episode/return"):
        tune("cartpole", trials=3, output=tmp_path, overrides=[*TINY, "train.frames=512", "tune.objective=episode/retrun"])
    study = optuna.load_study(study_name="cartpole", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 1
    # With the objective mended, the same study goes on.
    summary = tune("cartpole", trials=1, output=tmp_path, overrides=[*TINY, "train.frames=512"])
    assert len(summary.trials) == 2 and summary.best is not None and (tmp_path / "best.yaml").is_file()


def test_a_trial_folder_left_by_another_study_fails_that_trial(tmp_path: Path) -> None:
    (tmp_path / "trial-0000").mkdir()
    summary = tune("cartpole", trials=1, output=tmp_path, overrides=[*TINY, "train.frames=512"])
    assert summary.trials[0].state == optuna.trial.TrialState.FAIL
    assert "trial-0000 exists from another study" in summary.trials[0].user_attrs[ERROR]
