"""mpe2 simple_speaker_listener: does the team learn to communicate? Team return after a budget of env steps.

Trains the built-in ``speaker-listener`` scenario (two heterogeneous groups: the speaker sees the
target's colour and only speaks, the listener hears it and moves) for ``--frames`` environment
steps per seed (each in a process of its own, one torch thread), evaluates the greedy policies
on ``--eval-episodes`` fresh episodes, compares the team return with reference points measured
on this package version, saves the learning curves as a PNG and ends with one line
``RESULT {json}``.

    python benchmarks/speaker_listener.py --frames 2000000 --seeds 0 --set multi_agent.critic=global \
        --json benchmarks/results/speaker_listener.json

Team return: the mean over both groups of the episode's summed reward (25 steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks_common import (
    figure_panels,
    print_child_result,
    run_in_child,
    save_figure_file,
    smoothed,
    train_and_evaluate,
)

REFERENCES = {"random": -42.0, "listener ignoring the speaker (landmarks' centroid)": -17.5,
              "scripted speaker and listener": -9.0}
"""Team returns on mpe2's simple_speaker_listener_v4 (25 steps), measured on this package version."""
GOAL = -13.25
"""Clearly better than a listener that ignores the speaker (-17.5), i.e. communication learned: at least halfway
from it to the scripted pair (-9.0)."""


def run_one(spec: dict) -> dict:
    """Train and evaluate one seed in this process (the child side of ``run_in_child``)."""
    overrides = [f"train.frames={spec['frames']}", f"train.seed={spec['seed']}", "train.threads=1", *spec["overrides"]]
    _, run, wall, greedy = train_and_evaluate("speaker-listener", overrides, spec["eval_episodes"])
    team = statistics.mean(result.team_return for result in greedy.groups.values())
    last = [value for _, value in run.returns[-10:]]
    return {**spec, "wall_s": wall, "fps": run.frames / wall, "curve": run.returns,
            "final_training_return": statistics.mean(last), "greedy_team_return": team}


def save_figure(runs: list[dict], path: Path) -> None:
    """Training team return against env steps, with the reference points."""
    figure, (axes,) = figure_panels(1, 6.4, 4.0)
    for run in runs:
        curve = run.get("curve") or []
        axes.plot([frames for frames, _ in curve], smoothed(curve, 10),
                  label=f"seed {run['seed']}: greedy {run.get('greedy_team_return', float('nan')):.1f}")
    for (name, value), style in zip(REFERENCES.items(), (":", "--", "-.")):
        axes.axhline(value, color="grey", linestyle=style, linewidth=0.9, label=f"{name} {value}")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("team return (training, 10-batch mean)")
    axes.set_title("speaker-listener")
    axes.legend(fontsize=7)
    save_figure_file(figure, path)


def main() -> None:
    """Run every seed in turn, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="extra scenario overrides")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speaker_listener.png"))
    parser.add_argument("--json", type=Path, help="also write {steps, greedy_return, training_return, ...} here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    print(f"references: {REFERENCES}; goal: greedy team return above {GOAL}")
    runs = []
    for seed in arguments.seeds:
        spec = {"seed": seed, "frames": arguments.frames, "eval_episodes": arguments.eval_episodes,
                "overrides": arguments.set}
        run = run_in_child(__file__, spec)
        runs.append(run)
        if "error" in run:
            print(f"seed {seed}: FAILED: {run['error'].strip().splitlines()[-1]}", flush=True)
            continue
        print(f"seed {seed}: greedy team return {run['greedy_team_return']:.2f}, training (last 10 batches) "
              f"{run['final_training_return']:.2f}, {run['wall_s']:.0f} s, {run['fps']:.0f} steps/s", flush=True)
    done = [run for run in runs if "error" not in run]
    median = statistics.median(run["greedy_team_return"] for run in done) if done else None
    met = median is not None and median > GOAL and len(done) == len(runs)
    print(f"median greedy team return {median}; goal (> {GOAL}): {'met' if met else 'NOT met'}")
    save_figure(done, arguments.out)
    if arguments.json:
        summary = {"steps": arguments.frames, "seeds": arguments.seeds, "overrides": arguments.set,
                   "greedy_return": [run.get("greedy_team_return") for run in runs],
                   "training_return": [run.get("final_training_return") for run in runs],
                   "fps": [run.get("fps") for run in runs], "references": REFERENCES, "goal": GOAL}
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n")
    print("RESULT " + json.dumps({"benchmark": "speaker_listener", "frames": arguments.frames,
                                  "seeds": arguments.seeds, "greedy_team_returns": [run.get("greedy_team_return")
                                                                                   for run in runs],
                                  "median_greedy_team_return": median, "references": REFERENCES, "goal": GOAL,
                                  "goal_met": met}))


if __name__ == "__main__":
    main()
