"""Every registered encoder builds from defaults, handles any leading batch dims, trains or stays frozen."""

from __future__ import annotations

from typing import Annotated, Union

import pytest
import torch
from pydantic import Field, TypeAdapter
from tensordict import TensorDict
from torchrl.data import Categorical

from himo.envs import keys
from himo.modalities.base import EncoderContext
from himo.modalities.registry import ENCODERS

GROUP = "agents"
BATCHES = [(4,), (3, 2), (2, 3, 2)]


def encode(module, context: EncoderContext, observation, batch: tuple[int, ...]) -> torch.Tensor:
    data = TensorDict({context.in_key: observation}, batch_size=batch)
    return module(data)[context.out_key]


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_builds_from_defaults_for_any_batch_dims(name, make_context, random_observation):
    config = ENCODERS[name](key="obs", encoder=name)
    modality = config.modality
    context = make_context(modality, leading=(4, 2))  # the spec's own env/agent dims do not matter
    module = config.build(context)
    for batch in BATCHES:
        embedding = encode(module, context, random_observation(modality, batch), batch)
        assert embedding.shape == (*batch, config.embedding_dim)
        assert embedding.dtype == torch.float32
        assert torch.isfinite(embedding).all()


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_rows_are_encoded_independently_of_the_batch_layout(name, make_context, random_observation):
    config = ENCODERS[name](key="obs", encoder=name, embedding_dim=8)
    context = make_context(config.modality)
    module = config.build(context)
    observation = random_observation(config.modality, (2, 3))
    nested = encode(module, context, observation, (2, 3))
    flat_observation = (
        {key: value.flatten(0, 1) for key, value in observation.items()}
        if isinstance(observation, dict)
        else observation.flatten(0, 1)
    )
    flat = encode(module, context, flat_observation, (6,))
    torch.testing.assert_close(nested.flatten(0, 1), flat, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_gradient_reaches_every_parameter(name, make_context, random_observation):
    config = ENCODERS[name](key="obs", encoder=name, embedding_dim=8)
    context = make_context(config.modality)
    module = config.build(context)
    module.train()
    encode(module, context, random_observation(config.modality, (3, 2)), (3, 2)).square().sum().backward()
    parameters = dict(module.named_parameters())
    assert parameters and all(parameter.requires_grad for parameter in parameters.values())
    missing = [parameter_name for parameter_name, parameter in parameters.items() if parameter.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert any(parameter.grad.abs().sum() > 0 for parameter in parameters.values())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_frozen_encoder_has_no_trainable_parameters(name, make_context, random_observation):
    config = ENCODERS[name](key="obs", encoder=name, embedding_dim=8, frozen=True)
    context = make_context(config.modality)
    module = config.build(context)
    module.train()  # a policy's .train() must not make a frozen encoder trainable
    before = {key: value.clone() for key, value in module.state_dict().items()}
    embedding = encode(module, context, random_observation(config.modality, (3, 2)), (3, 2))
    assert not embedding.requires_grad
    assert all(not parameter.requires_grad for parameter in module.parameters())
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_registry_makes_a_discriminated_union(make_context):
    union = TypeAdapter(Annotated[Union[tuple(ENCODERS.values())], Field(discriminator="encoder")])
    for name, config_class in ENCODERS.items():
        config = union.validate_python({"key": "obs", "encoder": name})
        assert type(config) is config_class and config.encoder == name
        assert config_class.modality in {"vector", "image", "text", "audio"}
        for field_name, field in config_class.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"


def test_mlp_one_hot_encodes_a_categorical_observation():
    context = EncoderContext(
        in_key=keys.observation(GROUP, "direction"),
        out_key=keys.embedding(GROUP, "direction"),
        spec=Categorical(4, shape=(3, 2), dtype=torch.int64),
    )
    module = ENCODERS["mlp"](key="direction", encoder="mlp", hidden_sizes=(), embedding_dim=4).build(context)
    linear = module.module[1][0]
    direction = torch.tensor([[0, 3], [2, 1]])
    embedding = encode(module, context, direction, (2, 2))
    torch.testing.assert_close(embedding, linear.weight.T[direction] + linear.bias)


def test_mlp_casts_bool_and_int_vectors(make_context):
    context = make_context("vector")
    module = ENCODERS["mlp"](key="obs", encoder="mlp").build(context)
    flags = torch.rand(4, 5) > 0.5
    torch.testing.assert_close(encode(module, context, flags, (4,)), encode(module, context, flags.float(), (4,)))


@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_uint8_images_are_scaled_to_unit_range(name, make_context):
    context = make_context("image")
    module = ENCODERS[name](key="obs", encoder=name).build(context)
    pixels = torch.randint(0, 256, (4, 3, 7, 7), dtype=torch.uint8)
    torch.testing.assert_close(encode(module, context, pixels, (4,)), encode(module, context, pixels / 255.0, (4,)))


def test_text_without_tokens_gives_a_finite_embedding(make_context):
    context = make_context("text")
    module = ENCODERS["transformer"](key="obs", encoder="transformer").build(context)
    empty = {
        keys.INPUT_IDS: torch.zeros(3, 8, dtype=torch.int64),
        keys.ATTENTION_MASK: torch.zeros(3, 8, dtype=torch.bool),
    }
    assert torch.isfinite(encode(module, context, empty, (3,))).all()


def test_vit_patch_size_defaults_to_at_most_eight_patches_a_side(make_context):
    context = make_context("image")
    default = ENCODERS["vit"](key="obs", encoder="vit").build(context)
    assert default.module.model.config.patch_size == 1
    coarse = ENCODERS["vit"](key="obs", encoder="vit", patch_size=4).build(context)
    assert coarse.module.model.config.image_size == (8, 8)  # 7x7 zero-padded to whole patches
    assert torch.isfinite(encode(coarse, context, torch.rand(2, 3, 7, 7), (2,))).all()
