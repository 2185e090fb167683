"""Episode media (log.media_every): the views as an animation, the sound as stereo audio and the manager's choices
and goals as a table, one frame, one step of sound and one row per step of one episode; training is unchanged."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from himo.agents import tags
from himo.scenarios.loader import load
from himo.scenarios.media import MEDIA_STEPS
from himo.scenarios.run import train

EVERYTHING = {"images": 0, "audio": 0, "tensors": 0, "scalars": 0}
BEACON = ["train.frames=1024", "train.frames_per_batch=512", "env.num_envs=4", "manager.goal={size: 4}"]


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance=EVERYTHING)
    accumulator.Reload()
    return accumulator


def decisions(accumulator: EventAccumulator, group: str) -> list[list[str]]:
    """The rows of the newest decisions table, as cells."""
    table = accumulator.Tensors(f"{tags.media(group, tags.MEDIA_DECISIONS)}/text_summary")[-1]
    lines = table.tensor_proto.string_val[0].decode().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|")]


def test_media_show_one_episode_step_by_step(tmp_path: Path) -> None:
    scenario = load("beacon", [*BEACON, "log.media_every=512", f"log.dir={tmp_path}"])
    accumulator = events(train(scenario, progress=False).folder)
    animations = accumulator.Images(tags.media("agents", "image"))
    sounds = accumulator.Audio(tags.media("agents", "audio"))
    assert [event.step for event in animations] == [512, 1024] == [event.step for event in sounds]
    rows = decisions(accumulator, "agents")
    steps = len(rows)
    assert 1 <= steps <= MEDIA_STEPS
    assert rows[0][1] == "yes", "the manager decides at the episode's first step"
    assert {row[2] for row in rows} <= set(scenario.workers)
    assert all(len(row[3].split()) == 4 for row in rows), "each row shows the acting worker's goal"
    animation = Image.open(io.BytesIO(animations[-1].encoded_image_string))
    assert animation.format == "GIF" and animation.n_frames == steps
    with wave.open(io.BytesIO(sounds[-1].encoded_audio_string)) as sound:
        assert sound.getnchannels() == 2, "the beacon's left and right ears"
        samples_per_step = scenario.env.kwargs.get("samples", 256)
        assert sound.getnframes() == steps * samples_per_step


def test_media_leave_training_unchanged(tmp_path: Path) -> None:
    curves = []
    for media in ("null", "512"):
        scenario = load("beacon", [*BEACON, f"log.media_every={media}", f"log.dir={tmp_path / media}"])
        accumulator = events(train(scenario, progress=False).folder)
        curves.append([(event.step, event.value) for event in accumulator.Scalars("loss/workers/objective")])
    assert curves[0] == curves[1]


def test_each_group_gets_its_table(tmp_path: Path) -> None:
    overrides = ["train.frames=256", "train.frames_per_batch=256", "env.num_envs=2", "log.media_every=256"]
    accumulator = events(train(load("speaker-listener", [*overrides, f"log.dir={tmp_path}"]), progress=False).folder)
    for group in ("speaker", "listener"):
        assert decisions(accumulator, group), f"no decisions table for {group}"
    assert not accumulator.Tags()["images"], "speaker-listener has no image modality"
