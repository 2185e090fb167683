"""Modality ablation as a command (``himo ablate``): does the learned agent need every modality, and its hierarchy?

For one scenario it trains, for each seed:

- ``hierarchical``: the scenario as it is;
- ``flat``: one worker reading every modality and shared state, with no manager to choose and no goals,
  rewarded with every component the specialists use (each at its largest weight), or with the mix given
  (``flat_reward``): a shaping term a specialist can use safely under a manager that judges it by the team
  reward may pay one flat worker to do something else (on the built-in world ``explore`` pays for wandering:
  measured, the flat worker's episodes then run to the step limit while its team return falls to 0.01);
- ``no_<modality>``: the scenario without that modality: the workers that read it are dropped and
  the manager (and its goals) no longer read it; a view conditioned on it (``condition``) stays, unconditioned.

Each run then plays its greedy policy on fresh episodes (``himo.scenarios.evaluate``). The output folder
gets ``ablation.json`` (``{"scenario", "frames", "seeds", "variants": {name: {"greedy_return": [per seed],
"success_rate": [per seed], "fps": [per seed]}}}``), ``ablation.md`` (a table of medians and per-seed
figures) and ``ablation.png`` (the training curves), and ``runs/`` with every run's folder.
Runs go one after another, or in ``jobs`` processes at once.

An ablation may take longer than one sitting: each run's result is saved as it ends
(``runs/<variant>/seed-<seed>.json``, with the resolved scenario it trained), and a later ``himo ablate`` into
the same folder reads a finished run instead of training it again when its resolved scenario (but for
``log.dir``: a folder may be moved) and episodes are the same. ``variants`` trains a subset (e.g. the flat baseline first); the last call, with every variant, then
writes the whole table.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.schema import Scenario

HIERARCHICAL = "hierarchical"
FLAT = "flat"


def flat_reward_mix(base: Scenario, reward: Mapping[str, float] | None = None) -> dict[str, float]:
    """The flat worker's reward mix: ``reward`` where given, else every shaping signal the specialists get (the
    largest weight of each component), so the comparison is about the hierarchy, not about the rewards."""
    if reward is not None:
        return dict(reward)
    mix: dict[str, float] = {}
    for worker in base.workers.values():
        for component, weight in worker.reward.items():
            mix[component] = max(weight, mix.get(component, weight))
    return mix


def flat_overrides(base: Scenario, reward: Mapping[str, float] | None = None) -> list[str]:
    """``--set`` overrides making ``base`` flat: one worker reading every modality and shared state, no goals,
    rewarded with :func:`flat_reward_mix`, with the memory the workers have (a fair comparison: the same recurrent
    core, when every worker has the same one)."""
    shared = sorted({key for worker in base.workers.values() for key in worker.shared})
    worker = {"modalities": list(base.modalities), "shared": shared, "reward": flat_reward_mix(base, reward)}
    memories = {json.dumps(worker.memory.model_dump(mode="json")) if worker.memory else "null" for worker in base.workers.values()}
    if len(memories) > 1:
        raise ScenarioError.single(
            base.name,
            "the flat variant gets the workers' memory, and they differ: give every worker the same memory (or none)",
        )
    memory = json.loads(memories.pop())
    worker |= {"memory": memory} if memory is not None else {}
    return [f"workers={{flat: {json.dumps(worker)}}}", "manager.goal=null", "manager.memory=null"]


def without_modality(base: Scenario, removed: str) -> list[str]:
    """``--set`` overrides removing modality ``removed``: its workers are dropped and the manager no longer reads it;
    a modality conditioned on it (``condition``) is kept, unconditioned, so nothing of ``removed`` reaches a worker."""
    kept_modalities = {}
    for name, config in base.modalities.items():
        if name != removed:
            kept_modalities[name] = config.model_dump(mode="json")
            if config.conditioned_on == removed:
                kept_modalities[name]["condition"] = None
    kept_workers = {
        name: worker.model_dump(mode="json", exclude_none=True)
        for name, worker in base.workers.items()
        if removed not in base.worker_modalities(name)
    }
    if not kept_workers:
        raise ScenarioError.single(base.name, f"every worker reads modality {removed!r}: nothing is left without it")
    return [f"modalities={json.dumps(kept_modalities)}", f"workers={json.dumps(kept_workers)}"]


def ablation_variants(base: Scenario, flat_reward: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """The ``--set`` overrides of every variant (see the module docstring), by name."""
    variants = {HIERARCHICAL: [], FLAT: flat_overrides(base, flat_reward)}
    for modality in base.modalities:
        variants[f"no_{modality}"] = without_modality(base, modality)
    return variants


@dataclass(frozen=True)
class RunSpec:
    """One training run of the ablation, as plain data (it may run in another process)."""

    scenario: str
    variant: str
    seed: int
    overrides: tuple[str, ...]
    episodes: int
    folder: str

    def load(self) -> Scenario:
        """The scenario this run trains."""
        return load(self.scenario, [*self.overrides, f"train.seed={self.seed}", f"log.dir={self.folder}"])

    @property
    def result_file(self) -> Path:
        """Where the run's result is saved when it ends."""
        return Path(self.folder) / f"seed-{self.seed}.json"

    def settings(self) -> dict[str, Any]:
        """What a saved result must have been trained and evaluated with to stand for this run."""
        return {"scenario": self.load().model_dump(mode="json"), "episodes": self.episodes}


def comparable(settings: dict[str, Any]) -> dict[str, Any] | None:
    """``settings`` as they bear on the run, or None if its scenario no longer validates.

    The scenario is read by the current schema, so a field added since the run was saved counts with its default
    (every new field's default keeps the earlier behaviour). Left out: where the run was written (``log.dir``: a
    result moved with its folder still counts) and the ``tune`` section (``himo tune`` reads it; a run does not).
    """
    try:
        scenario = Scenario.model_validate(settings.get("scenario", {})).model_dump(mode="json")
    except ValidationError:
        return None
    scenario["log"] = {key: value for key, value in scenario["log"].items() if key != "dir"}
    scenario.pop("tune")
    return {**settings, "scenario": scenario}


def run_variant(spec: RunSpec) -> dict[str, Any]:
    """Train one variant with one seed, then evaluate its greedy policy; its figures and training curve (also saved
    to ``spec.result_file`` with the run's settings)."""
    from himo.scenarios.evaluate import evaluate
    from himo.scenarios.run import train

    run = train(spec.load(), progress=False)
    evaluation = evaluate(run.folder, spec.episodes)
    team = statistics.mean(group.team_return for group in evaluation.groups.values())
    result = {
        "variant": spec.variant,
        "seed": spec.seed,
        "greedy_return": team,
        "success_rate": evaluation.success_rate,
        "fps": run.fps,
        "curve": run.returns,
        "folder": str(run.folder),
    }
    # Written aside, then renamed: an interrupted write never leaves a result that reads as finished.
    partial = spec.result_file.with_suffix(".json.partial")
    partial.write_text(json.dumps({"result": result, "settings": spec.settings()}) + "\n")
    partial.replace(spec.result_file)
    return result


def finished_result(spec: RunSpec) -> dict[str, Any] | None:
    """The saved result of ``spec`` if one exists and was trained with the same resolved scenario and episodes."""
    try:
        saved = json.loads(spec.result_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
        return None
    earlier = comparable(saved["settings"])
    if earlier is None or earlier != comparable(spec.settings()):
        return None
    return {**saved["result"], "reused": True}


def ablate(
    scenario: str,
    *,
    frames: int,
    seeds: Sequence[int],
    episodes: int,
    overrides: Sequence[str] = (),
    jobs: int = 1,
    flat_reward: Mapping[str, float] | None = None,
    variants: Sequence[str] | None = None,
    output: Path,
    report: Callable[[dict[str, Any]], None] = lambda result: None,
    finished_only: bool = False,
) -> dict[str, Any]:
    """Train and evaluate the variants of ``scenario`` (every one, or those named) with every seed; write the
    results into ``output``. A run whose result ``output`` already holds, from the same settings, is read instead.
    With ``finished_only`` nothing trains: the results are those ``output`` holds, and the runs it lacks are listed
    under ``"missing"`` (their figures are ``None``).

    Returns the content of ``ablation.json``. ``report`` is called with each run's result as it ends (a result read
    from an earlier call has ``"reused": True``).
    """
    base = load(scenario, [*overrides, f"train.frames={frames}"])
    every = ablation_variants(base, flat_reward)
    unknown = sorted(set(variants or ()) - every.keys())
    if unknown:
        raise ScenarioError.single(base.name, f"unknown ablation variant(s) {unknown}; expected some of {list(every)}")
    chosen = {name: overrides_ for name, overrides_ in every.items() if variants is None or name in variants}
    runs = output / "runs"
    specs = [
        RunSpec(scenario, name, seed, (*overrides, f"train.frames={frames}", *variant), episodes, str(runs / name))
        for name, variant in chosen.items()
        for seed in seeds
    ]
    for spec in specs:  # every variant must load before hours are spent on the first
        spec.load()
    results, pending = [], []
    for spec in specs:
        earlier = finished_result(spec)
        if earlier is None:
            pending.append(spec)
        else:
            results.append(earlier)
            report(earlier)
    missing = pending if finished_only else []
    pending = [] if finished_only else pending
    for spec in pending:
        Path(spec.folder).mkdir(parents=True, exist_ok=True)
    if jobs <= 1:
        for spec in pending:
            results.append(run_variant(spec))
            report(results[-1])
    else:
        # Fresh interpreters: each run seeds and threads itself, as a run of its own would.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            for result in pool.map(run_variant, pending):
                results.append(result)
                report(result)
    order = {(spec.variant, spec.seed): index for index, spec in enumerate(specs)}
    results.sort(key=lambda result: order[(result["variant"], result["seed"])])
    found = {(result["variant"], result["seed"]): result for result in results}
    summary = {
        "scenario": base.name,
        "frames": frames,
        "seeds": list(seeds),
        "episodes": episodes,
        "variants": {
            name: {
                field: [found[(name, seed)][field] if (name, seed) in found else None for seed in seeds]
                for field in ("greedy_return", "success_rate", "fps")
            }
            for name in chosen
        },
        "flat_reward": flat_reward_mix(base, flat_reward),
    }
    if missing:
        summary["missing"] = [{"variant": spec.variant, "seed": spec.seed} for spec in missing]
    output.mkdir(parents=True, exist_ok=True)
    (output / "ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output / "ablation.md").write_text(markdown_table(summary))
    save_curves(results, output / "ablation.png", f"{base.name}: episode return while training")
    return summary


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _figure(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The ablation's results as a Markdown table: medians over the seeds, then each seed's figure."""
    lines = [
        f"`himo ablate {summary['scenario']}`: {summary['frames']:,} frames per run, seeds "
        f"{', '.join(map(str, summary['seeds']))}, greedy policy on {summary['episodes']} fresh episodes.",
        "",
        "| variant | median greedy return | median success | greedy return per seed | success per seed |",
        "|---|---|---|---|---|",
    ]
    if summary.get("missing"):
        runs = ", ".join(f"{run['variant']} seed {run['seed']}" for run in summary["missing"])
        lines[1:1] = ["", f"Not finished yet (shown as -; medians over the finished seeds): {runs}."]
    for name, variant in summary["variants"].items():
        returns, successes = variant["greedy_return"], variant["success_rate"]
        lines.append(
            f"| {name} | {_figure(_median(returns))} | {_figure(_median(successes), percent=True)} | "
            f"{' / '.join(_figure(value) for value in returns)} | "
            f"{' / '.join(_figure(value, percent=True) for value in successes)} |"
        )
    return "\n".join(lines) + "\n"


def save_curves(results: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Training curves (episode return against env frames), one colour per variant, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    colours: dict[str, str] = {}
    for result in results:
        name = result["variant"]
        first = name not in colours
        colours.setdefault(name, f"C{len(colours)}")
        frames = [point[0] for point in result["curve"]]
        returns = [point[1] for point in result["curve"]]
        axes.plot(frames, returns, color=colours[name], alpha=0.8, label=name if first else None)
    axes.set_xlabel("env frames")
    axes.set_ylabel("episode return (team)")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
