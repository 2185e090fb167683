"""A two-group signalling game, speaker-listener shrunk to two steps (for the communication learning check).

A PettingZoo parallel env with agents ``speaker_0`` and ``listener_0`` (groups ``speaker`` and ``listener``). At
the first step the speaker sees one of ``SIZE`` targets (one-hot) and says one of ``SIZE`` words; the listener sees
nothing yet. At the second step the listener hears the word (one-hot) and points at one of ``SIZE`` targets; both
are paid 1 if it is the target, else 0, and the episode ends. Every other action is ignored. A listener that does
not hear the target succeeds in ``1 / SIZE`` of the episodes, whatever it does: success above that is
communication, and the speaker's words carry the target. With ``deaf=True`` the listener never hears the word:
the same game with communication impossible.
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

SIZE = 3
AGENTS = ("speaker_0", "listener_0")


class SignalGame(ParallelEnv):
    """See the module docstring. Observations: ``[target one-hot, word heard one-hot, second step]``."""

    metadata = {"name": "signal_game", "render_modes": []}

    def __init__(self, deaf: bool = False) -> None:
        self.deaf = deaf
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.target, self.word, self.step_index = 0, -1, 0
        self.random = np.random.default_rng()

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2 * SIZE + 1,), np.float32)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(SIZE)

    def _observations(self) -> dict[str, np.ndarray]:
        speaker = np.zeros(2 * SIZE + 1, np.float32)
        listener = np.zeros(2 * SIZE + 1, np.float32)
        if self.step_index == 0:
            speaker[self.target] = 1.0
        else:
            if not self.deaf:
                listener[SIZE + self.word] = 1.0
            speaker[-1] = listener[-1] = 1.0
        return {"speaker_0": speaker, "listener_0": listener}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.random = np.random.default_rng(seed)
        self.agents = list(AGENTS)
        self.target, self.word, self.step_index = int(self.random.integers(SIZE)), -1, 0
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if self.step_index == 0:
            self.word, self.step_index = int(actions["speaker_0"]), 1
            reward, done = 0.0, False
        else:
            reward, done = float(int(actions["listener_0"]) == self.target), True
        observations = self._observations()
        if done:
            self.agents = []
        every = list(AGENTS)
        return (
            observations,
            {agent: reward for agent in every},
            {agent: done for agent in every},
            {agent: False for agent in every},
            {agent: {} for agent in every},
        )


def parallel_env(deaf: bool = False) -> SignalGame:
    """The env, as a PettingZoo module provides it."""
    return SignalGame(deaf)
