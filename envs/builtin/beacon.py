"""``himo/beacon``: a cooperative, multimodal, multi-agent grid task as a batched TorchRL env.

Every agent of the group ``"agents"`` must touch the beacon of the colour its text mission names.
Beacons are coloured discs that each emit a tone of a frequency fixed per colour; lava cells end
the episode. Each modality is necessary in some situations and insufficient alone:

* **text** (``mission``) is the only place the target colour is named;
* **audio** (``sound``) locates beacons outside the view (bearing by interaural level/time
  difference, distance by loudness, identity by frequency);
* **image** (``view``) is the only place lava, walls and the exact position of nearby beacons show.

Rules: see :mod:`himo.envs.builtin.beacon_world`; the sound model: :mod:`himo.envs.builtin.beacon_render`.

Keys (E = ``num_envs``, A = ``agents``, V = ``view``, t = ``tile``, L = mission length (5)):

================================================  ===========================  ===============
key                                               shape                        dtype
================================================  ===========================  ===============
``("agents", "observation", "view")``             ``[E, A, 3, V*t, V*t]``      uint8 RGB
``("agents", "observation", "mission", "input_ids")``  ``[E, A, L]``           int64
``("agents", "observation", "mission", "attention_mask")``  ``[E, A, L]``      bool
``("agents", "observation", "sound")``            ``[E, A, 2, samples]``       float32 (left, right)
``("agents", "observation", "direction")``        ``[E, A, 4]``                float32 one-hot
``("agents", "action")``                          ``[E, A]``                   int64, ``action_names``
``("next", "agents", "reward")``                  ``[E, A, 1]``                float32, team reward
``("next", "agents", "reward_components", name)``  ``[E, A, 1]``               float32
``("next", "agents", "done"|"terminated"|"truncated")``  ``[E, A, 1]``          bool
``("next", "done"|"terminated"|"truncated")``     ``[E, 1]``                   bool
================================================  ===========================  ===============

Actions (``env.action_names``): ``left``, ``right`` (turn 90 degrees), ``forward``, ``stay``. With
``action_parts=True`` the action is composite instead, ``("agents", "action", "turn")`` in
``none, left, right`` and ``("agents", "action", "move")`` in ``stay, forward`` (``env.action_parts``),
applied in one step, the turn first.

Team reward, the same for every agent: ``(1 - 0.9 * steps / max_steps) / agents`` for each agent
that arrives on this step, else 0; a whole success (every agent arrives) is worth at most 1 in
all. Failure on lava or a wrong beacon ends the episode with no further reward.

Reward components (one per modality; shaping terms a specialist can learn from; they are part
of the observation spec, like TorchRL's info readers, so they are written under ``"next"``):

* ``explore`` (image): the number of grid cells this agent sees for the first time in the
  episode divided by ``V * V``; -1 instead on the step it enters lava.
* ``instruction`` (text): +1 on the step the agent touches the beacon its mission names, -1 on
  the step it touches another beacon.
* ``approach_sound`` (audio): how much closer (Euclidean, in cells) the agent got to the source of
  its target tone this step (negative when it moved away; 0 once arrived).

Kwargs are the fields of :class:`~himo.envs.builtin.beacon_config.BeaconConfig` (agents 2, size 9,
beacons 3, hazards 4, view 5, tile 4, max_steps 48, sample_rate 4000, samples 256, noise 0.0).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

from himo.envs import keys
from himo.envs.builtin.beacon_config import ACTION_NAMES, ACTION_PARTS, COMPONENT_NAMES, BeaconConfig
from himo.envs.builtin.beacon_render import BeaconRenderer
from himo.envs.builtin.beacon_world import BeaconWorld, StepOutcome

GROUP = "agents"
VIEW, MISSION, SOUND, DIRECTION = "view", "mission", "sound", "direction"


def reward_components(outcome: StepOutcome, config: BeaconConfig) -> dict[str, torch.Tensor]:
    """The per-modality reward components ``[E, A]`` of one step, by name (see the module docstring)."""
    explore = torch.where(outcome.entered_lava, -1.0, outcome.newly_seen / config.view**2)
    instruction = outcome.touched_target.float() - outcome.touched_wrong.float()
    return {"explore": explore, "instruction": instruction, "approach_sound": outcome.approach}


def _copied(
    observation: dict[str, torch.Tensor] | None, device: torch.device | None = None
) -> dict[str, torch.Tensor] | None:
    if observation is None:
        return None
    return {name: value.to(device or value.device, copy=True) for name, value in observation.items()}


class BeaconEnv(EnvBase):
    """Batched TorchRL env of ``num_envs`` beacon worlds stepped together (see the module docstring)."""

    def __init__(self, *, num_envs: int, seed: int = 0, device: str | torch.device = "cpu", **kwargs: Any) -> None:
        """Build ``num_envs`` worlds configured by ``kwargs`` (fields of ``BeaconConfig``), seeded by ``seed``."""
        config = BeaconConfig.from_kwargs(**kwargs)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.config = config
        self.num_envs = num_envs
        self.group = GROUP
        self.action_names: list[str] = [] if config.action_parts else list(ACTION_NAMES)
        self.action_parts: dict[str, list[str]] = dict(ACTION_PARTS) if config.action_parts else {}
        self.component_names: list[str] = list(COMPONENT_NAMES)
        self.world = BeaconWorld(config, num_envs=num_envs, seed=seed, device=self.device)
        self.renderer = BeaconRenderer(self.world)
        self.tokenizers = {MISSION: self.renderer.tokenizer}
        self._observation: dict[str, torch.Tensor] | None = None
        self.group_map = {GROUP: [f"agent_{index}" for index in range(config.agents)]}
        self._make_specs()
        self.set_seed(seed)

    def _make_specs(self) -> None:
        config, device = self.config, self.device
        envs, agents = self.num_envs, config.agents
        group_shape = torch.Size([envs, agents])
        pixels = config.view * config.tile
        length = self.renderer.mission_length
        mission = Composite(
            {
                keys.INPUT_IDS: Categorical(
                    self.renderer.tokenizer.vocab_size, shape=(*group_shape, length), dtype=torch.int64, device=device
                ),
                keys.ATTENTION_MASK: Categorical(2, shape=(*group_shape, length), dtype=torch.bool, device=device),
            },
            shape=group_shape,
        )
        observation = Composite(
            {
                VIEW: Bounded(0, 255, shape=(*group_shape, 3, pixels, pixels), dtype=torch.uint8, device=device),
                MISSION: mission,
                SOUND: Unbounded(shape=(*group_shape, 2, config.samples), dtype=torch.float32, device=device),
                DIRECTION: OneHot(4, shape=(*group_shape, 4), dtype=torch.float32, device=device),
            },
            shape=group_shape,
        )
        components = Composite(
            {name: Unbounded(shape=(*group_shape, 1), device=device) for name in COMPONENT_NAMES}, shape=group_shape
        )
        self.observation_spec = Composite(
            {
                GROUP: Composite({keys.OBSERVATION: observation, keys.REWARD_COMPONENTS: components}, shape=group_shape),
                keys.SUCCESS: Categorical(2, shape=(envs, 1), dtype=torch.bool, device=device),
            },
            shape=self.batch_size,
        )
        if config.action_parts:
            action = Composite(
                {
                    part: Categorical(len(choices), shape=group_shape, device=device)
                    for part, choices in ACTION_PARTS.items()
                },
                shape=group_shape,
            )
        else:
            action = Categorical(len(ACTION_NAMES), shape=group_shape, device=device)
        self.action_spec = Composite(
            {GROUP: Composite({keys.ACTION: action}, shape=group_shape)}, shape=self.batch_size
        )
        self.reward_spec = Composite(
            {GROUP: Composite({keys.REWARD: Unbounded(shape=(*group_shape, 1), device=device)}, shape=group_shape)},
            shape=self.batch_size,
        )

        def flags(shape: tuple[int, ...]) -> dict[str, Categorical]:
            return {
                name: Categorical(2, shape=shape, dtype=torch.bool, device=device)
                for name in (keys.DONE, keys.TERMINATED, keys.TRUNCATED)
            }

        self.done_spec = Composite(
            {**flags((envs, 1)), GROUP: Composite(flags((*group_shape, 1)), shape=group_shape)}, shape=self.batch_size
        )

    # ------------------------------------------------------------------------------ TorchRL API
    def capture_state(self) -> dict[str, Any]:
        """The worlds' state, their generator's and the last observation, copied (see ``himo.envs.env_state``)."""
        return {"world": self.world.state_dict(), "observation": _copied(self._observation)}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`capture_state` returned."""
        self.world.load_state_dict(state["world"])
        # Partial resets re-render only the reset envs and keep this for the others (a re-render would draw noise).
        self._observation = _copied(state["observation"], self.device)

    def _set_seed(self, seed: int | None) -> None:
        self.world.seed(0 if seed is None else int(seed))

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        if tensordict is not None:
            root_reset = tensordict.get("_reset", None)
            group_reset = tensordict.get((GROUP, "_reset"), None)
            if root_reset is not None:
                mask = root_reset.reshape(self.num_envs)
            elif group_reset is not None:
                mask = group_reset.reshape(self.num_envs, -1).any(-1)
        self.world.reset(mask)
        if mask.all() or self._observation is None:
            observation = self._observe()
        else:
            # Only the reset envs changed: render those and keep the others' last observation.
            index = mask.nonzero().squeeze(-1)
            observation = {name: value.clone() for name, value in self._observation.items()}
            for name, value in self._observe(index).items():
                observation[name][index] = value
        zeros = torch.zeros(self.num_envs, self.config.agents, 1, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._output(observation, dict.fromkeys(COMPONENT_NAMES, zeros), None, no, no, no)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.config.action_parts:
            parts = [tensordict.get((GROUP, keys.ACTION, part)).long() for part in ACTION_PARTS]
            outcome = self.world.step_parts(*parts)
        else:
            outcome = self.world.step(tensordict.get((GROUP, keys.ACTION)).long())
        return self._output(
            self._observe(), self.components(outcome), outcome.reward, outcome.terminated, outcome.truncated, outcome.success
        )

    def components(self, outcome: StepOutcome) -> dict[str, torch.Tensor]:
        """Reward components ``[E, A, 1]`` of one step, by name (see the module docstring)."""
        return {name: value.unsqueeze(-1) for name, value in reward_components(outcome, self.config).items()}

    def _observe(self, index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Observation tensors of all envs (or of the envs ``index``), by name."""
        renderer = self.renderer
        input_ids, attention_mask = renderer.mission(index)
        return {
            VIEW: renderer.view(index),
            keys.INPUT_IDS: input_ids,
            keys.ATTENTION_MASK: attention_mask,
            SOUND: renderer.sound(index),
            DIRECTION: renderer.direction(index),
        }

    def _output(
        self,
        observation: dict[str, torch.Tensor],
        components: dict[str, torch.Tensor],
        reward: torch.Tensor | None,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        success: torch.Tensor,
    ) -> TensorDictBase:
        self._observation = observation
        envs, agents = self.num_envs, self.config.agents
        mission = {keys.INPUT_IDS: observation[keys.INPUT_IDS], keys.ATTENTION_MASK: observation[keys.ATTENTION_MASK]}
        nested_observation = {
            VIEW: observation[VIEW],
            MISSION: mission,
            SOUND: observation[SOUND],
            DIRECTION: observation[DIRECTION],
        }
        done = (terminated | truncated).unsqueeze(-1)
        terminated, truncated = terminated.unsqueeze(-1), truncated.unsqueeze(-1)
        group: dict[str, Any] = {
            keys.OBSERVATION: nested_observation,
            keys.REWARD_COMPONENTS: components,
            # Contiguous copies, so that consumers may update them in place.
            keys.DONE: done.unsqueeze(1).expand(envs, agents, 1).contiguous(),
            keys.TERMINATED: terminated.unsqueeze(1).expand(envs, agents, 1).contiguous(),
            keys.TRUNCATED: truncated.unsqueeze(1).expand(envs, agents, 1).contiguous(),
        }
        if reward is not None:
            group[keys.REWARD] = reward.view(envs, 1, 1).expand(envs, agents, 1).contiguous()
        return TensorDict(
            {
                GROUP: TensorDict(group, batch_size=(envs, agents), device=self.device),
                keys.DONE: done,
                keys.TERMINATED: terminated,
                keys.TRUNCATED: truncated,
                keys.SUCCESS: success.unsqueeze(-1),
            },
            batch_size=self.batch_size,
            device=self.device,
        )
