"""``himo tune``: hyper-parameter search over a scenario's ``tune:`` space, with Optuna.

Each trial samples one value per searched field (``himo.scenarios.tune_space``), trains the scenario with
them as ``--set`` overrides in its own run folder ``<output>/trial-<number>`` (TensorBoard events, checkpoints,
``scenario.yaml``: ``himo eval`` reads it as any run), and reports the objective's mean over each ``report_every``
frames to the pruner, which may stop it early. Its value is the objective's mean over its last ``report_every``
frames. Every trial uses the scenario's ``train.seed``, so trials differ by their parameters only.

Optuna's TPE sampler proposes the values; the study lives in ``storage`` (by default an SQLite file in the
output folder), so a later call with the same output (or storage) and study name adds trials to it. A trial that
crashes or diverges is marked failed, with its error, and the study goes on. Trials run one after another, or in
``jobs`` processes sharing the storage, or as ``jobs`` Ray tasks (on a cluster, the storage must be one every
machine reaches: a database server's URL, or an SQLite file on a shared disk). At the end the output folder holds ``best.yaml`` (the scenario with the
best trial's values: it validates and trains), ``trials.md`` (every trial of the study) and ``importance.png``
(each parameter's importance by Optuna's default evaluator, once two trials have finished with different values).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import optuna

from himo.agents import tags
from himo.scenarios.errors import RunError, ScenarioError
from himo.scenarios.loader import load, to_yaml
from himo.scenarios.schema import Scenario
from himo.scenarios.tune_space import HalvingPruner, MedianPruner, TuneConfig

OVERRIDES = "overrides"
"""User attribute of a trial: its sampled ``--set`` overrides, from which ``best.yaml`` is written."""
ERROR = "error"
"""User attribute of a failed trial: why it failed."""
OBJECTIVE_MISSING = "objective_missing"
"""User attribute of a trial whose run never logged the objective: the study stops, as every trial would fail."""
SEED_STRIDE = 7919
"""A call's sampler seed is ``train.seed + SEED_STRIDE * trials already in the study`` (plus the job's index)."""


def _quiet_optuna() -> None:
    # Each trial prints its own line, with the error of a failed one (see `run_trials`); Optuna's per-trial log
    # would repeat it, with the traceback of every failed trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)


class ObjectiveNotLogged(RunError):
    """A trial's run never logged ``tune.objective`` (a misspelt tag, or one this scenario does not log)."""


def default_storage(output: Path) -> str:
    """The study's storage when none is given: an SQLite file in the output folder."""
    return f"sqlite:///{(output / 'study.db').absolute()}"


def _storage(url: str) -> optuna.storages.BaseStorage | str:
    if url.startswith("sqlite"):
        # Trials in several processes write to one file: wait for its lock rather than fail at once.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    """Optuna's pruner for the ``tune.pruner`` section (its steps are env frames)."""
    pruner = config.pruner
    if isinstance(pruner, MedianPruner):
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_frames)
    if isinstance(pruner, HalvingPruner):
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruner.min_frames or config.report_every, reduction_factor=pruner.reduction_factor
        )
    return optuna.pruners.NopPruner()


def searched_scenario(reference: str, overrides: Sequence[str]) -> Scenario:
    """The scenario to tune, checked: it has a ``tune:`` section, and every searched field takes each end of its
    range (every choice) in this scenario, so a typo in a path fails here, not in every trial."""
    scenario = load(reference, overrides)
    if scenario.tune is None:
        raise ScenarioError.single(
            str(reference), "no 'tune' section: add one naming the fields to search (see docs/tutorials/tuning.md)", path=("tune",)
        )
    for path, parameter in scenario.tune.space.items():
        for value in parameter.ends():
            try:
                load(reference, [*overrides, f"{path}={json.dumps(value)}"])
            except ScenarioError as error:
                problems = "; ".join(
                    f"{'.'.join(map(str, problem.path))}: {problem.message}" for problem in error.problems
                )
                raise ScenarioError.single(
                    str(reference), f"the value {value!r} does not fit the scenario: {problems}", path=("tune", "space", path)
                ) from None
    return scenario


class ObjectiveTracker:
    """Follows the objective through a run's batches; reports it to the trial every ``report_every`` frames and
    raises ``optuna.TrialPruned`` when the pruner says so."""

    def __init__(self, trial: optuna.Trial, config: TuneConfig) -> None:
        self.trial = trial
        self.config = config
        self.values: list[tuple[int, float]] = []
        self.logged: set[str] = set()
        self.episodes = 0
        self._reported_at = 0

    def __call__(self, frames: int, metrics: Mapping[str, float]) -> None:
        """The run's observer (``himo.scenarios.run.Observer``)."""
        self.logged |= metrics.keys()
        self.episodes += int(metrics.get(tags.EPISODE_COUNT, 0))
        value = metrics.get(self.config.objective)
        if value is not None and math.isfinite(value):
            self.values.append((frames, value))
        if frames - self._reported_at < self.config.report_every:
            return
        if not self.values and self.episodes:  # episodes ended, and the objective never came with them
            raise self.not_logged(frames)
        window = [value for at, value in self.values if at > self._reported_at]
        self._reported_at = frames
        if window:
            # Reported at a multiple of report_every: the pruners compare trials at equal steps, whatever their
            # batch size.
            self.trial.report(sum(window) / len(window), frames // self.config.report_every * self.config.report_every)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at {frames} frames")

    def not_logged(self, frames: int) -> ObjectiveNotLogged:
        """The error of an objective the run has not logged in ``frames`` frames."""
        return ObjectiveNotLogged(
            f"tune.objective {self.config.objective!r} was never logged in {frames} frames; the run logged: "
            f"{', '.join(sorted(self.logged))}"
        )

    def final_value(self, frames: int) -> float:
        """The objective's mean over the run's last ``report_every`` frames (its last value if none fell there)."""
        if not self.values:
            raise self.not_logged(frames)
        window = [value for at, value in self.values if at > frames - self.config.report_every]
        return sum(window) / len(window) if window else self.values[-1][1]


@dataclass(frozen=True)
class TrialJob:
    """What one process of a study runs: ``trials`` trials of the study, sampling with ``seed``."""

    reference: str
    overrides: tuple[str, ...]
    storage: str
    study_name: str
    output: str
    trials: int
    seed: int


def run_trials(job: TrialJob) -> None:
    """Run ``job.trials`` trials of the study (in this process); failed trials are recorded and the next one runs."""
    from himo.scenarios.run import train

    _quiet_optuna()
    base = load(job.reference, job.overrides)
    config = base.tune
    output = Path(job.output)

    def objective(trial: optuna.Trial) -> float:
        try:
            sampled = config.sample_overrides(trial)
            trial.set_user_attr(OVERRIDES, sampled)
            folder = output / f"trial-{trial.number:04d}"
            if folder.exists():
                raise RunError(f"{folder} exists from another study (a deleted storage?): choose another --out")
            scenario = load(job.reference, [*job.overrides, *sampled, f"log.dir={json.dumps(str(output))}"])
            tracker = ObjectiveTracker(trial, config)
            result = train(scenario, folder, progress=False, observer=tracker)
            return tracker.final_value(result.frames)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # the study goes on; the summary says why this trial failed
            message = f"{type(error).__name__}: {error}".strip()
            if "dynamic value space" in message:  # Optuna: this study searched other values for a field
                message += " (the study's earlier trials searched this field differently: use another --study-name)"
            trial.set_user_attr(ERROR, message)
            if isinstance(error, ObjectiveNotLogged):
                trial.set_user_attr(OBJECTIVE_MISSING, True)
            raise

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        print(trial_line(trial), flush=True)
        if trial.user_attrs.get(OBJECTIVE_MISSING):
            study.stop()

    study = optuna.load_study(
        study_name=job.study_name,
        storage=_storage(job.storage),
        sampler=optuna.samplers.TPESampler(seed=job.seed, constant_liar=True),
        pruner=make_pruner(config),
    )
    study.optimize(objective, n_trials=job.trials, catch=(Exception,), callbacks=[after_trial])


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """One line saying how a trial ended."""
    params = ", ".join(f"{name}={_short(value)}" for name, value in trial.params.items())
    state = trial.state.name.lower()
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return f"trial {trial.number}: {trial.value:+.4f} ({params})"
    if trial.state == optuna.trial.TrialState.PRUNED:
        step = trial.last_step
        return f"trial {trial.number}: pruned at {step} frames ({params})"
    return f"trial {trial.number}: {state}: {trial.user_attrs.get(ERROR, '')} ({params})"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class TuneSummary:
    """What a study holds after a call of :func:`tune`."""

    study_name: str
    storage: str
    trials: list[optuna.trial.FrozenTrial]
    best: optuna.trial.FrozenTrial | None
    importances: dict[str, float] | None
    written: list[Path] = field(default_factory=list)

    def table(self) -> str:
        """Every trial of the study as a Markdown table: finished trials best first, then pruned ones (their value: the
        last one reported), then the rest."""
        names = sorted({name for trial in self.trials for name in trial.params})
        lines = [
            f"Study `{self.study_name}`: {len(self.trials)} trials.",
            "",
            "| trial | state | value | " + " | ".join(names) + " |",
            "|---" * (3 + len(names)) + "|",
        ]
        order = {optuna.trial.TrialState.COMPLETE: 0, optuna.trial.TrialState.PRUNED: 1}
        ranked = sorted(self.trials, key=lambda trial: (order.get(trial.state, 2), -(trial.value or 0.0), trial.number))
        for trial in ranked:
            value = "-" if trial.value is None else f"{trial.value:+.4f}"
            cells = [_short(trial.params[name]) if name in trial.params else "-" for name in names]
            lines.append(f"| {trial.number} | {trial.state.name.lower()} | {value} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def tune(
    reference: str,
    *,
    trials: int,
    output: Path,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    backend: str = "local",
) -> TuneSummary:
    """Add ``trials`` trials to the study of ``reference``'s ``tune:`` space (created if new), printing a line as each
    ends; write ``best.yaml``, ``trials.md`` and ``importance.png`` into ``output``. The trials run in ``jobs``
    processes (``backend`` local) or Ray tasks (``backend`` ray, on the Ray runtime ``train.ray_address`` names)."""
    _quiet_optuna()
    base = searched_scenario(reference, overrides)
    # Absolute paths: Ray tasks on other machines of a cluster start in other working directories.
    reference = str(Path(reference).absolute()) if Path(reference).is_file() else str(reference)
    output = output.absolute()
    output.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(output)
    study_name = study_name or base.name
    study = optuna.create_study(
        study_name=study_name, storage=_storage(storage), direction="maximize", load_if_exists=True
    )
    # Fresh sampler seeds for each call and process: the same seed would propose the same first points again.
    earlier = len(study.trials)
    seed = base.train.seed + SEED_STRIDE * earlier
    shares = [trials // jobs + (index < trials % jobs) for index in range(jobs)]
    job_list = [
        TrialJob(str(reference), tuple(overrides), storage, study_name, str(output), share, seed + index)
        for index, share in enumerate(shares)
        if share
    ]
    if backend == "ray":
        from himo.scenarios.ray_collection import connect_ray

        connect_ray(base.train.ray_address, log_to_driver=True)
        import ray

        # No retries: a task killed mid-trial would run its whole share of trials again.
        ray.get([ray.remote(num_cpus=1, max_retries=0)(run_trials).remote(job) for job in job_list])
    elif len(job_list) == 1:
        run_trials(job_list[0])
    else:
        with ProcessPoolExecutor(max_workers=len(job_list), mp_context=get_context("spawn")) as pool:
            list(pool.map(run_trials, job_list))
    study = optuna.load_study(study_name=study_name, storage=_storage(storage))
    every = study.get_trials(deepcopy=False)
    missing = [trial for trial in every[earlier:] if trial.user_attrs.get(OBJECTIVE_MISSING)]
    if missing:
        raise RunError(f"trial {missing[-1].number}: {missing[-1].user_attrs[ERROR]}")
    complete = [trial for trial in every if trial.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda trial: trial.value) if complete else None
    summary = TuneSummary(study_name, storage, every, best, importances(study))
    (output / "trials.md").write_text(summary.table())
    summary.written.append(output / "trials.md")
    if best is not None:
        best_scenario = load(reference, [*overrides, *best.user_attrs[OVERRIDES]])
        (output / "best.yaml").write_text(to_yaml(best_scenario))
        summary.written.append(output / "best.yaml")
    if summary.importances:
        save_importance_plot(summary.importances, output / "importance.png", f"{study_name}: parameter importance")
        summary.written.append(output / "importance.png")
    return summary


def importances(study: optuna.Study) -> dict[str, float] | None:
    """Each searched parameter's importance to the objective (Optuna's default evaluator), or None while too
    few trials have finished to say (fewer than two, or every finished trial with the same value)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or len({trial.value for trial in complete}) < 2:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. no parameter varied among the finished trials
        return None


def save_importance_plot(values: Mapping[str, float], path: Path, title: str) -> None:
    """A horizontal bar per parameter, most important at the top."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = sorted(values, key=values.get)
    figure, axes = pyplot.subplots(figsize=(7, 1.2 + 0.5 * len(names)))
    axes.barh(names, [values[name] for name in names])
    axes.set_xlabel("importance (Optuna's default evaluator)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
