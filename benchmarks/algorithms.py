"""The actor-critic family as flat himo scenarios (one worker): CartPole-v1 (goal 475) for every algorithm,
Pendulum-v1 (goal -200) for continuous SAC; who reaches the goal, and when.

For every entry and seed: train the entry's scenario with its overrides for its frame budget
(``himo.scenarios.run.train``), each run in a process of its own with one torch thread, ``--jobs`` at a
time; then evaluate the greedy policy on 20 fresh episodes. Per run it reports the first frames at
which the mean return over the last 10 batches' episodes reached the goal, the greedy return, wall
time and frames per second; per entry the medians over seeds and whether the goal (median greedy
return >= goal within the budget) was met. Prints a table, saves the learning curves as a PNG and
ends with one line ``RESULT {json}``.

    python benchmarks/algorithms.py --algorithms ppo a2c trpo impala --seeds 0 1 2 --jobs 12

Adding an entry is one item in ``ALGORITHMS``: its ``--set`` overrides, its frame budget, and its
scenario and goal when they are not CartPole's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks_common import (
    figure_panels,
    print_child_result,
    run_in_child,
    save_figure_file,
    smoothed,
    train_and_evaluate,
)

GOAL = 475.0
"""CartPole-v1's 'solved' return (episodes are cut at 500), the goal of every entry without one of its own."""
WINDOW = 10
"""Batches (that ended an episode) averaged for the learning curve's threshold crossing."""
EVAL_EPISODES = 20

ALGORITHMS: dict[str, dict] = {
    "ppo": {"frames": 102_400, "overrides": ["algorithm.workers={name: ppo, lr: 1.0e-3, lr_schedule: linear, epochs: 10}"]},
    "a2c": {"frames": 200_000, "overrides": ["train.frames_per_batch=40", "algorithm.workers={name: a2c, optimizer: rmsprop, "
                                             "lr: 7.0e-4, lr_schedule: linear, entropy_coef: 0.0, gae_lambda: 0.95}"]},
    "a3c": {"frames": 400_000, "overrides": ["train.frames_per_batch=40", "train.actors=2", "algorithm.workers={name: a3c, "
                                             "optimizer: rmsprop, lr: 7.0e-4, lr_schedule: linear, entropy_coef: 0.0, gae_lambda: 0.95}"]},
    "trpo": {"frames": 102_400, "overrides": ["algorithm.workers={name: trpo}"]},
    "impala": {"frames": 400_000, "overrides": ["train.frames_per_batch=40", "train.actors=2",
                                                "algorithm.workers={name: impala, optimizer: rmsprop, lr: 7.0e-4, "
                                                "lr_schedule: linear, entropy_coef: 0.0, minibatch_size: 40}"]},
    "sac": {"frames": 50_176, "overrides": ["train.frames_per_batch=256", "algorithm.workers={name: sac, gradient_steps: 64}"]},
    "sac-pendulum": {"frames": 30_720, "scenario": "pendulum", "goal": -200.0, "algorithm": "sac",
                     "overrides": ["train.frames_per_batch=256", "train.gamma=0.99",
                                   "algorithm.workers={name: sac, gradient_steps: 256}"]},
}
"""Per algorithm: the ``--set`` overrides of the ``cartpole`` scenario and the frame budget (a whole number of batches).

Measured at commit c1e8aef on the 2-core development machine (``--jobs 2``): greedy return of seeds 0 / 1 / 2
and the frames at which the 10-batch mean reached 475. Goal met: ppo 500 / 500 / 500 (55k, 59k, 51k); a2c
500 / 500 / 500 (43k, 128k, 179k); trpo 500 / 500 / 500 (54k, 80k, not reached). Not met: a3c 282 / 500 / 180
(a2c's settings; lr 3.5e-4 did worse); impala 210 / 144 / 194 (an earlier identical run: 499 / 439 / 334). Both
asynchronous algorithms reach 475 and fall back, and vary from run to run (impala also with lr 5e-4 or 3e-4,
rmsprop, normalised advantages, 4 actors, larger batches or 205k frames). At 62e62c2, with a2c's small batches
and RMSprop over 400k frames (the entries above), both met it: a3c 500 / 500 / 500 (121k, 86k, 111k), impala
500 / 500 / 500 (24k, 119k, 74k). At 2ef1a4e: sac 500 / 500 / 500 (48k, not reached, not reached: its training
policy stays stochastic), sac-pendulum -149.7 / -148.9 / -143.5 (19k each).
"""


def scenario_overrides(entry: str, seed: int, frames: int) -> list[str]:
    """Every override of one run: the entry's, its budget, its seed, one torch thread."""
    return [*ALGORITHMS[entry]["overrides"], f"train.frames={frames}", f"train.seed={seed}", "train.threads=1"]


def scenario_of(entry: str) -> str:
    """The scenario an entry trains (``cartpole`` unless it names another)."""
    return ALGORITHMS[entry].get("scenario", "cartpole")


def goal_of(entry: str) -> float:
    """The return an entry must reach (CartPole's unless it names another)."""
    return ALGORITHMS[entry].get("goal", GOAL)


def first_crossing(curve: list[tuple[int, float]], goal: float = GOAL, window: int = WINDOW) -> int | None:
    """First frames at which the mean of the last ``window`` points of the curve reached ``goal``."""
    for index in range(window - 1, len(curve)):
        if statistics.mean(value for _, value in curve[index - window + 1 : index + 1]) >= goal:
            return curve[index][0]
    return None


def run_one(spec: dict) -> dict:
    """Train and evaluate one (algorithm, seed) in this process; the child side of ``launch``."""
    _, run, wall, evaluation = train_and_evaluate(scenario_of(spec["algorithm"]), spec["overrides"], EVAL_EPISODES)
    greedy = evaluation.groups["agent"].team_return
    solved_at = first_crossing(run.returns, goal_of(spec["algorithm"]))
    return {**spec, "greedy_return": greedy, "solved_at": solved_at, "wall_s": wall,
            "fps": run.frames / wall, "curve": run.returns}


def launch(algorithm: str, seed: int, frames: int) -> dict:
    """Run ``run_one`` in a fresh interpreter (one torch thread; IMPALA's actors are its children)."""
    spec = {"algorithm": algorithm, "seed": seed, "frames": frames,
            "overrides": scenario_overrides(algorithm, seed, frames)}
    return run_in_child(__file__, spec)


def describe(run: dict) -> str:
    """One table row."""
    if "error" in run:
        return f"{run['algorithm']:12s} {run['seed']:>4d}  FAILED: {(run['error'].strip().splitlines() or ['?'])[-1]}"
    solved = f"{run['solved_at']:,}" if run["solved_at"] is not None else "not reached"
    return (f"{run['algorithm']:12s} {run['seed']:>4d} {run['frames']:>9,} {solved:>13s} {run['greedy_return']:>8.1f}"
            f" {run['wall_s']:>8.0f} {run['fps']:>7.0f}")


def summarise(runs: list[dict]) -> dict:
    """Medians over seeds (a failed run or one that never crossed counts as its budget + 1 / return -inf)."""
    done = [run for run in runs if "error" not in run]
    frames = runs[0]["frames"]
    crossings = [run["solved_at"] if run.get("solved_at") is not None else frames + 1 for run in runs]
    greedy = [run.get("greedy_return", float("-inf")) for run in runs]
    median_crossing = statistics.median(crossings)
    median_greedy = statistics.median(greedy)
    goal = goal_of(runs[0]["algorithm"])
    return {"scenario": scenario_of(runs[0]["algorithm"]), "goal": goal, "frames": frames,
            "seeds": [run["seed"] for run in runs], "greedy_returns": greedy,
            "median_greedy_return": median_greedy,
            "median_solved_at": median_crossing if median_crossing <= frames else None,
            "median_wall_s": statistics.median(run["wall_s"] for run in done) if done else None,
            "median_fps": statistics.median(run["fps"] for run in done) if done else None,
            "failed": len(runs) - len(done), "goal_met": median_greedy >= goal and len(done) == len(runs)}


def main() -> None:
    """Run every (algorithm, seed), print the table and the RESULT line, save the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=None, help="override every algorithm's frame budget")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/algorithms_cartpole.png"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    jobs = [(name, seed, arguments.frames or ALGORITHMS[name]["frames"])
            for name in arguments.algorithms for seed in arguments.seeds]
    header = f"{'entry':12s} {'seed':>4s} {'budget':>9s} {'goal at':>13s} {'greedy':>8s} {'wall s':>8s} {'fps':>7s}"
    goals = ", ".join(f"{name} {goal_of(name):.0f}" for name in arguments.algorithms)
    print(f"goals: {goals} (mean of last {WINDOW} batches' episodes; greedy over {EVAL_EPISODES}"
          f" episodes); {len(jobs)} runs, {arguments.jobs} at a time\n{header}", flush=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(arguments.jobs) as pool:
        futures = [pool.submit(launch, *job) for job in jobs]
        for future in futures:
            print(describe(future.result()), flush=True)
    runs = [future.result() for future in futures]
    results = {name: [run for run in runs if run["algorithm"] == name] for name in arguments.algorithms}

    summary = {name: summarise(group) for name, group in results.items()}
    print(f"\nmedians over seeds {arguments.seeds} (total wall {time.perf_counter() - start:.0f} s)")
    print(f"{'entry':12s} {'budget':>9s} {'goal at':>13s} {'greedy':>8s} {'wall s':>8s} {'fps':>7s}  goal")
    for name, line in summary.items():
        solved = f"{line['median_solved_at']:,.0f}" if line["median_solved_at"] is not None else "not reached"
        wall, fps = line["median_wall_s"] or 0.0, line["median_fps"] or 0.0
        print(f"{name:12s} {line['frames']:>9,} {solved:>13s} {line['median_greedy_return']:>8.1f} {wall:>8.0f}"
              f" {fps:>7.0f}  {'met' if line['goal_met'] else 'NOT met'}")
    if arguments.out:
        save_figure(results, arguments.out)
    print("RESULT " + json.dumps({"benchmark": "algorithms", "seeds": arguments.seeds, "algorithms": summary}))


def save_figure(results: dict[str, list[dict]], path: Path) -> None:
    """Learning curves (mean return over the last ``WINDOW`` points against frames), one panel per algorithm."""
    figure, panels = figure_panels(len(results), 4)
    for axes, (name, runs) in zip(panels, results.items()):
        for run in runs:
            curve = run.get("curve") or []
            smooth = smoothed(curve, WINDOW)
            label = f"seed {run['seed']}: greedy {run.get('greedy_return', 0):.0f}"
            axes.plot([frames for frames, _ in curve], smooth, alpha=0.85, label=label)
        axes.axhline(goal_of(name), color="grey", linestyle="--", linewidth=0.8)
        axes.set_title(f"{name} ({runs[0]['frames']:,} frames)")
        axes.set_xlabel("env frames")
        axes.legend(fontsize=7, loc="lower right")
    panels[0].set_ylabel(f"episode return (mean of {WINDOW} batches)")
    save_figure_file(figure, path)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
