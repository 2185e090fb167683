"""Each learning algorithm at the manager level of the ``beacon`` hierarchy: does the manager learn to choose?

For every algorithm and seed, two runs of the ``beacon`` scenario (``himo.scenarios.run.train``) with the same
seed, workers and settings, each in a process of its own with one torch thread, ``--jobs`` at a time:

    trained  the manager learns with the algorithm;
    frozen   the same manager section with ``frozen: true``: the manager's fusion and heads keep their
             initial parameters, a near-uniform choice among the workers (the random-manager control). The
             workers learn in both arms, and with them the modality encoders the manager reads, so the
             frozen manager's greedy choice drifts, but it is never trained towards the team return.

Per run it reports the mean episode return (team) over the first and the last ``WINDOW`` batches of
the learning curve, the greedy return on ``EVAL_EPISODES`` fresh episodes (``himo.scenarios.evaluate``),
the share of the greedy manager's decisions given to each worker, wall time and frames per second.
Per algorithm the verdict is "rises" when the trained arm's last-window mean (median over seeds)
is above both its own first-window mean and the frozen arm's last-window mean by the margin of
``rises``. Prints a table, saves the learning curves as a PNG and ends with one line ``RESULT {json}``.

    python benchmarks/manager_algorithms.py --algorithms ppo a2c trpo impala a3c --jobs 1

With ``--pretrained-workers FRAMES`` the scenario is first trained as it is for FRAMES, and every run then keeps
those workers frozen: only the manager learns, whatever kind of algorithm it is (the workers' algorithm no longer
has to match it), so the comparison isolates the manager.

Adding an algorithm is one entry in ``ALGORITHMS``: its ``--set`` overrides of the ``beacon`` scenario.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
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

SCENARIO = "beacon"
WINDOW = 5
"""Batches (that ended an episode) averaged at the start and at the end of the learning curve."""
EVAL_EPISODES = 64
ABSOLUTE_MARGIN = 0.02
RELATIVE_MARGIN = 0.20
""""Rises" means above a reference by at least max(ABSOLUTE_MARGIN, RELATIVE_MARGIN * |reference|):
the absolute floor keeps noise around a return near zero from counting, the relative part scales with the return."""
ARMS = ("trained", "frozen")

ALGORITHMS: dict[str, list[str]] = {
    # On-policy managers keep the scenario's PPO workers (one collection kind per run).
    "ppo": ["algorithm.manager={name: ppo, minibatch_size: 1024}"],
    "a2c": ["algorithm.manager={name: a2c, lr: 1.0e-3, gae_lambda: 0.95, normalize_advantage: true}"],
    "trpo": ["algorithm.manager={name: trpo, max_kl: 0.01, minibatch_size: 1024}"],
    # Lagged and asynchronous managers need workers of their kind and several actor processes.
    "impala": ["train.actors=2", "algorithm.workers={name: impala, lr: 1.0e-3, minibatch_size: 1024}",
               "algorithm.manager={name: impala, minibatch_size: 1024}"],
    # A3C takes one step per batch in each process: smaller batches give it as many updates as the others.
    "a3c": ["train.actors=2", "train.frames_per_batch=256", "algorithm.workers={name: a3c, lr: 1.0e-3, gae_lambda: 0.95}",
            "algorithm.manager={name: a3c, lr: 1.0e-3, gae_lambda: 0.95, normalize_advantage: true}"],
    # Off-policy, collected synchronously: it keeps the PPO workers; its replay buffer holds options. The team
    # reward is small (options' Q-values are about 0.1-0.3): a low starting temperature lets them show.
    "sac": ["algorithm.manager={name: sac, lr: 1.0e-3, buffer_size: 20000, learning_starts: 500, "
            "initial_temperature: 0.05, target_entropy_weight: 0.8}"],
}
"""Per manager algorithm: the ``--set`` overrides of the ``beacon`` scenario (its batch of 2048 frames is kept:
a level cannot have a batch of its own). A2C and A3C take one gradient step per batch, hence their larger lr.

Measured at commit bd234bc on the 2-core development machine (``--jobs 1``, seed 0, 150k frames): last-5 mean of
the trained / frozen arm and greedy return of the trained arm. Rises: ppo 0.245 / 0.161 (0.263), a2c 0.259 / 0.174
(0.273), trpo 0.231 / 0.177 (0.260), impala 0.176 / 0.112 (0.121). Did not, with 2048-frame batches (73 updates):
a3c 0.071 / 0.057 (0.081), where neither arm learned. At 6ce7a9c: a3c on 256-frame batches 0.060 / 0.030 (0.081),
its workers still not learning; sac with its default temperature 0.080 / 0.158 (0.015). At d2eabc0, sac as above:
0.198 / 0.158 (0.254), rises. At 36af507 with ``--pretrained-workers 150000 --frames 100000``: a3c 0.265 / 0.164
(0.239), rises; sac 0.143 / 0.167 (0.234; frozen greedy 0.013): greedy better, training return not.
"""


def arm_overrides(algorithm: str, arm: str, seed: int, frames: int, workers: str | None = None) -> list[str]:
    """Every override of one run: the algorithm's, the arm's freezing of the manager, budget, seed, one thread;
    with ``workers`` (a checkpoint), the workers are that run's, frozen."""
    frozen = ["algorithm.manager.frozen=true"] if arm == "frozen" else []
    fixed = [f"algorithm.workers={{name: ppo, frozen: true, checkpoint: {workers}}}"] if workers else []
    return [*ALGORITHMS[algorithm], *fixed, *frozen, f"train.frames={frames}", f"train.seed={seed}", "train.threads=1"]


def pretrain_workers(frames: int, seed: int, folder: Path) -> str:
    """Train the scenario as it is (PPO at both levels) for ``frames``; its run folder (a level checkpoint that names
    a run folder loads its newest checkpoint)."""
    import torch

    torch.set_num_threads(1)
    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    scenario = load(SCENARIO, [f"train.frames={frames}", f"train.seed={seed}", "train.threads=1", f"log.dir={folder}"])
    run = train(scenario, progress=False)
    return str(run.folder)


def window_mean(curve: list[tuple[int, float]], last: bool, window: int = WINDOW) -> float | None:
    """Mean return of the first (or last) ``window`` points of a learning curve; None when it is empty."""
    points = curve[-window:] if last else curve[:window]
    return statistics.mean(value for _, value in points) if points else None


def rises(first: float, last: float, control: float) -> bool:
    """Whether ``last`` is above both ``first`` and ``control`` by the margin (see ``RELATIVE_MARGIN``)."""
    return all(last >= reference + max(ABSOLUTE_MARGIN, RELATIVE_MARGIN * abs(reference)) for reference in (first, control))


def run_one(spec: dict) -> dict:
    """Train and evaluate one (algorithm, arm, seed) in this process; the child side of ``launch``."""
    scenario, run, wall, evaluation = train_and_evaluate(SCENARIO, spec["overrides"], EVAL_EPISODES)
    groups = evaluation.groups.values()
    options = {worker: statistics.mean(group.option_frequency[worker] for group in groups) for worker in scenario.workers}
    return {**spec, "first": window_mean(run.returns, last=False), "last": window_mean(run.returns, last=True),
            "greedy_return": statistics.mean(group.team_return for group in groups), "options": options,
            "wall_s": wall, "fps": run.frames / wall, "curve": run.returns}


def launch(algorithm: str, arm: str, seed: int, frames: int, workers: str | None = None) -> dict:
    """Run ``run_one`` in a fresh interpreter (one torch thread; actor processes are its children)."""
    spec = {"algorithm": algorithm, "arm": arm, "seed": seed, "frames": frames,
            "overrides": arm_overrides(algorithm, arm, seed, frames, workers)}
    return run_in_child(__file__, spec)


def describe(run: dict) -> str:
    """One table row."""
    head = f"{run['algorithm']:7s} {run['arm']:8s} {run['seed']:>4d}"
    if "error" in run:
        return f"{head}  FAILED: {(run['error'].strip().splitlines() or ['?'])[-1]}"
    options = " ".join(f"{worker} {share:.0%}" for worker, share in run["options"].items())
    return (f"{head} {run['first'] or 0.0:>+8.3f} {run['last'] or 0.0:>+8.3f} {run['greedy_return']:>+8.3f}"
            f" {run['wall_s']:>7.0f} {run['fps']:>6.0f}  {options}")


def summarise(runs: list[dict]) -> dict:
    """Medians over seeds per arm and the verdict (a failed run counts as no rise)."""
    line: dict = {"failed": sum("error" in run for run in runs)}
    for arm in ARMS:
        done = [run for run in runs if run["arm"] == arm and "error" not in run and run["last"] is not None]
        for key in ("first", "last", "greedy_return"):
            line[f"{arm}_{key}"] = statistics.median(run[key] for run in done) if done else None
    values = (line["trained_first"], line["trained_last"], line["frozen_last"])
    line["rises"] = line["failed"] == 0 and None not in values and rises(*values)
    return line


def signed(value: float | None) -> str:
    """A return for the summary table."""
    return f"{value:+.3f}" if value is not None else "n/a"


def commit() -> str:
    """The short commit of the checkout this script is in ("unknown" outside git)."""
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, check=False)
    return found.stdout.strip() or "unknown"


def main() -> None:
    """Run every (algorithm, arm, seed), print the table and the RESULT line, save the curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frames", type=int, default=150_000, help="env frames per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/manager_algorithms.png"))
    parser.add_argument("--pretrained-workers", type=int, default=0, metavar="FRAMES",
                        help="first train the scenario for FRAMES, then every run keeps its workers frozen")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    pretrained = tempfile.TemporaryDirectory()
    workers = None
    if arguments.pretrained_workers:
        workers = pretrain_workers(arguments.pretrained_workers, arguments.seeds[0], Path(pretrained.name))
        print(f"workers: trained for {arguments.pretrained_workers:,} frames (ppo, seed {arguments.seeds[0]}), then frozen")
    jobs = [(name, arm, seed, arguments.frames, workers)
            for name in arguments.algorithms for seed in arguments.seeds for arm in ARMS]
    print(f"{SCENARIO}: manager algorithms, trained vs frozen manager; return = mean of the first / last {WINDOW}"
          f" batches' episodes; greedy over {EVAL_EPISODES} episodes; {len(jobs)} runs of {arguments.frames:,} frames,"
          f" {arguments.jobs} at a time\n{'algo':7s} {'arm':8s} {'seed':>4s} {'first':>8s} {'last':>8s} {'greedy':>8s}"
          f" {'wall s':>7s} {'fps':>6s}  greedy manager chose", flush=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(arguments.jobs) as pool:
        futures = [pool.submit(launch, *job) for job in jobs]
        for future in futures:
            print(describe(future.result()), flush=True)
    runs = [future.result() for future in futures]
    results = {name: [run for run in runs if run["algorithm"] == name] for name in arguments.algorithms}

    summary = {name: summarise(group) for name, group in results.items()}
    print(f"\nmedians over seeds {arguments.seeds} (total wall {time.perf_counter() - start:.0f} s); rises: trained last"
          f" >= reference + max({ABSOLUTE_MARGIN}, {RELATIVE_MARGIN:.0%} of |reference|) for trained first and frozen last")
    print(f"{'algo':7s} {'trained first':>13s} {'trained last':>12s} {'frozen last':>11s} {'greedy trained':>14s}"
          f" {'greedy frozen':>13s}  verdict")
    for name, line in summary.items():
        print(f"{name:7s} {signed(line['trained_first']):>13s} {signed(line['trained_last']):>12s}"
              f" {signed(line['frozen_last']):>11s} {signed(line['trained_greedy_return']):>14s}"
              f" {signed(line['frozen_greedy_return']):>13s}  {'rises' if line['rises'] else 'does NOT rise'}")
    if arguments.out:
        save_figure(results, arguments.out, arguments.frames)
    pretrained.cleanup()
    print("RESULT " + json.dumps({"benchmark": "manager_algorithms", "scenario": SCENARIO, "frames": arguments.frames,
                                  "pretrained_workers": arguments.pretrained_workers,
                                  "seeds": arguments.seeds, "window": WINDOW, "commit": commit(),
                                  "margin": {"absolute": ABSOLUTE_MARGIN, "relative": RELATIVE_MARGIN},
                                  "algorithms": summary}))


def save_figure(results: dict[str, list[dict]], path: Path, frames: int) -> None:
    """Learning curves (mean return over the last ``WINDOW`` points), trained and frozen arms, one panel per algorithm."""
    figure, panels = figure_panels(len(results), 4, sharey=True)
    for axes, (name, runs) in zip(panels, results.items()):
        for run in runs:
            curve = run.get("curve") or []
            smooth = smoothed(curve, WINDOW)
            label = f"{run['arm']} (seed {run['seed']}): greedy {run.get('greedy_return', 0.0):+.2f}"
            axes.plot([point for point, _ in curve], smooth, color="C0" if run["arm"] == "trained" else "C1",
                      alpha=0.85, label=label)
        axes.set_title(f"{name} manager")
        axes.set_xlabel("env frames")
        axes.legend(fontsize=7, loc="lower right")
    panels[0].set_ylabel(f"episode return (team, mean of {WINDOW} batches)")
    figure.suptitle(f"{SCENARIO}: trained vs frozen manager, {frames:,} frames per run (commit {commit()})", fontsize=10)
    save_figure_file(figure, path)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
