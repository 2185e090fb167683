"""Tiny envs with legal-action masks (for the action-mask tests): a Gymnasium env and a turn-based PettingZoo one.

Each counts the illegal actions it receives (class attribute ``illegal``) instead of raising, so a test can
read how many an unmasked policy would have taken.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from pettingzoo import AECEnv
from pettingzoo.utils.agent_selector import AgentSelector

MASKED_ENV_ID = "HimoTestMasked-v0"
ACTIONS = 4
EPISODE_LENGTH = 10


def legal_pair(step: int) -> np.ndarray:
    """Actions {0, 1} are legal on even steps, {2, 3} on odd ones."""
    mask = np.zeros(ACTIONS, dtype=np.int8)
    mask[[0, 1] if step % 2 == 0 else [2, 3]] = 1
    return mask


class MaskedEnv(gymnasium.Env):
    """Observation: the step's parity and the legal actions; reward 1 for a legal action, 0 otherwise."""

    metadata = {"render_modes": []}
    illegal = 0

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Dict(
            {"state": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float32), "action_mask": gymnasium.spaces.MultiBinary(ACTIONS)}
        )
        self.action_space = gymnasium.spaces.Discrete(ACTIONS)
        self.count = 0

    def _observation(self) -> dict[str, np.ndarray]:
        parity = np.array([self.count % 2, 1 - self.count % 2], dtype=np.float32)
        return {"state": parity, "action_mask": legal_pair(self.count)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.count = 0
        return self._observation(), {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        legal = bool(legal_pair(self.count)[int(action)])
        MaskedEnv.illegal += not legal
        self.count += 1
        return self._observation(), float(legal), self.count >= EPISODE_LENGTH, False, {}


if MASKED_ENV_ID not in gymnasium.registry:
    gymnasium.register(MASKED_ENV_ID, entry_point=MaskedEnv)


class TurnsEnv(AECEnv):
    """Two players take turns (``player_0``, then ``player_1``, ...); the one to move sees its legal actions."""

    metadata = {"name": "turns", "render_modes": [], "is_parallelizable": False}
    illegal = 0

    def __init__(self) -> None:
        super().__init__()
        self.possible_agents = ["player_0", "player_1"]
        self.count = 0

    def observation_space(self, agent: str) -> gymnasium.Space:
        return gymnasium.spaces.Dict(
            {"state": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float32), "action_mask": gymnasium.spaces.MultiBinary(ACTIONS)}
        )

    def action_space(self, agent: str) -> gymnasium.Space:
        return gymnasium.spaces.Discrete(ACTIONS)

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        parity = np.array([self.count % 2, 1 - self.count % 2], dtype=np.float32)
        return {"state": parity, "action_mask": legal_pair(self.count)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.agents = list(self.possible_agents)
        self.count = 0
        self.rewards = {agent: 0.0 for agent in self.agents}
        self._cumulative_rewards = {agent: 0.0 for agent in self.agents}
        self.terminations = {agent: False for agent in self.agents}
        self.truncations = {agent: False for agent in self.agents}
        self.infos = {agent: {} for agent in self.agents}
        self._selector = AgentSelector(self.agents)
        self.agent_selection = self._selector.next()

    def step(self, action: int) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        legal = bool(legal_pair(self.count)[int(action)])
        TurnsEnv.illegal += not legal
        self.count += 1
        self.rewards = {name: float(legal) if name == agent else 0.0 for name in self.agents}
        self._cumulative_rewards[agent] = 0.0
        self._accumulate_rewards()
        if self.count >= EPISODE_LENGTH:
            self.truncations = {name: True for name in self.agents}
        self.agent_selection = self._selector.next()


def env() -> TurnsEnv:
    """The turn-based env, as the PettingZoo adapter builds an AEC module's env."""
    return TurnsEnv()
