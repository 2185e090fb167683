"""The beacon world's sound is honest: direction, distance and colour can be heard."""

from __future__ import annotations

import pytest
import torch

from himo.envs.builtin import make_builtin_env
from himo.envs.builtin.beacon import BeaconEnv
from himo.envs.builtin.beacon_config import COLOURS, TONES_HZ
from himo.envs.builtin.beacon_world import BEACON, FLOOR

NORTH = 3


def one_beacon_env() -> BeaconEnv:
    return make_builtin_env("beacon", num_envs=1, seed=0, agents=1, beacons=1, hazards=0)


def hear(env: BeaconEnv, beacon: tuple[int, int], colour: int = 0, agent: tuple[int, int] = (4, 4)) -> torch.Tensor:
    """Waveform ``[2, samples]`` heard by an agent at ``agent`` facing north with one beacon at ``beacon``."""
    world = env.world
    world.grid[0, 1:-1, 1:-1] = FLOOR
    world.grid[0, beacon[1], beacon[0]] = BEACON + colour
    world.beacon_position[0, 0] = torch.tensor(beacon)
    world.beacon_colour[0, 0] = colour
    world.agent_position[0, 0] = torch.tensor(agent)
    world.agent_direction[0, 0] = NORTH
    return env.renderer.sound()[0, 0]


def loudness(wave: torch.Tensor) -> torch.Tensor:
    return wave.pow(2).mean(-1).sqrt()


def test_source_on_the_left_is_louder_in_the_left_ear_and_reaches_it_first():
    env = one_beacon_env()
    left_source = hear(env, (2, 4))  # facing north, west is on the left
    right_source = hear(env, (6, 4))
    assert loudness(left_source)[0] > 1.5 * loudness(left_source)[1]
    assert loudness(right_source)[1] > 1.5 * loudness(right_source)[0]
    # Interaural time difference: the near ear leads, so its phase at the tone is ahead.
    bin_index = round(TONES_HZ[0] * env.config.samples / env.config.sample_rate)
    for wave, near, far in ((left_source, 0, 1), (right_source, 1, 0)):
        spectrum = torch.fft.rfft(wave, dim=-1)[:, bin_index]
        assert torch.angle(spectrum[near] * spectrum[far].conj()) > 0.1


def test_farther_beacon_is_quieter_and_behind_is_quieter_than_ahead():
    env = one_beacon_env()
    near, far = float(loudness(hear(env, (4, 3))).mean()), float(loudness(hear(env, (4, 1))).mean())
    assert far == pytest.approx(near / 3, rel=1e-3)  # pressure falls as 1 / distance
    ahead, behind = loudness(hear(env, (4, 2))).mean(), loudness(hear(env, (4, 6))).mean()
    assert behind < 0.75 * ahead


@pytest.mark.parametrize("colour", range(len(COLOURS)))
def test_dominant_frequency_is_the_colour_tone(colour: int):
    env = one_beacon_env()
    wave = hear(env, (6, 2), colour=colour)
    spectrum = torch.fft.rfft(wave, dim=-1).abs().sum(0)
    frequencies = torch.fft.rfftfreq(env.config.samples, d=1.0 / env.config.sample_rate)
    bin_width = env.config.sample_rate / env.config.samples
    assert float(frequencies[spectrum.argmax()]) == pytest.approx(TONES_HZ[colour], abs=bin_width)


def test_every_beacon_is_heard_and_noise_is_seeded():
    env = make_builtin_env("beacon", num_envs=2, seed=3, beacons=3, noise=0.01)
    other = make_builtin_env("beacon", num_envs=2, seed=3, beacons=3, noise=0.01)
    key = ("agents", "observation", "sound")
    sound, again = env.reset().get(key), other.reset().get(key)
    assert torch.equal(sound, again)
    spectrum = torch.fft.rfft(sound, dim=-1).abs()  # [E, A, 2, bins]
    bins = torch.tensor(TONES_HZ) * env.config.samples / env.config.sample_rate
    for env_index in range(2):
        present = set(env.world.beacon_colour[env_index].tolist())
        levels = spectrum[env_index, :, :, bins.round().long()].mean((0, 1))
        assert set(levels.topk(3).indices.tolist()) == present
