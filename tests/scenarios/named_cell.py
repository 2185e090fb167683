"""A one-step task where a cue names which object to point at in a small grid (for the conditioned-encoder check).

Each episode places ``OBJECTS`` distinct objects (cell codes ``1..OBJECTS``, empty cells ``0``) in random cells of
a ``SIDE`` x ``SIDE`` grid, and a one-hot ``cue`` names one of them; the rewarded action is the index of the cell
holding the named object. Neither observation alone says where to point: the grid has ``OBJECTS`` candidates and
the cue no place. It is BabyAI's "go to the red ball" shrunk to one step.
"""

from __future__ import annotations

import gymnasium
import numpy as np

NAMED_CELL_ID = "HimoTestNamedCell-v0"
SIDE = 3
OBJECTS = 4


class NamedCellEnv(gymnasium.Env):
    """Reward 1 for pointing at the cell of the object the cue names, else 0; every episode is one step."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Dict(
            {
                "grid": gymnasium.spaces.Box(0, OBJECTS, (1, SIDE, SIDE), np.uint8),
                "cue": gymnasium.spaces.Box(0.0, 1.0, (OBJECTS,), np.float32),
            }
        )
        self.action_space = gymnasium.spaces.Discrete(SIDE * SIDE)
        self.cells = np.zeros(OBJECTS, dtype=np.int64)
        self.named = 0

    def _observation(self) -> dict[str, np.ndarray]:
        grid = np.zeros(SIDE * SIDE, dtype=np.uint8)
        grid[self.cells] = np.arange(1, OBJECTS + 1, dtype=np.uint8)
        return {"grid": grid.reshape(1, SIDE, SIDE), "cue": np.eye(OBJECTS, dtype=np.float32)[self.named]}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.cells = self.np_random.permutation(SIDE * SIDE)[:OBJECTS]
        self.named = int(self.np_random.integers(0, OBJECTS))
        return self._observation(), {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        reward = float(int(action) == self.cells[self.named])
        return self._observation(), reward, True, False, {}


if NAMED_CELL_ID not in gymnasium.registry:
    gymnasium.register(NAMED_CELL_ID, entry_point=NamedCellEnv)
