"""Settings and fixed vocabulary of the ``himo/beacon`` world (colours, tones, actions, rewards).

Everything a user may pass as ``env.kwargs`` in a scenario is a field of :class:`BeaconConfig`;
:func:`BeaconConfig.from_kwargs` validates them and names the valid ones on a typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

# Beacon colours; each colour always emits the same tone (Hz), so the colour a mission names
# can be heard without being seen. With the default audio settings (4000 Hz, 256 samples) every
# tone falls exactly on an FFT bin (bins are 15.625 Hz apart).
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "cyan")
TONES_HZ: tuple[float, ...] = (250.0, 375.0, 500.0, 625.0, 750.0, 875.0)
TONE_SPACING_HZ = 125.0

# Mission phrasings; the colour word is the only part that varies with the target.
MISSION_TEMPLATES: tuple[str, ...] = (
    "go to the {colour} beacon",
    "find the {colour} beacon",
    "walk to the {colour} beacon",
    "touch the {colour} beacon",
)

ACTION_NAMES: list[str] = ["left", "right", "forward", "stay"]
LEFT, RIGHT, FORWARD, STAY = range(len(ACTION_NAMES))

# With ``action_parts`` the action is composite: a turn and a move, applied in that order in one step.
# Index 0 of each part (no turn, stay) is what a part that no acting worker controls defaults to.
ACTION_PARTS: dict[str, list[str]] = {"turn": ["none", "left", "right"], "move": ["stay", "forward"]}

# Reward components, one per modality (see envs/builtin/beacon.py for their definitions).
COMPONENT_NAMES: tuple[str, ...] = ("explore", "instruction", "approach_sound")


@dataclasses.dataclass(frozen=True)
class BeaconConfig:
    """Parameters of the beacon world.

    Attributes:
        agents: number of agents in the single group ``"agents"``.
        size: side of the square room in cells, outer walls included.
        beacons: number of beacons (distinct colours, at most ``len(COLOURS)``).
        hazards: number of lava cells; entering one ends the episode as a failure.
        view: side of the egocentric square view in cells (odd); the agent sits at the middle of
            its bottom row and sees ``view - 1`` cells ahead and ``view // 2`` to each side.
        tile: pixels per cell side in the rendered view image.
        max_steps: episode length after which the episode is truncated.
        sample_rate: audio sample rate in Hz.
        samples: audio samples per step and ear.
        noise: standard deviation of white noise added to each ear's waveform.
        action_parts: make the action composite, ``{"turn": none|left|right, "move": stay|forward}``
            (both applied in one step, the turn first), instead of one of ``ACTION_NAMES``.
    """

    agents: int = 2
    size: int = 9
    beacons: int = 3
    hazards: int = 4
    view: int = 5
    tile: int = 4
    max_steps: int = 48
    sample_rate: int = 4000
    samples: int = 256
    noise: float = 0.0
    action_parts: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = {"float": float, "bool": bool}.get(str(getattr(field.type, "__name__", field.type)), int)
            if expected is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"himo/beacon: {field.name} must be bool, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                expected is int and not isinstance(value, int)
            ):
                raise ValueError(f"himo/beacon: {field.name} must be {expected.__name__}, got {value!r}")
        interior = (self.size - 2) ** 2
        # Upper bounds stop values that would pass here and fail later: tensors too large to allocate,
        # or a step count beyond int64. They are far above any useful setting.
        checks = [
            (1 <= self.agents <= 256, "agents must be in 1..256"),
            (5 <= self.size <= 64, "size must be in 5..64"),
            (1 <= self.beacons <= len(COLOURS), f"beacons must be in 1..{len(COLOURS)}"),
            (self.hazards >= 0, "hazards must be >= 0"),
            (
                self.beacons + self.hazards + self.agents <= interior // 2,
                f"beacons + hazards + agents must fill at most half of the {interior} free cells",
            ),
            (3 <= self.view <= 31 and self.view % 2 == 1, "view must be odd and in 3..31"),
            (1 <= self.tile <= 32, "tile must be in 1..32"),
            (1 <= self.max_steps <= 1_000_000, "max_steps must be in 1..1000000"),
            (self.sample_rate > 2 * max(TONES_HZ), f"sample_rate must exceed {2 * max(TONES_HZ):.0f} Hz (Nyquist)"),
            (self.sample_rate <= 192_000, "sample_rate must be at most 192000 Hz"),
            (1 <= self.samples <= 65_536, "samples must be in 1..65536"),
            (
                self.samples >= 1 and self.sample_rate / self.samples <= TONE_SPACING_HZ / 2,
                "samples must be >= sample_rate / 62.5 so neighbouring tones are two FFT bins apart",
            ),
            (0.0 <= self.noise <= 100.0 and math.isfinite(self.noise), "noise must be a finite number in 0..100"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"himo/beacon: {message} (got {self})")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> BeaconConfig:
        """Validated config from scenario kwargs; an unknown name raises ``ValueError`` listing valid ones."""
        valid = [field.name for field in dataclasses.fields(cls)]
        for name in kwargs:
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"himo/beacon: unknown kwarg {name!r}{hint}; valid kwargs are {valid}")
        return cls(**kwargs)
