"""What tuning buys: ``himo tune`` on a built-in scenario, then the default and the tuned scenario trained on fresh
seeds (not used in the search) and evaluated greedily.

    python benchmarks/tune_result.py cartpole --trials 20 --frames 50000 --seeds 100 101 102 --episodes 20 \\
        --out /tmp/tune-cartpole --result benchmarks/results/tune_cartpole.json

The study lives in ``--out`` (a second call adds no trials once it holds ``--trials``; the comparison runs again).
Writes ``--result`` shaped ``{"scenario", "frames", "trials", "search_seed", "best": {"trial", "value", "params"},
"seeds", "episodes", "default": {"greedy_return": [per seed], "training_return": [...]}, "tuned": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import optuna
import torch

from himo.scenarios.evaluate import evaluate
from himo.scenarios.loader import load
from himo.scenarios.run import train
from himo.scenarios.tune import default_storage, tune


def final_training_return(curve: list[tuple[int, float]]) -> float:
    """Mean episode return over the last tenth of the run's batches."""
    window = max(1, len(curve) // 10)
    return statistics.mean(value for _, value in curve[-window:])


def compare(reference: str | Path, overrides: list[str], seeds: list[int], episodes: int, out: Path) -> dict:
    """Train ``reference`` with ``overrides`` on each seed; greedy and training returns per seed."""
    greedy, training = [], []
    for seed in seeds:
        scenario = load(reference, [*overrides, f"train.seed={seed}", f"log.dir={json.dumps(str(out))}"])
        result = train(scenario, progress=False)
        training.append(final_training_return(result.returns))
        evaluation = evaluate(result.folder, episodes)
        greedy.append(statistics.mean(group.team_return for group in evaluation.groups.values()))
    return {"greedy_return": greedy, "training_return": training}


def main() -> None:
    """Tune, compare, write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[])
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [*arguments.set, f"train.frames={arguments.frames}"]
    storage = default_storage(arguments.out)
    arguments.out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=load(arguments.scenario).name, storage=storage, direction="maximize",
                                load_if_exists=True)
    missing = arguments.trials - len(study.trials)
    summary = tune(arguments.scenario, trials=max(missing, 0), output=arguments.out, overrides=overrides,
                   jobs=arguments.jobs) if missing > 0 else None
    study = optuna.load_study(study_name=study.study_name, storage=storage)
    if not study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        raise SystemExit(f"no trial of the study in {arguments.out} has finished: nothing to compare")
    best = study.best_trial
    runs = arguments.out / "comparison"
    result = {
        "scenario": arguments.scenario,
        "frames": arguments.frames,
        "trials": len(study.trials),
        "search_seed": load(arguments.scenario, overrides).train.seed,
        "best": {"trial": best.number, "value": best.value, "params": best.params},
        "seeds": arguments.seeds,
        "episodes": arguments.episodes,
        "default": compare(arguments.scenario, overrides, arguments.seeds, arguments.episodes, runs / "default"),
        "tuned": compare(arguments.out / "best.yaml", [], arguments.seeds, arguments.episodes, runs / "tuned"),
    }
    arguments.result.parent.mkdir(parents=True, exist_ok=True)
    arguments.result.write_text(json.dumps(result, indent=2) + "\n")
    if summary is not None:
        print(summary.table())
    for arm in ("default", "tuned"):
        values = result[arm]["greedy_return"]
        print(f"{arm}: greedy return per seed {[round(value, 1) for value in values]}, median {statistics.median(values):.1f}")


if __name__ == "__main__":
    main()
