"""What the benchmarks share: runs in child processes, a train-then-evaluate run, smoothed curves and figures
(the flat variant of a scenario is ``himo.scenarios.ablation.flat_overrides``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from himo.scenarios.schema import Scenario


CHILD_PREFIX = "CHILD "
"""How a benchmark's child process marks the line that carries its result (JSON) on its standard output."""


def run_in_child(script: str, spec: dict) -> dict:
    """Run ``script --child <spec as JSON>`` in a fresh interpreter with one torch thread; its result, or ``spec``
    with an ``error`` (the end of its output) when it failed or printed no result line."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], check=False, capture_output=True,
                           text=True, env=environment)
    lines = [line for line in child.stdout.splitlines() if line.startswith(CHILD_PREFIX)]
    if child.returncode != 0 or not lines:
        return {**spec, "error": (child.stderr or child.stdout)[-2000:]}
    return json.loads(lines[-1][len(CHILD_PREFIX):])


def run_children(script: str, jobs: list[dict], processes: int, describe: Callable[[dict], str]) -> list[dict]:
    """Each job through :func:`run_in_child`, ``processes`` at a time; each result's ``describe`` line is printed in
    job order as it is known. Returns the results in job order."""
    with ThreadPoolExecutor(processes) as pool:
        futures = [pool.submit(run_in_child, script, job) for job in jobs]
        for future in futures:
            print(describe(future.result()), flush=True)
    return [future.result() for future in futures]


def print_child_result(result: dict) -> None:
    """The child side of :func:`run_in_child`: print its result line."""
    print(CHILD_PREFIX + json.dumps(result), flush=True)


def smoothed(curve: list[tuple[int, float]], window: int) -> list[float]:
    """Each point's mean with up to ``window - 1`` points before it."""
    values = [value for _, value in curve]
    return [statistics.mean(values[max(0, index - window + 1) : index + 1]) for index in range(len(values))]


def train_and_evaluate(scenario: str, overrides: list[str], episodes: int) -> tuple[Scenario, Any, float, Any]:
    """In this process, on one torch thread: train ``scenario`` (a built-in name or a path) with ``overrides`` in a
    temporary run folder, then evaluate its greedy policy on ``episodes`` fresh episodes.

    Returns the loaded scenario, the ``TrainResult``, the training's wall seconds and the ``Evaluation``.
    """
    import torch

    torch.set_num_threads(1)
    from himo.scenarios.evaluate import evaluate
    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    with tempfile.TemporaryDirectory() as folder:
        loaded = load(scenario, [*overrides, f"log.dir={folder}"])
        start = time.perf_counter()
        run = train(loaded, progress=False)
        wall = time.perf_counter() - start
        evaluation = evaluate(run.folder, episodes)
    return loaded, run, wall, evaluation


def figure_panels(count: int, width: float, height: float = 3.6, **options: Any) -> tuple[Any, list[Any]]:
    """A figure with a row of ``count`` panels, ``width`` inches each, drawn for files only (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, panels = pyplot.subplots(1, count, figsize=(width * count, height), squeeze=False, **options)
    return figure, list(panels[0])


def save_figure_file(figure: Any, path: Path, dpi: int = 110) -> None:
    """Lay ``figure`` out and write it to ``path`` (its folder created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
