"""Episode media in TensorBoard (``log.media_every``): one greedy episode as the agents see, hear and decide it.

Per agent group, for its first agent in one fresh env copy, until the episode ends (at most ``MEDIA_STEPS`` steps):

* each image modality (``cnn`` or ``vit`` encoder on ``uint8`` images) as an animated image, one frame per step
  (``media/<group>/<modality>``, Images tab);
* each audio modality (``spectrogram`` or ``ast`` encoder) as the step's waveforms played one after another, in
  stereo where the env gives two channels, at the modality's ``sample_rate`` (``media/<group>/<modality>``, Audio
  tab);
* a table of each step's manager decision, the worker acting, the goal it holds (with ``manager.goal``), the action
  and the team reward (``media/<group>/decisions``, Text tab).

The animation is written as a GIF image summary, which is what TensorBoard's video summaries are; building it here
with Pillow spares a video-encoding dependency. The episode draws from random generators of its own, so training is
the same with media or without.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from tensordict import TensorDictBase
from torch.utils.tensorboard import SummaryWriter
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType

from himo.agents import tags
from himo.envs import keys
from himo.hierarchy.policy import HierarchicalPolicy
from himo.scenarios.build import side_env
from himo.scenarios.schema import Scenario

MEDIA_STEPS = 256
"""The longest episode recorded; a longer one is cut there (the table says so)."""
FRAMES_PER_SECOND = 4
IMAGE_ENCODERS = ("cnn", "vit")
AUDIO_ENCODERS = ("spectrogram", "ast")
SMALLEST_SIDE = 96
"""Views are enlarged (nearest neighbour) to at least this many pixels a side: a 7x7 view is unreadable as it is."""
MEDIA_SEED_OFFSET = 2_000_003


@dataclass
class GroupEpisode:
    """What one agent of a group saw, heard and did in one episode."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Per image modality, ``[steps, height, width, 3]`` uint8."""
    sounds: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)
    """Per audio modality, ``([samples, channels] float in -1..1, sample_rate)``."""
    decisions: str = ""
    """The Markdown table of the steps."""


def record_episode(scenario: Scenario, policy: HierarchicalPolicy) -> dict[str, GroupEpisode]:
    """One greedy episode of ``policy`` in a fresh env copy, per group; the run's random generators are untouched."""
    with side_env(scenario, 1, scenario.train.seed + MEDIA_SEED_OFFSET) as env:
        collector = Collector(
            env, policy, frames_per_batch=MEDIA_STEPS, total_frames=MEDIA_STEPS, device=env.device,
            exploration_type=ExplorationType.DETERMINISTIC, auto_register_policy_transforms=False,
        )
        batch = next(iter(collector)).reshape(-1)
        collector.shutdown()
    done = batch.get((keys.NEXT, keys.DONE)).reshape(-1)
    ended = bool(done.any())
    steps = int(done.nonzero()[0, 0]) + 1 if ended else MEDIA_STEPS
    episode = batch[:steps]
    return {group: _group_episode(scenario, episode, group, ended) for group in policy.groups}


def _group_episode(scenario: Scenario, episode: TensorDictBase, group: str, ended: bool) -> GroupEpisode:
    recorded = GroupEpisode()
    observations = episode.get((group, keys.OBSERVATION))
    for name, modality in scenario.modalities.items():
        if modality.key not in observations.keys():
            continue
        values = observations.get(modality.key)[:, 0]  # the group's first agent
        if modality.encoder in IMAGE_ENCODERS and values.dtype == torch.uint8 and values.shape[-3] in (1, 3):
            recorded.images[name] = values.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()
        elif modality.encoder in AUDIO_ENCODERS:
            waveform = values.float().reshape(values.shape[0], -1, values.shape[-1])  # [steps, channels, samples]
            joined = waveform.permute(0, 2, 1).reshape(-1, waveform.shape[1]).numpy()  # [samples, channels]
            recorded.sounds[name] = (joined, modality.sample_rate)
    recorded.decisions = _decision_table(scenario, episode, group, ended)
    return recorded


def _decision_table(scenario: Scenario, episode: TensorDictBase, group: str, ended: bool) -> str:
    workers = list(scenario.workers)
    decision = episode.get((group, keys.MANAGER, keys.DECISION))[:, 0]
    # The option state the step acted under is what it hands on: the carried one sits at the step's root.
    in_force = episode.get((keys.NEXT, group, keys.MANAGER))
    option = in_force.get(keys.OPTION)[:, 0]
    goals = in_force.get(keys.GOAL)[:, 0] if keys.GOAL in in_force.keys() else None
    actions = episode.get((group, keys.ACTION))[:, 0]
    rewards = episode.get((keys.NEXT, group, keys.REWARD))[:, 0]
    header = "| step | decision | worker | goal | action | team reward |\n|---|---|---|---|---|---|"
    rows = []
    for step in range(option.shape[0]):
        worker = int(option[step])
        goal = "" if goals is None else " ".join(f"{value:+.2f}" for value in goals[step, worker].tolist())
        action = " ".join(f"{value:g}" for value in actions[step].reshape(-1).tolist())
        rows.append(
            f"| {step} | {'yes' if bool(decision[step]) else ''} | {workers[worker]} | {goal} | {action} "
            f"| {rewards[step].sum().item():+.3f} |"
        )
    ending = "" if ended else f"\n\n(cut at {MEDIA_STEPS} steps: the episode had not ended)"
    return header + "\n" + "\n".join(rows) + ending


def _gif(frames: np.ndarray) -> tuple[bytes, int, int]:
    """An animated GIF of ``[steps, height, width, 3]`` frames, enlarged to ``SMALLEST_SIDE``; its bytes and size."""
    height, width = frames.shape[1:3]
    scale = max(1, -(-SMALLEST_SIDE // min(height, width)))
    images = [Image.fromarray(frame).resize((width * scale, height * scale), Image.NEAREST) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=1000 // FRAMES_PER_SECOND, loop=0
    )
    return buffer.getvalue(), height * scale, width * scale


def _wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit WAV of ``[samples, channels]`` values, scaled so the loudest is at full range."""
    peak = float(np.abs(samples).max())
    scaled = samples / peak if peak > 0 else samples
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(samples.shape[1])
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        file.writeframes((scaled * np.iinfo(np.int16).max).astype("<i2").tobytes())
    return buffer.getvalue()


def write_episode(writer: SummaryWriter, episode: dict[str, GroupEpisode], step: int) -> None:
    """Log a recorded episode at ``step`` (frames)."""
    summaries = []
    for group, recorded in episode.items():
        for name, frames in recorded.images.items():
            encoded, height, width = _gif(frames)
            image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encoded)
            summaries.append(Summary.Value(tag=tags.media(group, name), image=image))
        for name, (samples, sample_rate) in recorded.sounds.items():
            audio = Summary.Audio(
                sample_rate=sample_rate, num_channels=samples.shape[1], length_frames=samples.shape[0],
                encoded_audio_string=_wav(samples, sample_rate), content_type="audio/wav",
            )
            summaries.append(Summary.Value(tag=tags.media(group, name), audio=audio))
        writer.add_text(tags.media(group, tags.MEDIA_DECISIONS), recorded.decisions, step)
    # SummaryWriter has no public call for a prebuilt summary; its add_video and add_audio write through this one.
    writer._get_file_writer().add_summary(Summary(value=summaries), step)
