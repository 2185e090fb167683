"""mpe2 simple_spread: himo's MAPPO-style agent beside a plain TorchRL MAPPO script, same env, settings and frames.

himo trains the built-in ``simple-spread`` scenario (one group of three agents, a centralised critic, the settings of
TorchRL's multi-agent PPO tutorial); the peer is ``benchmarks/peers/torchrl_mappo.py`` (that tutorial's structure on
the same env). Each run is a fresh process with one torch thread; ``--jobs 2`` runs the two side by side, so both
see the same machine load. Reported: the mean per-agent episode return while training (first and last batches),
frames per second, himo's greedy return on ``--eval-episodes`` fresh episodes, a PNG of both curves, and the JSON
``{"frames": N, "himo": {...per seed}, "torchrl_mappo": {...per seed}}``.

    python benchmarks/simple_spread.py --frames 198000 --seeds 0 --jobs 2 --json benchmarks/results/simple_spread.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from benchmarks_common import figure_panels, print_child_result, run_children, save_figure_file, smoothed, train_and_evaluate

CONTENDERS = ("himo", "torchrl_mappo")


def run_one(spec: dict) -> dict:
    """Train one contender and seed in this process (the child side of ``run_children``)."""
    if spec["contender"] == "himo":
        overrides = [f"train.frames={spec['frames']}", f"train.seed={spec['seed']}", "train.threads=1"]
        _, run, wall, greedy = train_and_evaluate("simple-spread", overrides, spec["eval_episodes"])
        curve = run.returns
        return {**spec, "wall_s": wall, "fps": run.frames / wall, "curve": curve,
                "greedy_return": statistics.mean(group.team_return for group in greedy.groups.values()),
                "first_return": curve[0][1], "final_return": curve[-1][1]}
    from peers.torchrl_mappo import MappoSettings, train

    result = train(replace(MappoSettings(), frames=spec["frames"], seed=spec["seed"]))
    return {**spec, **result, "first_return": result["curve"][0][1]}


def save_figure(runs: list[dict], path: Path) -> None:
    """Mean per-agent episode return while training against env frames, for each contender and seed."""
    figure, (axes,) = figure_panels(1, 6.4, 4.0)
    for run in runs:
        curve = run.get("curve") or []
        axes.plot([frames for frames, _ in curve], smoothed(curve, 3), label=f"{run['contender']} seed {run['seed']}")
    axes.set_xlabel("environment frames")
    axes.set_ylabel("mean per-agent episode return (training)")
    axes.set_title("simple_spread (3 agents)")
    axes.legend(fontsize=8)
    save_figure_file(figure, path)


def describe(run: dict) -> str:
    """One line per finished run."""
    if "error" in run:
        return f"{run['contender']} seed {run['seed']}: FAILED: {run['error'].strip().splitlines()[-1]}"
    greedy = f", greedy {run['greedy_return']:.2f}" if "greedy_return" in run else ""
    return (f"{run['contender']} seed {run['seed']}: training return {run['first_return']:.2f} -> "
            f"{run['final_return']:.2f}{greedy}, {run['fps']:.0f} frames/s")


def main() -> None:
    """Run every contender and seed, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=198_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/simple_spread.png"))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return
    jobs = [{"contender": contender, "seed": seed, "frames": arguments.frames, "eval_episodes": arguments.eval_episodes}
            for seed in arguments.seeds for contender in CONTENDERS]
    runs = run_children(__file__, jobs, arguments.jobs, describe)
    done = [run for run in runs if "error" not in run]
    save_figure(done, arguments.out)
    fields = ("first_return", "final_return", "greedy_return", "fps")
    summary = {"frames": arguments.frames, "seeds": arguments.seeds}
    for contender in CONTENDERS:
        mine = [run for run in runs if run["contender"] == contender]
        summary[contender] = {field: [run.get(field) for run in mine] for field in fields if any(field in run for run in mine)}
    if arguments.json:
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
