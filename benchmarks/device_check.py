"""The built-in world trained on an accelerator: frames per second and peak device memory.

Trains ``beacon`` (as shipped) for ``--frames`` with ``train.device`` set to ``--device`` (by default ``cuda``; the
env is torch, so it steps on the device too) on one torch thread, and prints the frames per second of the whole
``train`` call, the process's peak resident memory and, on CUDA, the peak GPU memory. Ends with one line
``RESULT {json}``. Run it on a machine with a GPU; ``--device cpu`` gives the same figures on the CPU to compare, and
``--set`` changes the scenario as ``himo train --set`` does (more envs per batch, say, where the device has room).

    python benchmarks/device_check.py --frames 30000
    python benchmarks/device_check.py --frames 65536 --set env.num_envs=256 --set train.frames_per_batch=16384
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile


def check(device: str, frames: int, scenario: str = "beacon", overrides: list[str] | None = None) -> dict:
    """Train ``scenario`` for ``frames`` on ``device`` with the scenario ``overrides`` (``--set`` lines); its speed
    and memory."""
    import torch

    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    overrides = list(overrides or [])
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"device_check: --device {device} asked for, but torch sees no CUDA device here")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        base = [f"train.frames={frames}", f"train.device={device}", "train.threads=1", f"log.dir={folder}"]
        loaded = load(scenario, base + overrides)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        run = train(loaded, progress=False)
    result = {"scenario": scenario, "overrides": overrides, "device": device, "frames": run.frames, "fps": run.fps,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if cuda:
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    return result


def main(arguments: list[str] | None = None) -> dict:
    """Parse the options, run the check, print its figures and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scenario", default="beacon")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario override, as himo train's --set (repeatable), e.g. env.num_envs=256")
    options = parser.parse_args(arguments)
    result = check(options.device, options.frames, options.scenario, options.overrides)
    memory = f", peak GPU memory {result['peak_gpu_mib']:.0f} MiB on {result['gpu']}" if "peak_gpu_mib" in result else ""
    settings = f" ({', '.join(result['overrides'])})" if result["overrides"] else ""
    print(f"{result['scenario']}{settings} on {result['device']}: {result['frames']} frames at {result['fps']:.0f} frames/s, "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB{memory}")
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
