"""Conditioned convolutions (``condition``): another modality's embedding modulates every conv layer's maps."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tensordict import TensorDict

from himo.envs import keys
from himo.modalities.audio import SpectrogramEncoderConfig
from himo.modalities.film import FilmConvolution
from himo.modalities.grid import GridEncoderConfig
from himo.modalities.image import CnnEncoderConfig
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load

GROUP = "agents"  # the group of the encoder tests' contexts (conftest.make_context)
CONDITION_KEY = keys.embedding(GROUP, "cue")
CONDITION_SIZE = 6
CONVOLUTIONAL = {"image": [CnnEncoderConfig, GridEncoderConfig], "audio": [SpectrogramEncoderConfig]}
CASES = [(modality, config) for modality, configs in CONVOLUTIONAL.items() for config in configs]


def conditioned_module(make_context, modality: str, config_class: type, leading: tuple[int, ...]):
    context = replace(make_context(modality, leading), condition_key=CONDITION_KEY, condition_size=CONDITION_SIZE)
    return config_class(key="obs", embedding_dim=8, condition="cue").build(context)


def film_layers(module) -> list[torch.nn.Linear]:
    return [layer for trunk in module.modules() if isinstance(trunk, FilmConvolution) for layer in trunk.modulations]


@pytest.mark.parametrize(("modality", "config_class"), CASES, ids=lambda case: getattr(case, "__name__", case))
def test_the_condition_modulates_the_embedding_once_its_maps_have_learned(
    make_context, random_observation, modality: str, config_class: type
) -> None:
    module = conditioned_module(make_context, modality, config_class, leading=(3, 2))
    assert module.in_keys == [keys.observation(GROUP, "obs"), CONDITION_KEY]
    observation = random_observation(modality, (3, 2))
    condition = torch.randn(3, 2, CONDITION_SIZE)

    def embed(condition: torch.Tensor) -> torch.Tensor:
        data = TensorDict({keys.observation(GROUP, "obs"): observation, CONDITION_KEY: condition}, batch_size=[3, 2])
        return module(data).get(keys.embedding(GROUP, modality))

    # The modulations start at zero: the encoder starts as its plain twin, whatever the condition.
    torch.testing.assert_close(embed(condition), embed(torch.randn(3, 2, CONDITION_SIZE)))
    assert embed(condition).shape == (3, 2, 8)

    # Their weights receive a gradient through the maps; once moved, the condition reaches the embedding.
    condition.requires_grad_(True)
    embed(condition).square().sum().backward()
    layers = film_layers(module)
    assert len(layers) == 2 and all(layer.weight.grad.abs().sum() > 0 for layer in layers)
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn_like(layer.weight))
    assert not torch.allclose(embed(condition), embed(torch.randn(3, 2, CONDITION_SIZE)))
    embed(condition).sum().backward()
    assert condition.grad.abs().sum() > 0


def test_a_condition_with_other_leading_dims_is_a_clear_error(make_context, random_observation) -> None:
    module = conditioned_module(make_context, "image", GridEncoderConfig, leading=(2,))
    data = TensorDict(
        {keys.observation(GROUP, "obs"): random_observation("image", (2,)), CONDITION_KEY: torch.randn(2, 1, CONDITION_SIZE)},
        batch_size=[2],
    )
    with pytest.raises(ValueError, match=r"conditioning embedding's leading dims \(2, 1\) do not match the observation's \(2,\)"):
        module(data)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modalities.image.condition=image", r"modalities\.image\.condition.*cannot condition itself"),
        ("modalities.image.condition=sound", r"modalities\.image\.condition.*no modality named 'sound'"),
        ("modalities.text.condition=image", r"modalities\.text.*condition applies to the convolutional encoders"),
    ],
)
def test_a_condition_the_scenario_cannot_build_is_refused_where_it_is_written(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load("babyai-gotolocal", [override])


def test_a_conditioning_modality_cannot_itself_be_conditioned() -> None:
    overrides = [
        "modalities.target={key: image, encoder: grid, condition: text}",
        "modalities.image.condition=target",
    ]
    with pytest.raises(ScenarioError, match=r"modalities\.image\.condition.*'target' is itself conditioned \(on 'text'\)"):
        load("babyai-gotolocal", overrides)
