"""Memory on partially observable gridworlds: recurrent workers and manager against memoryless ones.

For every task, variant and seed: train the task's built-in scenario for its frame budget (one torch thread, each
run in a process of its own, ``--jobs`` at a time), the ``recurrent`` variant with a GRU core in every worker and in
the manager (``MEMORY``), then evaluate the greedy policy on ``--eval-episodes`` fresh episodes. The training
success is the success rate of the training policy (which samples its actions) over its last window of at least
512 ended episodes (as ``gridworlds.py`` measures it).

Results are merged into ``benchmarks/results/memory.json`` by task, variant and seed (runs of other tasks, variants
and seeds already there are kept), with the commit each run was measured at:

    python benchmarks/memory.py --tasks doorkey --seeds 0 1 2 --jobs 1
    python benchmarks/memory.py --tasks gotolocal --variants recurrent --seeds 0 --jobs 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from benchmarks_common import print_child_result, run_children, train_and_evaluate
from gridworlds import windows

TASKS = {
    "doorkey": {"scenario": "minigrid-doorkey", "frames": 307_200},
    "gotolocal": {"scenario": "babyai-gotolocal", "frames": 2_000_896},
}
"""Per task: its built-in scenario and frame budget (whole 2048-frame batches), as ``gridworlds.py`` runs them."""

MEMORY = "{kind: gru, hidden: 128}"
"""The recurrent variant's core, in every worker and (with more than one worker) the manager."""

VARIANTS = ("recurrent", "memoryless")
RESULTS = Path(__file__).parent / "results" / "memory.json"


def variant_overrides(scenario: str, variant: str) -> list[str]:
    """The overrides of ``variant`` for ``scenario``."""
    if variant == "memoryless":
        return []
    from himo.scenarios.loader import load

    workers = list(load(scenario).workers)
    overrides = [f"workers.{name}.memory={MEMORY}" for name in workers]
    return overrides + ([f"manager.memory={MEMORY}"] if len(workers) > 1 else [])


def run_one(spec: dict) -> dict:
    """Train and evaluate one (task, variant, seed) in this process; the child side of ``run_in_child``."""
    task = TASKS[spec["task"]]
    overrides = [f"train.frames={spec['frames']}", f"train.seed={spec['seed']}", "train.threads=1"]
    overrides += variant_overrides(task["scenario"], spec["variant"])
    _, run, wall, greedy = train_and_evaluate(task["scenario"], overrides, spec["eval_episodes"])
    points = windows(run.episodes, run.returns)
    return {**spec, "wall_s": wall, "fps": run.frames / wall, "training_success": points[-1]["success"],
            "greedy_success": greedy.success_rate, "greedy_return": greedy.groups["agent"].team_return}


def merge(previous: dict, runs: list[dict], commit: str) -> dict:
    """``previous`` results with ``runs`` added (a run replaces an earlier one of its task, variant and seed)."""
    merged = {"frames": dict(previous.get("frames", {})), "tasks": {}}
    by_key = {}
    for task, variants in previous.get("tasks", {}).items():
        for variant, line in variants.items():
            for index, seed in enumerate(line["seeds"]):
                by_key[(task, variant, seed)] = {field: values[index] for field, values in line.items() if field != "seeds"}
    for run in runs:
        if "error" not in run:
            merged["frames"][run["task"]] = run["frames"]
            by_key[(run["task"], run["variant"], run["seed"])] = {
                "greedy_success": run["greedy_success"], "training_success": run["training_success"],
                "greedy_return": run["greedy_return"], "fps": run["fps"], "commit": commit,
            }
    for (task, variant, seed) in sorted(by_key):
        line = merged["tasks"].setdefault(task, {}).setdefault(variant, {"seeds": []})
        line["seeds"].append(seed)
        for field, value in by_key[(task, variant, seed)].items():
            line.setdefault(field, []).append(value)
    return merged


def describe(run: dict) -> str:
    """One table row."""
    head = f"{run['task']:10s} {run['variant']:11s} {run['seed']:>4d}"
    if "error" in run:
        return f"{head}  FAILED: {(run['error'].strip().splitlines() or ['?'])[-1]}"
    return (f"{head} {run['frames']:>10,} {run['training_success']:>9.3f} {run['greedy_success']:>9.3f}"
            f" {run['greedy_return']:>9.3f} {run['wall_s']:>7.0f} {run['fps']:>6.0f}")


def main() -> None:
    """Run every (task, variant, seed), print the table, merge the results file, print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=None, help="override every task's frame budget")
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file to merge into")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    commit += "+changes" if dirty.strip() else ""
    jobs = [{"task": task, "variant": variant, "seed": seed, "frames": arguments.frames or TASKS[task]["frames"],
             "eval_episodes": arguments.eval_episodes}
            for task in arguments.tasks for seed in arguments.seeds for variant in arguments.variants]
    print(f"{len(jobs)} runs, {arguments.jobs} at a time, at {commit}")
    print(f"{'task':10s} {'variant':11s} {'seed':>4s} {'frames':>10s} {'training':>9s} {'greedy':>9s} {'greedy R':>9s}"
          f" {'wall s':>7s} {'fps':>6s}", flush=True)
    start = time.perf_counter()
    runs = run_children(__file__, jobs, arguments.jobs, describe)
    previous = json.loads(arguments.out.read_text()) if arguments.out.exists() else {}
    merged = merge(previous, runs, commit)
    arguments.out.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"\ntotal wall {time.perf_counter() - start:.0f} s; merged into {arguments.out}")
    print("RESULT " + json.dumps({"benchmark": "memory", **merged}))


if __name__ == "__main__":
    main()
