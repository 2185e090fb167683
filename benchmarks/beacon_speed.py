"""Steps per second of ``himo/beacon``: the TorchRL env (random actions, auto-reset) and its torch core.

Run:

    .venv/bin/python benchmarks/beacon_speed.py --envs 1 64 256 --steps 200
"""

from __future__ import annotations

import argparse
import time

import torch

from himo.envs.builtin import make_builtin_env


def torchrl_rate(num_envs: int, steps: int) -> float:
    """Env-steps per second of ``env.rollout`` with random actions and auto-reset."""
    env = make_builtin_env("beacon", num_envs=num_envs, seed=0)
    env.rollout(10, break_when_any_done=False)
    started = time.perf_counter()
    env.rollout(steps, break_when_any_done=False)
    return steps * num_envs / (time.perf_counter() - started)


def core_rate(num_envs: int, steps: int) -> float:
    """Env-steps per second of the world and renderer alone (step, reset of done envs, all observations)."""
    env = make_builtin_env("beacon", num_envs=num_envs, seed=0)
    world, renderer = env.world, env.renderer
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(steps):
        actions = torch.randint(4, (num_envs, env.config.agents), generator=generator)
        outcome = world.step(actions)
        world.reset(outcome.terminated | outcome.truncated)
        renderer.view(), renderer.sound(), renderer.mission(), renderer.direction()
    return steps * num_envs / (time.perf_counter() - started)


def main() -> None:
    """Print TorchRL and core env-steps per second for each requested ``num_envs``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    print(f"{'num_envs':>8} {'torchrl env-steps/s':>20} {'core env-steps/s':>17} {'torchrl batched steps/s':>24}")
    for num_envs in arguments.envs:
        torchrl, core = torchrl_rate(num_envs, arguments.steps), core_rate(num_envs, arguments.steps)
        print(f"{num_envs:>8} {torchrl:>20.0f} {core:>17.0f} {torchrl / num_envs:>24.1f}")


if __name__ == "__main__":
    main()
