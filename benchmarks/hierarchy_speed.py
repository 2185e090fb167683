"""Training speed of the hierarchical agent against the flat agent, interleaved in one run.

Trains each variant ``--repeats`` times in alternation (hierarchical, flat, hierarchical, ...)
for ``--frames`` frames through ``himo.scenarios.run.train`` and reports env frames per second
(collection and learning) and the ratio of the medians, so both see the same machine load.

    python benchmarks/hierarchy_speed.py --scenario beacon --frames 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from himo.scenarios.ablation import flat_overrides
from himo.scenarios.loader import load
from himo.scenarios.run import train


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="beacon")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    base = load(arguments.scenario)
    runs = {"hierarchical": [], "flat": flat_overrides(base)}
    fps: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(arguments.repeats):
            for name, overrides in runs.items():
                scenario = load(arguments.scenario, [*overrides, f"train.frames={arguments.frames}", f"log.dir={folder}"])
                fps[name].append(train(scenario, progress=False).fps)
                print(f"{name:12s} repeat {repeat}: {fps[name][-1]:.0f} frames/s", flush=True)
    medians = {name: statistics.median(values) for name, values in fps.items()}
    ratio = medians["hierarchical"] / medians["flat"]
    print(f"median frames/s: hierarchical {medians['hierarchical']:.0f}, flat {medians['flat']:.0f}; ratio {ratio:.2f}")
    print(json.dumps({"benchmark": "hierarchy_speed", "scenario": arguments.scenario, "frames": arguments.frames,
                      "median_fps": medians, "ratio_hierarchical_over_flat": ratio}))


if __name__ == "__main__":
    main()
