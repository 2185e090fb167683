"""The HParams tab: a run's main scenario fields and the tags it is compared by, in its own event file."""

from __future__ import annotations

from pathlib import Path

from short_runs import SMALL_BEACON
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from himo.scenarios.loader import load
from himo.scenarios.run import train


def hparams_of(folder: Path) -> tuple[dict, list[str]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
    return values, [metric.name.tag for metric in experiment.metric_infos]


def test_a_run_writes_its_scenario_fields_and_metric_tags_as_hparams(tmp_path: Path) -> None:
    result = train(load("beacon", [*SMALL_BEACON, "algorithm.workers.lr=0.002", f"log.dir={tmp_path}"]), progress=False)
    values, metrics = hparams_of(result.folder)
    assert values["algorithm.workers.lr"] == 0.002 and values["env.id"] == "himo/beacon"
    assert values["manager.mode"] == "select" and values["workers"] == 3 and values["train.frames"] == 512
    assert values["manager.goal"] == "null"
    assert metrics == ["episode/return", "time/fps", "episode/success_rate"]  # the world reports its successes


def test_each_groups_return_is_a_metric_and_no_success_without_a_measure(tmp_path: Path) -> None:
    short = ["env.num_envs=2", "train.frames=200", "train.frames_per_batch=100", f"log.dir={tmp_path}"]
    result = train(load("speaker-listener", short), progress=False)
    _, metrics = hparams_of(result.folder)
    assert metrics == ["speaker/episode/return", "listener/episode/return", "time/fps"]


def test_the_layout_puts_each_groups_channels_choices_and_losses_on_one_chart_each(tmp_path: Path) -> None:
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    short = ["env.num_envs=2", "train.frames=200", "train.frames_per_batch=100", f"log.dir={tmp_path}"]
    result = train(load("speaker-listener", short), progress=False)
    events = EventAccumulator(str(result.folder))
    events.Reload()
    (written,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(written.tensor_proto.string_val[0])
    charts = {category.title: {chart.title: list(chart.multiline.tag) for chart in category.chart} for category in layout.category}
    assert set(charts) == {"speaker", "listener"}
    logged = events.Tags()["scalars"]
    channels = [tag for tag in logged if any(re.search(pattern, tag) for pattern in charts["listener"]["reward channels"])]
    assert sorted(channels) == ["listener/reward/channel/vector", "listener/reward/env"]
    losses = charts["speaker"]["losses, manager and workers"]
    assert any(re.search(pattern, "speaker/loss/workers/critic") for pattern in losses)
    assert not any(re.search(pattern, "listener/loss/workers/critic") for pattern in losses)
