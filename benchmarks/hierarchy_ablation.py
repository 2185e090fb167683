"""Hierarchical agent vs flat agent vs the hierarchy with each modality removed, on one scenario.

For every variant and seed: train for a fixed frame budget through the public path
(``himo.scenarios.run.train``), then evaluate the greedy policy on fresh episodes. Prints a table,
the frames-per-second ratio hierarchical/flat measured in this same run, saves the learning
curves as a PNG, and ends with one JSON line.

    python benchmarks/hierarchy_ablation.py --scenario beacon --frames 150000 --seeds 0 1 2

Variants:
    hierarchical   the scenario as written (one worker per modality under a manager);
    flat           one worker reading every modality, rewarded with every component the
                   specialists use (``benchmarks_common.flat_overrides``);
    no-<modality>  the hierarchy without that modality (its worker and its input removed).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks_common import figure_panels, flat_overrides, save_figure_file, train_and_evaluate
from himo.scenarios.loader import load
from himo.scenarios.schema import Scenario


def variants(base: Scenario) -> dict[str, list[str]]:
    """``--set`` overrides of each variant, derived from the base scenario's modalities and workers."""
    modalities = list(base.modalities)
    result = {"hierarchical": [], "flat": [flat_overrides(base)]}
    for removed in modalities:
        kept_modalities = {name: base.modalities[name].model_dump(mode="json") for name in modalities if name != removed}
        kept_workers = {
            name: worker.model_dump(mode="json", exclude_none=True)
            for name, worker in base.workers.items()
            if removed not in base.worker_modalities(name)
        }
        result[f"no-{removed}"] = [f"modalities={json.dumps(kept_modalities)}", f"workers={json.dumps(kept_workers)}"]
    return result


def main() -> None:
    """Run every variant and seed; print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="beacon")
    parser.add_argument("--frames", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=64, help="greedy evaluation episodes per run")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="extra overrides for all")
    parser.add_argument("--figure", type=Path, default=Path("benchmarks/results/hierarchy_ablation.png"))
    arguments = parser.parse_args()

    base = load(arguments.scenario, arguments.set)
    results: dict[str, list[dict]] = {}
    for name, overrides in variants(base).items():
        for seed in arguments.seeds:
            _, run, _, evaluation = train_and_evaluate(
                arguments.scenario,
                [*arguments.set, *overrides, f"train.frames={arguments.frames}", f"train.seed={seed}"],
                arguments.episodes,
            )
            team = statistics.mean(group.team_return for group in evaluation.groups.values())
            results.setdefault(name, []).append({"seed": seed, "greedy_return": team, "fps": run.fps, "curve": run.returns})
            print(f"{name:14s} seed {seed}: greedy return {team:+.3f}, {run.fps:.0f} frames/s", flush=True)

    print(f"\n{arguments.scenario}, {arguments.frames} frames, seeds {arguments.seeds}")
    print(f"{'variant':14s} {'median greedy return':>22s} {'median fps':>11s}")
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "median_greedy_return": statistics.median(run["greedy_return"] for run in runs),
            "median_fps": statistics.median(run["fps"] for run in runs),
        }
        print(f"{name:14s} {summary[name]['median_greedy_return']:>22.3f} {summary[name]['median_fps']:>11.0f}")
    ratio = summary["hierarchical"]["median_fps"] / summary["flat"]["median_fps"]
    print(f"fps hierarchical / flat (same run): {ratio:.2f}")
    save_figure(results, arguments.figure, f"{arguments.scenario}: episode return while training")
    print(json.dumps({"benchmark": "hierarchy_ablation", "scenario": arguments.scenario, "frames": arguments.frames,
                      "seeds": arguments.seeds, "fps_ratio_hierarchical_over_flat": ratio, "variants": summary}))


def save_figure(results: dict[str, list[dict]], path: Path, title: str) -> None:
    """Learning curves (episode return against frames), one line per variant and seed."""
    figure, (axes,) = figure_panels(1, 8, 5)
    for index, (name, runs) in enumerate(results.items()):
        for number, run in enumerate(runs):
            frames = [point[0] for point in run["curve"]]
            returns = [point[1] for point in run["curve"]]
            axes.plot(frames, returns, color=f"C{index}", alpha=0.8, label=name if number == 0 else None)
    axes.set_xlabel("env frames")
    axes.set_ylabel("episode return (team)")
    axes.set_title(title)
    axes.legend()
    save_figure_file(figure, path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
