"""Scripted policies for ``himo/beacon`` that act from the observations, with any modality removed.

:class:`ScriptedBeaconPolicy` decodes each modality the way a perfect specialist would:

* **text**: the colour word of the mission names the target;
* **audio**: the FFT of both ears at the target's tone gives its bearing (interaural phase gives
  ``sin(bearing)``, the interaural level ratio tells front from back) and its loudness;
* **image**: the centre pixel of each tile gives the cell (floor, wall, lava, beacon colour,
  agent), so the policy plans a shortest path inside its view and never steps into lava or a
  wrong beacon.

Without a modality it falls back to what is left: no text, it guesses a target colour (one it
hears, else the first it sees, else any); no audio, it explores until the target is in view; no
image, it walks toward the sound blind. Comparing these versions measures how much each
modality is needed (``benchmarks/beacon_modalities.py``).
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from transformers import PreTrainedTokenizerFast

from himo.envs import keys
from himo.envs.builtin.beacon import BeaconEnv
from himo.envs.builtin.beacon_config import COLOURS, FORWARD, LEFT, RIGHT, TONES_HZ, BeaconConfig
from himo.envs.builtin.beacon_render import HEAD_METRES, PALETTE, SPEED_OF_SOUND, ear_gains
from himo.envs.builtin.beacon_world import AGENT, BEACON, FLOOR

UNKNOWN = -1
AHEAD_HALF_ANGLE = math.pi / 4 + 0.1  # slack so a beacon at 45 degrees counts as ahead
AUDIBLE_AMPLITUDE = 1e-3
EXPLORE_TURN_PROBABILITY = 0.2
SOUND_WANDER_PROBABILITY = 0.1
UNREACHABLE = 1_000


class ScriptedBeaconPolicy:
    """Hand-written beacon policy using only the modalities it is allowed (see the module docstring)."""

    def __init__(
        self,
        config: BeaconConfig,
        tokenizer: PreTrainedTokenizerFast,
        *,
        num_envs: int,
        use_image: bool = True,
        use_text: bool = True,
        use_audio: bool = True,
        seed: int = 0,
    ) -> None:
        """A policy for ``num_envs`` envs of ``config``; ``tokenizer`` is the env's mission tokenizer."""
        self.config = config
        self.use_image, self.use_text, self.use_audio = use_image, use_text, use_audio
        self.generator = torch.Generator().manual_seed(seed)
        colour_of_token = torch.full((tokenizer.vocab_size,), UNKNOWN, dtype=torch.long)
        for index, colour in enumerate(COLOURS):
            colour_of_token[tokenizer.convert_tokens_to_ids(colour)] = index
        self.colour_of_token = colour_of_token
        self.tone_bins = torch.tensor([round(tone * config.samples / config.sample_rate) for tone in TONES_HZ])
        shape = (num_envs, config.agents)
        self.guess = torch.full(shape, UNKNOWN, dtype=torch.long)
        self.previous_level = torch.zeros(shape)
        self.previous_forward = torch.zeros(shape, dtype=torch.bool)

    def reset(self, mask: torch.Tensor) -> None:
        """Forget the guesses and audio memory of the envs where ``mask`` ``[E]`` is True (new episodes)."""
        self.guess[mask] = UNKNOWN
        self.previous_level[mask] = 0.0
        self.previous_forward[mask] = False

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write ``("agents", "action")`` from the observations in ``tensordict`` (computed on the CPU)."""
        observation = tensordict.get(("agents", keys.OBSERVATION)).cpu()
        actions = self.act(
            observation.get("view"), observation.get(("mission", keys.INPUT_IDS)), observation.get("sound")
        )
        tensordict.set(("agents", keys.ACTION), actions.to(tensordict.device))
        return tensordict

    # ------------------------------------------------------------------------------ decoding
    def decode_view(self, view: torch.Tensor) -> torch.Tensor:
        """Cell code ``[E, A, V, V]`` of every view cell, read from the centre pixel of its tile."""
        tile = self.config.tile
        centres = view[..., tile // 2 :: tile, tile // 2 :: tile].movedim(2, -1).long()  # [E, A, V, V, 3]
        return (centres.unsqueeze(-2) - PALETTE.long()).abs().sum(-1).argmin(-1)

    def decode_mission(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Colour index ``[E, A]`` named by each mission."""
        return self.colour_of_token[input_ids].max(-1).values

    def decode_sound(self, sound: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bearing (radians, 0 ahead, positive right) and level of every colour's tone, each ``[E, A, colours]``."""
        spectrum = torch.fft.rfft(sound, dim=-1)[..., self.tone_bins]  # [E, A, 2, colours]
        left, right = spectrum[:, :, 0], spectrum[:, :, 1]
        phase_difference = torch.angle(right * left.conj())
        angular = 2 * math.pi * torch.tensor(TONES_HZ)
        sine = (phase_difference * SPEED_OF_SOUND / (angular * HEAD_METRES)).clamp(-1.0, 1.0)
        front = torch.asin(sine)
        back = torch.where(sine >= 0, math.pi - front, -math.pi - front)
        measured = (left.abs() + 1e-12).log() - (right.abs() + 1e-12).log()

        def level_ratio(bearing: torch.Tensor) -> torch.Tensor:
            left_gain, right_gain = ear_gains(bearing)
            return left_gain.log() - right_gain.log()

        is_back = (level_ratio(back) - measured).abs() + 1e-3 < (level_ratio(front) - measured).abs()
        level = (left.abs() + right.abs()) / sound.shape[-1]
        return torch.where(is_back, back, front), level

    # ------------------------------------------------------------------------------- acting
    def act(self, view: torch.Tensor, input_ids: torch.Tensor, sound: torch.Tensor) -> torch.Tensor:
        """Actions ``[E, A]`` from the observations (modalities not allowed are ignored)."""
        codes = self.decode_view(view) if self.use_image else None
        bearings, levels = self.decode_sound(sound) if self.use_audio else (None, None)
        target = self.decode_mission(input_ids) if self.use_text else self._guess_target(codes, levels)
        shape = target.shape
        known = target != UNKNOWN
        safe_target = target.clamp_min(0)
        explore = self._explore(codes, shape)
        actions = explore
        if bearings is not None:
            bearing = bearings.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
            level = levels.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
            # Now and then wander instead, which frees an agent that local rules keep in a corner.
            follow = known & (torch.rand(shape, generator=self.generator) >= SOUND_WANDER_PROBABILITY)
            actions = torch.where(follow, self._follow_sound(bearing, level, codes, safe_target), actions)
            self.previous_level = level
        if codes is not None:
            planned, reachable = self._plan_in_view(codes, safe_target)
            actions = torch.where(known & reachable, planned, actions)
        self.previous_forward = actions == FORWARD
        return actions

    def _guess_target(self, codes: torch.Tensor | None, levels: torch.Tensor | None) -> torch.Tensor:
        """Sticky per-episode guess of the target colour, from what is heard or else seen."""
        unset = self.guess == UNKNOWN
        noise = torch.rand((*self.guess.shape, len(COLOURS)), generator=self.generator)
        if levels is not None:
            candidates = levels > AUDIBLE_AMPLITUDE
        elif codes is not None:
            beacons = codes.flatten(2) - BEACON
            visible = torch.zeros((*self.guess.shape, len(COLOURS) + 1), dtype=torch.bool)
            visible.scatter_(-1, torch.where(beacons >= 0, beacons, len(COLOURS)), True)
            candidates = visible[..., : len(COLOURS)]
        else:
            candidates = torch.ones_like(noise, dtype=torch.bool)
        pick = torch.where(candidates, noise, -1.0).max(-1)
        choose = unset & (pick.values >= 0)
        self.guess = torch.where(choose, pick.indices, self.guess)
        return self.guess

    def _front_and_sides(self, codes: torch.Tensor, target_code: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Whether the cell ahead, to the left and to the right is floor, an agent or ``target_code``."""
        view, middle = self.config.view, self.config.view // 2

        def open_cell(code: torch.Tensor) -> torch.Tensor:
            return (code == FLOOR) | (code == AGENT) | (code == target_code)

        return (
            open_cell(codes[:, :, view - 2, middle]),
            open_cell(codes[:, :, view - 1, middle - 1]),
            open_cell(codes[:, :, view - 1, middle + 1]),
        )

    def _random_turn(self, shape: torch.Size) -> torch.Tensor:
        return torch.where(torch.rand(shape, generator=self.generator) < 0.5, LEFT, RIGHT)

    def _explore(self, codes: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
        """Wander: mostly forward (where safe when the view is known), sometimes a random turn."""
        turn = self._random_turn(shape)
        wander = torch.rand(shape, generator=self.generator) < EXPLORE_TURN_PROBABILITY
        if codes is None:
            return torch.where(wander, turn, FORWARD)
        front_open, _, _ = self._front_and_sides(codes, torch.full(shape, UNKNOWN))
        return torch.where(front_open & ~wander, FORWARD, turn)

    def _follow_sound(
        self, bearing: torch.Tensor, level: torch.Tensor, codes: torch.Tensor | None, target: torch.Tensor
    ) -> torch.Tensor:
        """Turn toward the target's tone and walk to it, side-stepping blocked cells when the view is known."""
        shape = bearing.shape
        toward = torch.where(bearing > 0, RIGHT, LEFT)
        ahead = bearing.abs() <= AHEAD_HALF_ANGLE
        # A tone straight ahead and straight behind sound alike; walking away makes it fainter.
        receding = self.previous_forward & (level < self.previous_level * 0.99) & (bearing.abs() < 0.1)
        if codes is None:
            actions = torch.where(ahead, FORWARD, toward)
        else:
            front_open, left_open, right_open = self._front_and_sides(codes, BEACON + target)
            side_open = torch.where(bearing > 0, right_open, left_open)
            blocked_turn = torch.where(bearing.abs() < 1e-3, self._random_turn(shape), toward)
            sideways = (bearing.abs() <= 3 * math.pi / 4) & ~side_open & front_open
            actions = torch.where(ahead, torch.where(front_open, FORWARD, blocked_turn), toward)
            actions = torch.where(~ahead & sideways, FORWARD, actions)
        return torch.where(receding, LEFT, actions)

    def _plan_in_view(self, codes: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shortest-path action toward the target beacon inside the view, and whether one exists."""
        view, middle = self.config.view, self.config.view // 2
        is_target = codes == (BEACON + target)[..., None, None]
        passable = (codes == FLOOR) | (codes == AGENT)
        distance = torch.where(is_target, 0, UNREACHABLE)
        for _ in range(view * view):
            padded = torch.nn.functional.pad(distance, (1, 1, 1, 1), value=UNREACHABLE)
            neighbours = torch.stack(
                [padded[..., :-2, 1:-1], padded[..., 2:, 1:-1], padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]]
            ).amin(0)
            updated = torch.where(passable, torch.minimum(distance, neighbours + 1), distance)
            if torch.equal(updated, distance):
                break
            distance = updated
        here = distance[:, :, view - 1, middle]
        front = distance[:, :, view - 2, middle]
        left = distance[:, :, view - 1, middle - 1]
        # The agent's own cell is floor, so `here` is one more than its best neighbour when reachable.
        actions = torch.where(front < here, FORWARD, torch.where(left < here, LEFT, RIGHT))
        return actions, here < UNREACHABLE


def evaluate_scripted(env: BeaconEnv, policy: ScriptedBeaconPolicy) -> dict[str, float]:
    """Play one episode in each of ``env``'s parallel worlds with ``policy``; return the mean outcomes.

    Episodes that end are reset (TorchRL's auto-reset) but only the first one of each world counts.

    Keys: ``success``, ``return`` (team return), ``length``, and the failure causes ``lava``,
    ``wrong_beacon`` and ``timeout`` (fractions of episodes).
    """
    group = env.group
    count = env.num_envs
    finished = torch.zeros(count, dtype=torch.bool)
    totals = {name: torch.zeros(count) for name in ("success", "return", "length", "lava", "wrong_beacon", "timeout")}
    tensordict = env.reset()
    policy.reset(torch.ones(count, dtype=torch.bool))
    while not finished.all():
        tensordict = policy(tensordict)
        stepped, tensordict = env.step_and_maybe_reset(tensordict)
        following = stepped.get(keys.NEXT).cpu()
        live = (~finished).float()
        done = following.get(keys.DONE).squeeze(-1)
        components = following.get((group, keys.REWARD_COMPONENTS))
        reward = following.get((group, keys.REWARD))[:, 0, 0]
        lava = (components.get("explore") <= -0.5).any(1).squeeze(-1)
        wrong_beacon = (components.get("instruction") < 0).any(1).squeeze(-1)
        totals["return"] += reward * live
        totals["length"] += live
        # An episode terminates on success (everyone arrived) or on a failure of this step.
        totals["success"] += (following.get(keys.TERMINATED).squeeze(-1) & ~lava & ~wrong_beacon).float() * live
        totals["lava"] += lava.float() * live
        totals["wrong_beacon"] += wrong_beacon.float() * live
        totals["timeout"] += following.get(keys.TRUNCATED).squeeze(-1).float() * live
        finished |= done
        policy.reset(done.cpu())
    return {name: float(value.mean()) for name, value in totals.items()}
