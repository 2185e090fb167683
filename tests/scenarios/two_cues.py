"""A task that needs two modalities at once, shrunk to a one-step episode (for the goals learning check).

Each episode shows a ``cue`` (one of ``SIZE``, like the built-in world's instruction naming a beacon) and a
``position`` (one of ``SIZE``, like where its sound comes from); the rewarded action is
``(cue + position) mod SIZE``. Each observation alone says nothing about the rewarded action. Without goals,
a manager that sees both can only pick which of two single-modality workers acts: each worker's action is a
function of its own observation, which covers one of ``SIZE`` cases per value, so at most ``2 / SIZE`` of the
episodes succeed (half, with four).
"""

from __future__ import annotations

import gymnasium
import numpy as np

TWO_CUES_ID = "HimoTestTwoCues-v0"
SIZE = 4


class TwoCuesEnv(gymnasium.Env):
    """Reward 1 for the action ``(cue + position) mod SIZE``, else 0; every episode is one step."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        one_hot = gymnasium.spaces.Box(0.0, 1.0, (SIZE,), np.float32)
        self.observation_space = gymnasium.spaces.Dict({"cue": one_hot, "position": one_hot})
        self.action_space = gymnasium.spaces.Discrete(SIZE)
        self.bits = (0, 0)

    def _observation(self) -> dict[str, np.ndarray]:
        return {name: np.eye(SIZE, dtype=np.float32)[value] for name, value in zip(("cue", "position"), self.bits)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.bits = tuple(int(value) for value in self.np_random.integers(0, SIZE, size=2))
        return self._observation(), {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        reward = float(int(action) == (self.bits[0] + self.bits[1]) % SIZE)
        return self._observation(), reward, True, False, {}


if TWO_CUES_ID not in gymnasium.registry:
    gymnasium.register(TWO_CUES_ID, entry_point=TwoCuesEnv)
