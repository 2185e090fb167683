"""MiniGrid and BabyAI against published PPO results: episodes to 99 % success, return reached, success after a budget.

For every task and seed: train the task's built-in scenario for its frame budget
(``himo.scenarios.run.train``, one torch thread, each run in a process of its own, ``--jobs`` at a
time), then evaluate the greedy policy on ``--eval-episodes`` fresh episodes. Training success
and return are measured over windows of at least ``WINDOW_EPISODES`` ended episodes (whole
batches). Per task it reports its measure per seed and the median over seeds against the
published figure, saves the learning curves as a PNG, and ends with one line ``RESULT {json}``.

    python benchmarks/gridworlds.py --tasks gotoredball doorkey --seeds 0 1 2 --jobs 1
    python benchmarks/gridworlds.py --tasks gotolocal --seeds 0 --jobs 1

Measures: ``episodes_to_success`` (training episodes until the window's success rate first reached
99 %), ``frames_to_return`` (frames until the window's mean return first reached the goal) and
``final_success`` (the last window's success rate and the greedy success after the budget).
The training policy samples its actions, so its success rate is a lower bound of the greedy one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks_common import figure_panels, print_child_result, run_children, save_figure_file, train_and_evaluate

WINDOW_EPISODES = 512
"""Fewest ended episodes a training-curve point averages (the most recent whole batches)."""

TASKS: dict[str, dict] = {
    "gotoredball": {
        "scenario": "babyai-gotoredball", "frames": 307_200, "measure": "episodes_to_success", "success": 0.99,
        "published": "PPO: 15.9k-17.4k episodes to 99 % (BabyAI 1.0, ICLR 2019, Table 3); 21k +- 5k (BabyAI 1.1)",
        "goal": 15_900,
    },
    "doorkey": {
        "scenario": "minigrid-doorkey", "frames": 307_200, "measure": "frames_to_return", "return": 0.95,
        "published": "PPO (rl-baselines3-zoo): mean return 0.964 at 100k steps", "goal": 0.95,
    },
    "gotolocal": {
        "scenario": "babyai-gotolocal", "frames": 2_000_896, "measure": "final_success",
        "published": "random policy ~17 % return-equivalent, scripted bot 100 %; PPO needs 381k-1.1M episodes to 99 %",
        "goal": None,
    },
}
"""Per task: its built-in scenario, frame budget (whole 2048-frame batches), measure, published figure and goal."""


def windows(episodes: list[tuple[int, int, int | None]], returns: list[tuple[int, float]]) -> list[dict]:
    """Per batch: frames, episodes so far, and the success rate and mean return over the last >= WINDOW_EPISODES."""
    points, total = [], 0
    for index, ((frames, ended, _), (_, mean_return)) in enumerate(zip(episodes, returns)):
        total += ended
        count = succeeded = weighted_return = 0
        for back in range(index, -1, -1):
            _, batch_ended, batch_succeeded = episodes[back]
            count += batch_ended
            succeeded += batch_succeeded or 0
            weighted_return += returns[back][1] * batch_ended
            if count >= WINDOW_EPISODES:
                break
        points.append({"frames": frames, "episodes": total, "success": succeeded / count,
                       "return": weighted_return / count, "full": count >= WINDOW_EPISODES})
    return points


def first(points: list[dict], field: str, threshold: float) -> dict | None:
    """The first full window whose ``field`` reached ``threshold``."""
    return next((point for point in points if point["full"] and point[field] >= threshold), None)


def run_one(spec: dict) -> dict:
    """Train and evaluate one (task, seed) in this process; the child side of ``run_in_child``."""
    task = TASKS[spec["task"]]
    overrides = [f"train.frames={spec['frames']}", f"train.seed={spec['seed']}", "train.threads=1"]
    _, run, wall, greedy = train_and_evaluate(task["scenario"], overrides, spec["eval_episodes"])
    points = windows(run.episodes, run.returns)
    success_point = first(points, "success", task["success"]) if "success" in task else None
    return_point = first(points, "return", task["return"]) if "return" in task else None
    return {**spec, "wall_s": wall, "fps": run.frames / wall, "curve": points,
            "episodes_to_success": success_point["episodes"] if success_point else None,
            "frames_to_success": success_point["frames"] if success_point else None,
            "frames_to_return": return_point["frames"] if return_point else None,
            "final_success": points[-1]["success"] if points else None,
            "final_return": points[-1]["return"] if points else None,
            "greedy_success": greedy.success_rate, "greedy_return": greedy.groups["agent"].team_return}


def describe(run: dict) -> str:
    """One table row."""
    if "error" in run:
        return f"{run['task']:12s} {run['seed']:>4d}  FAILED: {(run['error'].strip().splitlines() or ['?'])[-1]}"

    def number(value: float | int | None) -> str:
        return "not reached" if value is None else f"{value:,}"

    return (f"{run['task']:12s} {run['seed']:>4d} {run['frames']:>10,} {number(run['episodes_to_success']):>12s}"
            f" {number(run['frames_to_return']):>12s} {run['final_success']:>8.3f} {run['final_return']:>8.3f}"
            f" {run['greedy_success']:>8.3f} {run['greedy_return']:>8.3f} {run['wall_s']:>7.0f} {run['fps']:>6.0f}")


def summarise(task_name: str, runs: list[dict]) -> dict:
    """Medians over seeds of the task's measure (a run that never got there counts as past its budget)."""
    task = TASKS[task_name]
    done = [run for run in runs if "error" not in run]
    never = float("inf")
    summary = {"scenario": task["scenario"], "frames": runs[0]["frames"], "seeds": [run["seed"] for run in runs],
               "published": task["published"], "failed": len(runs) - len(done)}
    for field in ("episodes_to_success", "frames_to_return", "final_success", "final_return", "greedy_success",
                  "greedy_return"):
        values = [run.get(field) for run in runs]
        summary[field] = values
        counted = [never if value is None else value for value in values]
        median = statistics.median(counted) if counted else None
        summary[f"median_{field}"] = None if median == never else median
    measure, goal = task["measure"], task["goal"]
    if measure == "episodes_to_success":
        median = summary["median_episodes_to_success"]
        summary["goal_met"] = median is not None and median < goal and not summary["failed"]
    elif measure == "frames_to_return":
        summary["goal_met"] = summary["median_greedy_return"] is not None and summary["median_greedy_return"] >= goal
    else:
        summary["goal_met"] = None
    return summary


def save_figure(results: dict[str, list[dict]], path: Path) -> None:
    """Training success rate (and mean return) against frames, one panel per task."""
    figure, panels = figure_panels(len(results), 4.6)
    for axes, (name, runs) in zip(panels, results.items()):
        for run in runs:
            curve = run.get("curve") or []
            frames = [point["frames"] for point in curve]
            line, = axes.plot(frames, [point["success"] for point in curve], label=f"seed {run['seed']} success")
            axes.plot(frames, [point["return"] for point in curve], color=line.get_color(), linestyle=":",
                      label=f"seed {run['seed']} return")
        axes.axhline(0.99 if TASKS[name]["measure"] == "episodes_to_success" else 0.95, color="grey",
                     linestyle="--", linewidth=0.8)
        axes.set_title(f"{TASKS[name]['scenario']}")
        axes.set_xlabel("frames")
        axes.set_ylim(0, 1.02)
        axes.legend(fontsize=7)
    panels[0].set_ylabel(f"training policy, last >= {WINDOW_EPISODES} episodes")
    save_figure_file(figure, path)


def main() -> None:
    """Run every (task, seed), print the table and the RESULT line, save the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["gotoredball", "doorkey"], choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=None, help="override every task's frame budget")
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=None, help="PNG of the curves (default: results/gridworlds_<tasks>.png)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    jobs = [{"task": task, "seed": seed, "frames": arguments.frames or TASKS[task]["frames"],
             "eval_episodes": arguments.eval_episodes} for task in arguments.tasks for seed in arguments.seeds]
    print(f"{len(jobs)} runs, {arguments.jobs} at a time; windows of >= {WINDOW_EPISODES} training episodes")
    print(f"{'task':12s} {'seed':>4s} {'budget':>10s} {'eps to 99%':>12s} {'frames to R':>12s} {'success':>8s}"
          f" {'return':>8s} {'greedy s':>8s} {'greedy R':>8s} {'wall s':>7s} {'fps':>6s}", flush=True)
    start = time.perf_counter()
    runs = run_children(__file__, jobs, arguments.jobs, describe)
    results = {task: [run for run in runs if run["task"] == task] for task in arguments.tasks}
    summary = {task: summarise(task, group) for task, group in results.items()}
    print(f"\nmedians over seeds {arguments.seeds} (total wall {time.perf_counter() - start:.0f} s)")
    for task, line in summary.items():
        print(f"{task}: episodes to 99 % {line['median_episodes_to_success']}, frames to return goal "
              f"{line['median_frames_to_return']}, last-window success {line['median_final_success']}, greedy success "
              f"{line['median_greedy_success']}, greedy return {line['median_greedy_return']}; goal met: "
              f"{line['goal_met']}\n  published: {line['published']}")
    out = arguments.out or Path(f"benchmarks/results/gridworlds_{'_'.join(arguments.tasks)}.png")
    save_figure(results, out)
    print("RESULT " + json.dumps({"benchmark": "gridworlds", "seeds": arguments.seeds, "tasks": summary}))


if __name__ == "__main__":
    main()
