"""Tiny Gymnasium and PettingZoo envs that report reward components in ``info`` (for the env tests)."""

from __future__ import annotations

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

COMPONENTS_ENV_ID = "HimoTestComponents-v0"
EPISODE_LENGTH = 5


class ComponentsEnv(gymnasium.Env):
    """Observation = step count; reward 1; ``bonus`` = 2 every step, ``penalty`` = -0.5 on even steps only."""

    metadata = {"render_modes": [], "reward_components": ["bonus", "penalty"]}

    def __init__(self, extra_component: bool = False) -> None:
        self.observation_space = gymnasium.spaces.Box(0.0, 10.0, (1,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.extra_component = extra_component
        self.count = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.count += 1
        components = {"bonus": 2.0}
        if self.count % 2 == 0:
            components["penalty"] = -0.5
        if self.extra_component:
            components["surprise"] = 1.0
        observation = np.array([float(self.count)], dtype=np.float32)
        return observation, 1.0, self.count >= EPISODE_LENGTH, False, {"reward_components": components}


if COMPONENTS_ENV_ID not in gymnasium.registry:
    gymnasium.register(COMPONENTS_ENV_ID, entry_point=ComponentsEnv)


class ComponentsParallelEnv(ParallelEnv):
    """Two agents ``runner_0``, ``runner_1``; each gets reward = action and component ``effort`` = -action."""

    metadata = {"name": "components_parallel", "reward_components": ["effort"]}

    def __init__(self) -> None:
        self.possible_agents = ["runner_0", "runner_1"]
        self.agents = list(self.possible_agents)
        self.count = 0

    def observation_space(self, agent: str) -> gymnasium.Space:
        return gymnasium.spaces.Box(0.0, 10.0, (2,), np.float32)

    def action_space(self, agent: str) -> gymnasium.Space:
        return gymnasium.spaces.Discrete(3)

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: np.array([self.count, index], dtype=np.float32) for index, agent in enumerate(self.agents)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self.count = 0
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.count += 1
        done = self.count >= EPISODE_LENGTH
        rewards = {agent: float(actions[agent]) for agent in self.agents}
        infos = {agent: {"reward_components": {"effort": -float(actions[agent])}} for agent in self.agents}
        observations = self._observations()
        terminations = {agent: done for agent in self.agents}
        truncations = {agent: False for agent in self.agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


def parallel_env() -> ComponentsParallelEnv:
    """Module-level factory, as PettingZoo env modules have."""
    return ComponentsParallelEnv()
