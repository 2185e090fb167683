"""The learning algorithms a level can use, by scenario name (``algorithm.<level>.name``)."""

from __future__ import annotations

from himo.agents.a2c import A2C
from himo.agents.a3c import A3C
from himo.agents.impala import Impala
from himo.agents.ppo import PPO
from himo.agents.sac import SAC
from himo.agents.trpo import TRPO

ALGORITHMS: dict[str, type] = {"ppo": PPO, "a2c": A2C, "a3c": A3C, "trpo": TRPO, "impala": Impala, "sac": SAC}
"""Name -> class built as ``cls(settings, level_model, total_frames, name)`` (``himo.agents.base.LevelModel``)."""
