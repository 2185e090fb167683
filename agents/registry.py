"""The learning algorithms a level can use, by scenario name (``algorithm.<level>.name``)."""

from __future__ import annotations

from agents.a2c import A2C
from agents.a3c import A3C
from agents.impala import Impala
from agents.ppo import PPO
from agents.sac import SAC
from agents.trpo import TRPO

ALGORITHMS: dict[str, type] = {"ppo": PPO, "a2c": A2C, "a3c": A3C, "trpo": TRPO, "impala": Impala, "sac": SAC}
"""Name -> class built as ``cls(settings, level_model, total_frames, name)`` (``agents.base.LevelModel``)."""
