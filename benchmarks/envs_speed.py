"""Env-step throughput of himo's adapters next to TorchRL's own batching and the raw libraries.

Run ``python benchmarks/envs_speed.py [--num-envs 8] [--steps 300]``. Every figure is env frames per
second (TensorDict steps x copies) of a random-action rollout on one torch thread; the ratio is
against the himo adapter.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from collections.abc import Callable

import gymnasium
import torch
from torchrl.envs import EnvBase, GymEnv, GymWrapper, PettingZooWrapper, SerialEnv

from himo.envs.gymnasium_adapter import make_gymnasium_env
from himo.envs.pettingzoo_adapter import make_pettingzoo_env


def rollout_fps(env: EnvBase, steps: int) -> float:
    """Frames per second of ``env.rollout(steps)`` with random actions and auto-reset (after a warm-up)."""
    env.rollout(10, break_when_any_done=False)
    start = time.perf_counter()
    env.rollout(steps, break_when_any_done=False)
    return steps * env.batch_size.numel() / (time.perf_counter() - start)


def raw_gymnasium_fps(name: str, num_envs: int, steps: int) -> float:
    """Frames per second of a bare ``SyncVectorEnv`` loop (numpy only: the ceiling)."""
    vector_env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(name)] * num_envs)
    with contextlib.redirect_stdout(io.StringIO()):  # BabyAI prints while resetting
        vector_env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            vector_env.step(vector_env.action_space.sample())
    return steps * num_envs / (time.perf_counter() - start)


def raw_pettingzoo_fps(make: Callable[[], object], num_envs: int, steps: int) -> float:
    """Frames per second of stepping ``num_envs`` raw parallel envs in a Python loop."""
    envs = [make() for _ in range(num_envs)]
    for env in envs:
        env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        for env in envs:
            if not env.agents:
                env.reset()
            env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    count, steps = arguments.num_envs, arguments.steps
    import minigrid  # noqa: F401  (registers the MiniGrid/BabyAI ids)
    import mpe2.simple_speaker_listener_v4 as speaker_listener

    rows: list[tuple[str, str, Callable[[], float]]] = [
        ("CartPole-v1", "himo gymnasium adapter (SyncVectorEnv in one step)",
         lambda: rollout_fps(make_gymnasium_env("CartPole-v1", num_envs=count, seed=0), steps)),
        ("CartPole-v1", "TorchRL SerialEnv of GymEnv",
         lambda: rollout_fps(SerialEnv(count, lambda: GymEnv("CartPole-v1")), steps // 2)),
        ("CartPole-v1", "TorchRL GymWrapper(SyncVectorEnv), no himo layout",
         lambda: rollout_fps(GymWrapper(gymnasium.vector.SyncVectorEnv(
             [lambda: gymnasium.make("CartPole-v1")] * count,
             autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED)), steps)),
        ("CartPole-v1", "raw gymnasium SyncVectorEnv (ceiling)", lambda: raw_gymnasium_fps("CartPole-v1", count, steps)),
        ("BabyAI-GoToRedBallGrey-v0", "himo gymnasium adapter",
         lambda: rollout_fps(make_gymnasium_env("BabyAI-GoToRedBallGrey-v0", num_envs=count, seed=0), steps)),
        ("BabyAI-GoToRedBallGrey-v0", "raw gymnasium SyncVectorEnv (ceiling)",
         lambda: raw_gymnasium_fps("BabyAI-GoToRedBallGrey-v0", count, steps)),
        ("simple_speaker_listener_v4", "himo pettingzoo adapter (copies in one step)",
         lambda: rollout_fps(make_pettingzoo_env("mpe2.simple_speaker_listener_v4", num_envs=count, seed=0), steps)),
        ("simple_speaker_listener_v4", "TorchRL SerialEnv of PettingZooWrapper",
         lambda: rollout_fps(SerialEnv(count, lambda: PettingZooWrapper(speaker_listener.parallel_env())), steps // 2)),
        ("simple_speaker_listener_v4", "raw parallel envs in a loop (ceiling)",
         lambda: raw_pettingzoo_fps(speaker_listener.parallel_env, count, steps)),
    ]
    print(f"frames/s, {count} copies, random actions, 1 torch thread")
    reference: dict[str, float] = {}
    for env_name, label, measure in rows:
        fps = measure()
        reference.setdefault(env_name, fps)
        print(f"{env_name:28s} {label:52s} {fps:9.0f}  x{fps / reference[env_name]:.2f}")


if __name__ == "__main__":
    main()
