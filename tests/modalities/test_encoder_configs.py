"""Encoder configs reject unknown options, out-of-range values and contradictory settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from himo.modalities.registry import ENCODERS


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_unknown_option_is_rejected(name):
    with pytest.raises(ValidationError, match="hiden"):
        ENCODERS[name](key="obs", encoder=name, hiden=32)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_embedding_dim_must_be_positive(name):
    with pytest.raises(ValidationError, match="embedding_dim"):
        ENCODERS[name](key="obs", encoder=name, embedding_dim=0)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mlp", {"hidden_sizes": [64, 0]}, "hidden_sizes"),
        ("mlp", {"activation": "sigmoidish"}, "activation"),
        ("cnn", {"channels": []}, "channels"),
        ("cnn", {"stride": 9}, "stride"),
        ("vit", {"patch_size": 0}, "patch_size"),
        ("vit", {"hidden": 30, "heads": 4}, "multiple of heads"),
        ("transformer", {"layers": 100}, "layers"),
        ("transformer", {"train_head": True}, "only applies with frozen"),
        ("transformer", {"pretrained": "/models/minilm", "hidden": 32}, "remove them with pretrained"),
        ("spectrogram", {"n_fft": 2}, "n_fft"),
        ("spectrogram", {"n_fft": 64, "mel_bins": 40}, "mel_bins"),
        ("ast", {"patch_size": 1}, "patch_size"),
    ],
)
def test_out_of_range_or_contradictory_values_are_rejected(name, options, message):
    with pytest.raises(ValidationError, match=message):
        ENCODERS[name](key="obs", encoder=name, **options)


def test_configs_are_frozen_and_read_yaml_lists():
    config = ENCODERS["cnn"](key="view", encoder="cnn", channels=[8, 8, 16])
    assert config.channels == (8, 8, 16)
    with pytest.raises(ValidationError):
        config.stride = 1
