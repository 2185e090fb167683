"""How much each modality matters in ``himo/beacon``: scripted policies with modalities removed.

Plays one episode in each of ``--envs`` parallel worlds per modality subset and prints success
rate, team return, episode length and the failure causes. Run:

    .venv/bin/python benchmarks/beacon_modalities.py --envs 256
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from himo.envs.builtin import make_builtin_env
from himo.envs.builtin.scripted import ScriptedBeaconPolicy, evaluate_scripted

MODALITIES = ("image", "text", "audio")


def main() -> None:
    """Parse the arguments, evaluate every modality subset and print one row per subset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=256, help="parallel episodes per subset")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'modalities':<20} {'success':>8} {'return':>8} {'length':>7} {'lava':>6} {'wrong':>6} {'timeout':>8}")
    started = time.perf_counter()
    for size in (3, 2, 1, 0):
        for subset in itertools.combinations(MODALITIES, size):
            env = make_builtin_env("beacon", num_envs=arguments.envs, seed=arguments.seed)
            policy = ScriptedBeaconPolicy(
                env.config,
                env.tokenizers["mission"],
                num_envs=arguments.envs,
                use_image="image" in subset,
                use_text="text" in subset,
                use_audio="audio" in subset,
                seed=arguments.seed,
            )
            result = evaluate_scripted(env, policy)
            name = "+".join(subset) or "none"
            print(
                f"{name:<20} {result['success']:>8.3f} {result['return']:>8.3f} {result['length']:>7.1f} "
                f"{result['lava']:>6.3f} {result['wrong_beacon']:>6.3f} {result['timeout']:>8.3f}"
            )
    print(f"({arguments.envs} episodes per row, seed {arguments.seed}, {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
