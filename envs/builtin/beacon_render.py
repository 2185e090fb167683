"""What the agents perceive of a :class:`BeaconWorld`: the egocentric image, the mission, the sound.

Sound model (per agent, per beacon, per ear), honest to simple acoustics:
    * every beacon emits a sine tone whose frequency is fixed by its colour (``TONES_HZ``);
    * pressure amplitude falls as ``1 / distance`` (distance in cells of ``CELL_METRES``);
    * each ear is a sub-cardioid pointing ``EAR_ANGLE`` to its side of the nose, gain
      ``0.6 + 0.4 cos(bearing -/+ EAR_ANGLE)``: a source on the left is louder in the left ear
      (interaural level difference) and a source behind is quieter than one in front;
    * the wave reaches each ear after ``distance / c`` plus or minus half the interaural time
      difference ``HEAD_METRES / c * sin(bearing)`` (bearing 0 ahead, positive to the right).
The waveform of one ear is the sum over beacons; tones are evaluated as
``g sin(w (t - delay)) = g cos(w delay) sin(w t) - g sin(w delay) cos(w t)``, so one step costs a
small batched matrix product against precomputed sine/cosine tables.
"""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedTokenizerFast

from himo.envs.builtin.beacon_config import COLOURS, MISSION_TEMPLATES, TONES_HZ, BeaconConfig
from himo.envs.builtin.beacon_world import AGENT, BEACON, FLOOR, LAVA, NUMBER_OF_CODES, WALL, BeaconWorld
from himo.envs.text import build_word_tokenizer, encode_texts

SPEED_OF_SOUND = 343.0  # metres per second
CELL_METRES = 1.0
HEAD_METRES = 0.15  # keeps the interaural phase of the highest tone below pi (unambiguous)
EAR_ANGLE = math.pi / 3
EAR_BASE_GAIN, EAR_DIRECTIONAL_GAIN = 0.6, 0.4

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (40, 200, 40),
    "blue": (40, 80, 240),
    "yellow": (240, 230, 40),
    "purple": (150, 50, 200),
    "cyan": (40, 220, 220),
}
# RGB of each cell code; beacons are drawn as discs and agents as small squares on the floor.
PALETTE = torch.zeros(NUMBER_OF_CODES, 3, dtype=torch.uint8)
PALETTE[FLOOR] = torch.tensor((0, 0, 0))
PALETTE[WALL] = torch.tensor((110, 110, 110))
PALETTE[LAVA] = torch.tensor((255, 128, 0))
PALETTE[AGENT] = torch.tensor((255, 255, 255))
for _index, _name in enumerate(COLOURS):
    PALETTE[BEACON + _index] = torch.tensor(COLOUR_RGB[_name])


def ear_gains(bearing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Directional gains (left, right) of the two ears for a source at ``bearing`` radians."""
    left = EAR_BASE_GAIN + EAR_DIRECTIONAL_GAIN * torch.cos(bearing + EAR_ANGLE)
    right = EAR_BASE_GAIN + EAR_DIRECTIONAL_GAIN * torch.cos(bearing - EAR_ANGLE)
    return left, right


def tile_images(tile: int) -> torch.Tensor:
    """Pixel pattern ``[codes, tile, tile, 3]`` uint8 of every cell code."""
    centre = (torch.arange(tile) + 0.5 - tile / 2).abs()
    disc = centre[:, None] ** 2 + centre[None, :] ** 2 <= (0.4 * tile) ** 2
    square = (centre[:, None] <= tile / 4 + 0.5) & (centre[None, :] <= tile / 4 + 0.5)
    shapes = torch.ones(NUMBER_OF_CODES, tile, tile, dtype=torch.bool)
    shapes[AGENT] = square
    shapes[BEACON:] = disc
    return torch.where(shapes[..., None], PALETTE[:, None, None, :], PALETTE[FLOOR])


def mission_words() -> list[str]:
    """The fixed word list of every mission the world can emit."""
    words: list[str] = []
    for template in MISSION_TEMPLATES:
        for colour in COLOURS:
            words.extend(word for word in template.format(colour=colour).split() if word not in words)
    return words


class BeaconRenderer:
    """Turns a world's state into observation tensors (image, mission tokens, sound, direction).

    Every method takes an optional ``index`` (env indices) to render only those envs.
    """

    def __init__(self, world: BeaconWorld) -> None:
        """Precompute the tile images, mission token table and tone tables for ``world``."""
        config: BeaconConfig = world.config
        self.world = world
        device = world.device
        tile = config.tile
        # Image rows of `tile` pixels: row (code * 3 + channel) * tile + pixel_row of a cell's tile.
        self.tile_rows = tile_images(tile).permute(0, 3, 1, 2).reshape(-1, tile).to(device)
        channel_and_row = torch.arange(3)[:, None] * tile + torch.arange(tile)[None, :]
        self.channel_and_row = channel_and_row.view(1, 1, 3, 1, tile, 1).to(device)
        self.tokenizer: PreTrainedTokenizerFast = build_word_tokenizer(mission_words())
        texts = [template.format(colour=colour) for template in MISSION_TEMPLATES for colour in COLOURS]
        self.mission_length = max(len(self.tokenizer(text)["input_ids"]) for text in texts)
        input_ids, attention_mask = encode_texts(self.tokenizer, texts, self.mission_length)
        shape = (len(MISSION_TEMPLATES), len(COLOURS), self.mission_length)
        self.mission_ids = input_ids.view(shape).to(device)
        self.mission_mask = attention_mask.view(shape).to(device)
        self.frequencies = torch.tensor(TONES_HZ, device=device)
        time = torch.arange(config.samples, device=device, dtype=torch.float64) / config.sample_rate
        phase = 2 * math.pi * self.frequencies.double()[:, None] * time[None, :]
        # Rows 0..C-1 are sin(w t) per colour, rows C..2C-1 are cos(w t).
        self.tone_table = torch.cat([phase.sin(), phase.cos()]).float()  # [2 * colours, samples]

    def view(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Egocentric image ``[E, A, 3, V*tile, V*tile]`` uint8 (agent at the bottom middle, facing up)."""
        config = self.world.config
        view, tile = config.view, config.tile
        codes = self.world.view_codes(index).long()
        count, agents = codes.shape[:2]
        rows = codes.view(count, agents, 1, view, 1, view) * (3 * tile) + self.channel_and_row
        pixels = self.tile_rows.index_select(0, rows.flatten())
        return pixels.view(count, agents, 3, view * tile, view * tile)

    def mission(self, index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mission token ids ``[E, A, L]`` int64 and attention mask ``[E, A, L]`` bool."""
        world = self.world
        colour = world.target_colour(index)
        template = world.template if index is None else world.template[index]
        return self.mission_ids[template, colour], self.mission_mask[template, colour]

    def direction(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Compass direction of every agent as a one-hot ``[E, A, 4]`` float."""
        direction = self.world.agent_direction if index is None else self.world.agent_direction[index]
        return torch.nn.functional.one_hot(direction, 4).float()

    def sound(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Two-ear waveform ``[E, A, 2, samples]`` float (left ear first) of every beacon's tone."""
        world, config = self.world, self.world.config
        beacon_position, beacon_colour = world.beacon_position, world.beacon_colour
        agent_position, agent_direction = world.agent_position, world.agent_direction
        if index is not None:
            beacon_position, beacon_colour = beacon_position[index], beacon_colour[index]
            agent_position, agent_direction = agent_position[index], agent_direction[index]
        offset = (beacon_position.unsqueeze(1) - agent_position.unsqueeze(2)).float()  # [E, A, B, 2]
        forward = world.directions[agent_direction].float().unsqueeze(2)  # [E, A, 1, 2]
        right = world.directions[(agent_direction + 1) % 4].float().unsqueeze(2)
        bearing = torch.atan2((offset * right).sum(-1), (offset * forward).sum(-1))
        distance = offset.norm(dim=-1).clamp_min(1.0)
        left_gain, right_gain = ear_gains(bearing)
        gain = torch.stack([left_gain, right_gain], dim=2) / distance.unsqueeze(2)  # [E, A, 2, B]
        half_itd = 0.5 * HEAD_METRES / SPEED_OF_SOUND * torch.sin(bearing)
        travel = distance * CELL_METRES / SPEED_OF_SOUND
        delay = torch.stack([travel + half_itd, travel - half_itd], dim=2)  # source on the right: right ear first
        angular = 2 * math.pi * self.frequencies[beacon_colour]  # [E, B]
        phase = angular[:, None, None, :] * delay
        count, agents, _, beacons = gain.shape
        weights = torch.cat([gain * phase.cos(), -gain * phase.sin()], dim=-1).view(count, agents * 2, 2 * beacons)
        tones = torch.cat([beacon_colour, beacon_colour + len(COLOURS)], dim=1)  # [E, 2B]
        table = self.tone_table.index_select(0, tones.flatten()).view(count, 2 * beacons, config.samples)
        wave = torch.bmm(weights, table).view(count, agents, 2, config.samples)
        if config.noise > 0:
            wave = wave + config.noise * torch.randn(wave.shape, generator=world.generator, device=world.device)
        return wave
