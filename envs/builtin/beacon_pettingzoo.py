"""``himo/beacon`` as a PettingZoo ``ParallelEnv``: one world of the same torch core, numpy out.

Each agent ``agent_<i>`` observes a gymnasium ``Dict``: ``view`` (uint8 ``[3, H, W]``),
``mission`` (``Dict(input_ids int64 [L], attention_mask bool [L])``), ``sound`` (float32
``[2, samples]``) and ``direction`` (float32 one-hot ``[4]``), exactly as the TorchRL env's
per-agent slices, so ``torchrl.envs.PettingZooWrapper`` and the project's adapter
(``make_env("pettingzoo/himo.envs.builtin.beacon_pettingzoo", ...)``) yield the same keys; the adapter
exposes the ``tokenizers`` attribute (``{"mission": tokenizer}``) as ``env.tokenizers``. Actions are
``Discrete(4)`` over ``action_names``; an agent missing from the action dict stays. The reward
components of the step are in ``infos[agent]["reward_components"]`` (names declared in
``metadata["reward_components"]``), the project's convention for PettingZoo envs. All agents
leave together when the team episode ends. ``parallel_env(**kwargs)`` is the module-level factory.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from himo.envs import keys
from himo.envs.builtin.beacon import DIRECTION, MISSION, SOUND, VIEW, reward_components
from himo.envs.builtin.beacon_config import ACTION_NAMES, COMPONENT_NAMES, STAY, BeaconConfig
from himo.envs.builtin.beacon_render import BeaconRenderer
from himo.envs.builtin.beacon_world import BeaconWorld


class BeaconParallelEnv(ParallelEnv):
    """PettingZoo parallel view of one beacon world (kwargs: fields of ``BeaconConfig``)."""

    metadata = {
        "name": "himo_beacon_v0",
        "render_modes": [],
        "is_parallelizable": True,
        "reward_components": list(COMPONENT_NAMES),
    }

    def __init__(self, seed: int = 0, render_mode: str | None = None, **kwargs: Any) -> None:
        """One world configured by ``kwargs``; ``seed`` seeds it until ``reset(seed=...)`` says otherwise."""
        if render_mode is not None:
            raise ValueError(f"himo/beacon: render_mode must be None (no rendering), got {render_mode!r}")
        self.render_mode = render_mode
        self.config = BeaconConfig.from_kwargs(**kwargs)
        if self.config.action_parts:
            raise ValueError("himo/beacon: action_parts is for the batched TorchRL env; this env's actions are Discrete(4)")
        self.world = BeaconWorld(self.config, num_envs=1, seed=seed)
        self.world.seed(seed)  # the first reset() draws the layout the TorchRL env with this seed draws
        self.renderer = BeaconRenderer(self.world)
        self.tokenizers = {MISSION: self.renderer.tokenizer}
        self.action_names: list[str] = list(ACTION_NAMES)
        self.possible_agents: list[str] = [f"agent_{index}" for index in range(self.config.agents)]
        self.agents: list[str] = []

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Dict:
        """The observation space of ``agent`` (the same object on every call)."""
        config, length = self.config, self.renderer.mission_length
        pixels = config.view * config.tile
        vocabulary = self.renderer.tokenizer.vocab_size
        return spaces.Dict(
            {
                VIEW: spaces.Box(0, 255, (3, pixels, pixels), dtype=np.uint8),
                MISSION: spaces.Dict(
                    {
                        keys.INPUT_IDS: spaces.Box(0, vocabulary - 1, (length,), dtype=np.int64),
                        keys.ATTENTION_MASK: spaces.Box(0, 1, (length,), dtype=np.bool_),
                    }
                ),
                SOUND: spaces.Box(-np.inf, np.inf, (2, config.samples), dtype=np.float32),
                DIRECTION: spaces.Box(0.0, 1.0, (4,), dtype=np.float32),
            }
        )

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Discrete:
        """``Discrete(4)`` over ``action_names`` (the same object on every call)."""
        return spaces.Discrete(len(ACTION_NAMES))

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Start a new episode (re-seeding first when ``seed`` is given)."""
        if seed is not None:
            self.world.seed(seed)
        self.world.reset(torch.ones(1, dtype=torch.bool))
        self.agents = list(self.possible_agents)
        infos = {agent: {keys.REWARD_COMPONENTS: dict.fromkeys(COMPONENT_NAMES, 0.0)} for agent in self.agents}
        return self._observations(), infos

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """Advance all agents at once; returns observations, rewards, terminations, truncations, infos."""
        if not self.agents:
            raise RuntimeError("himo/beacon: step() called with no live agents; call reset() first")
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise ValueError(f"himo/beacon: unknown agents {sorted(unknown)}; agents are {self.possible_agents}")
        action_list = [int(actions.get(agent, STAY)) for agent in self.possible_agents]
        outcome = self.world.step(torch.tensor([action_list], dtype=torch.long))
        components = {name: value[0].tolist() for name, value in reward_components(outcome, self.config).items()}
        reward = float(outcome.reward[0])
        terminated, truncated = bool(outcome.terminated[0]), bool(outcome.truncated[0])
        observations = self._observations()
        agents = self.agents
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, terminated)
        truncations = dict.fromkeys(agents, truncated)
        infos = {
            agent: {keys.REWARD_COMPONENTS: {name: values[index] for name, values in components.items()}}
            for index, agent in enumerate(self.possible_agents)
            if agent in agents
        }
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, dict[str, Any]]:
        renderer = self.renderer
        view, sound = renderer.view()[0].numpy(), renderer.sound()[0].numpy()
        direction = renderer.direction()[0].numpy()
        input_ids, attention_mask = (tensor[0].numpy() for tensor in renderer.mission())
        return {
            agent: {
                VIEW: view[index],
                MISSION: {keys.INPUT_IDS: input_ids[index], keys.ATTENTION_MASK: attention_mask[index]},
                SOUND: sound[index],
                DIRECTION: direction[index],
            }
            for index, agent in enumerate(self.possible_agents)
            if agent in self.agents
        }

    def state(self) -> np.ndarray:
        """The room's cell codes ``[size, size]`` uint8 (agents not drawn)."""
        return self.world.grid[0].numpy().copy()

    def close(self) -> None:
        """Nothing to release."""


def parallel_env(**kwargs: Any) -> BeaconParallelEnv:
    """PettingZoo's module-level factory: a :class:`BeaconParallelEnv` (kwargs as its constructor's)."""
    return BeaconParallelEnv(**kwargs)
