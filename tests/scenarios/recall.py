"""A task only memory solves: a cue shown at the first step alone, and a choice ``DELAY`` steps later (for the
memory learning check).

Each episode shows one of ``SIZE`` cues at its first step and a blank observation after it; an episode is
``DELAY + 1`` steps and only its last action is rewarded, with 1 when it names the cue. A policy without memory
sees the same blank at the last step whatever the cue was, so at most ``1 / SIZE`` of its episodes succeed.
"""

from __future__ import annotations

import gymnasium
import numpy as np

RECALL_ID = "HimoTestRecall-v0"
SIZE = 4
DELAY = 3


class RecallEnv(gymnasium.Env):
    """Reward 1 for naming, at the last of ``DELAY + 1`` steps, the cue shown at the first; else 0."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Dict({"cue": gymnasium.spaces.Box(0.0, 1.0, (SIZE,), np.float32)})
        self.action_space = gymnasium.spaces.Discrete(SIZE)
        self.cue, self.steps = 0, 0

    def _observation(self) -> dict[str, np.ndarray]:
        shown = np.eye(SIZE, dtype=np.float32)[self.cue] if self.steps == 0 else np.zeros(SIZE, np.float32)
        return {"cue": shown}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.cue, self.steps = int(self.np_random.integers(0, SIZE)), 0
        return self._observation(), {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        self.steps += 1
        last = self.steps > DELAY
        reward = float(last and int(action) == self.cue)
        return self._observation(), reward, last, False, {}


if RECALL_ID not in gymnasium.registry:
    gymnasium.register(RECALL_ID, entry_point=RecallEnv)
