"""Training speed of the working tree against an earlier commit, interleaved in one run.

Exports the commit's tree into a temporary folder, then trains the same scenario ``--repeats`` times in
alternation (working tree, commit, working tree, ...), each in a fresh interpreter with one torch thread, and
prints env frames per second (wall clock of the whole ``train`` call: collection, learning, logging) and the
ratio of the medians. Both see the same machine load, so the ratio holds on a noisy machine where the figures
alone do not.

    python benchmarks/commit_speed.py --against 4ae4075 --scenario beacon --frames 20000 --repeats 3

Commits from before the packages were installed as ``himo.*`` import their folders by their bare names; later
ones are reached through a temporary ``himo`` package of links to the exported folders, placed ahead of the
installed one on the import path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "modalities", "agents", "hierarchy", "scenarios")

# Run in a fresh interpreter: the scenario, trained once; prints frames per second as JSON.
TRAIN = """
import json, sys, tempfile, time, torch
from {prefix}scenarios.loader import load
from {prefix}scenarios.run import train
overrides = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    scenario = load(sys.argv[2], [*overrides, "log.dir=" + folder])
    torch.set_num_threads(1)
    started = time.perf_counter()
    train(scenario, progress=False)
    print(json.dumps({{"fps": scenario.train.frames / (time.perf_counter() - started)}}))
"""


def export(commit: str, destination: Path) -> Path:
    """The tree of ``commit`` written into ``destination``; returns the folder to put on the import path."""
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", commit], check=True, capture_output=True).stdout
    tree = destination / "tree"
    with tarfile.open(fileobj=io.BytesIO(archive)) as bundle:
        bundle.extractall(tree, filter="data")
    if "package-dir" not in (tree / "pyproject.toml").read_text():
        return tree  # bare package names
    package = destination / "path" / "himo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(tree / name, target_is_directory=True)
    return package.parent


def frames_per_second(path: Path | None, prefix: str, scenario: str, overrides: list[str]) -> float:
    """One training run in a fresh interpreter: the working tree (``path`` None) or an exported commit."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    if path is not None:
        environment["PYTHONPATH"] = str(path)
    completed = subprocess.run(
        [sys.executable, "-c", TRAIN.format(prefix=prefix), json.dumps(overrides), scenario],
        check=True, capture_output=True, text=True, env=environment, cwd=tempfile.gettempdir(),
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])["fps"]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--scenario", default="beacon")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override for both")
    arguments = parser.parse_args()
    overrides = [f"train.frames={arguments.frames}", *arguments.set]
    with tempfile.TemporaryDirectory() as temporary:
        path = export(arguments.against, Path(temporary))
        prefix = "himo." if path.name == "path" else ""
        rates: dict[str, list[float]] = {"working tree": [], arguments.against: []}
        for _ in range(arguments.repeats):
            rates["working tree"].append(frames_per_second(None, "himo.", arguments.scenario, overrides))
            rates[arguments.against].append(frames_per_second(path, prefix, arguments.scenario, overrides))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name}: {' '.join(f'{value:,.0f}' for value in values)} frames/s (median {medians[name]:,.0f})")
    print(f"ratio working tree / {arguments.against}: {medians['working tree'] / medians[arguments.against]:.2f}x")


if __name__ == "__main__":
    main()
