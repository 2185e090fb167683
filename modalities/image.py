"""Image observations ``[..., channels, height, width]``: a small CNN, or a small ViT."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field, PositiveInt, model_validator
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.modules import ConvNet
from transformers import ViTConfig, ViTModel

from himo.modalities.base import EncoderConfig, EncoderContext
from himo.modalities.film import ConditionedEncoder, FilmConvolution
from himo.modalities.layers import ACTIVATIONS, Activation, check_heads_divide_hidden, flatten_leading, unflatten_leading
from himo.modalities.large_models import LargeModelFields


class ImageToFloat(nn.Module):
    """Cast an image to float, scaling ``uint8`` pixels from 0-255 to 0-1."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Float image of the same shape."""
        if image.dtype == torch.uint8:
            return image.float() / 255.0
        return image.float()


def image_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """The trailing ``(channels, height, width)`` of a spec shape, with a clear error when too short."""
    if len(shape) < 3:
        raise ValueError(f"an image observation must be [..., channels, height, width]; got shape {tuple(shape)}")
    channels, height, width = (int(size) for size in shape[-3:])
    return channels, height, width


class ConvolutionFields(EncoderConfig):
    """Settings of the convolutional trunk shared by the image ``cnn`` and the audio ``spectrogram`` encoders."""

    channels: tuple[PositiveInt, ...] = Field(
        (16, 32), min_length=1, max_length=8, description="Output channels of each conv layer."
    )
    kernel_size: int = Field(3, ge=1, le=11, description="Side of every conv kernel (same-padded).")
    stride: int = Field(2, ge=1, le=4, description="Stride of every conv layer.")
    activation: Activation = Field("relu", description="Activation after each conv layer.")
    condition: str | None = Field(
        None,
        description="Another modality whose embedding scales and shifts every conv layer's feature maps (FiLM), "
        "e.g. the mission for a grid view; null: none.",
    )

    @property
    def conditioned_on(self) -> str | None:
        """See ``condition``."""
        return self.condition

    def conditioned(
        self, prepare: nn.Module, input_shape: tuple[int, int, int], event_dims: int, context: EncoderContext
    ) -> ConditionedEncoder:
        """``prepare`` (observation to feature maps of ``input_shape``), then conv layers modulated by the embedding
        at ``context.condition_key`` (``himo.modalities.film``)."""
        if context.condition_key is None:
            raise ValueError(f"modality conditioned on {self.condition!r} was built without that modality's embedding")
        trunk = FilmConvolution(
            input_shape,
            self.channels,
            self.kernel_size,
            self.stride,
            self.activation,
            context.condition_size,
            self.embedding_dim,
        )
        return ConditionedEncoder(prepare, trunk, event_dims)

    def convolution(self, input_shape: tuple[int, int, int]) -> nn.Sequential:
        """Conv layers (same-padding) over ``input_shape``, flattened, then a linear layer to ``embedding_dim``.

        Works on ``[..., channels, height, width]`` for any leading dims (TorchRL's ``ConvNet``
        flattens them).
        """
        trunk = ConvNet(
            in_features=input_shape[0],
            num_cells=list(self.channels),
            kernel_sizes=self.kernel_size,
            strides=self.stride,
            paddings=self.kernel_size // 2,
            activation_class=ACTIVATIONS[self.activation],
        )
        with torch.no_grad():
            flat_size = trunk(torch.zeros(1, *input_shape)).shape[-1]
        return nn.Sequential(trunk, nn.Linear(flat_size, self.embedding_dim))


class CnnEncoderConfig(ConvolutionFields):
    """``cnn``: a small convolutional network over a channels-first image."""

    modality: ClassVar[str] = "image"

    encoder: Literal["cnn"] = Field("cnn", description="Encoder name.")

    def build(self, context: EncoderContext) -> TensorDictModule:
        """CNN ``[..., C, H, W] -> [..., embedding_dim]``."""
        shape = image_shape(context.spec.shape)
        if self.condition is not None:
            return self.wrap(self.conditioned(ImageToFloat(), shape, 3, context), context)
        return self.wrap(nn.Sequential(ImageToFloat(), *self.convolution(shape)), context)


class VisionTransformer(nn.Module):
    """A ``transformers`` ViT over images of any leading dims, pooled on its [CLS] token."""

    def __init__(self, config: ViTConfig, embedding_dim: int) -> None:
        super().__init__()
        self.to_float = ImageToFloat()
        self.padded_size = tuple(config.image_size)
        self.model = ViTModel(config, add_pooling_layer=False)
        self.head = nn.Linear(config.hidden_size, embedding_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W] -> [..., embedding_dim]``."""
        pixels, leading = flatten_leading(self.to_float(image), event_dims=3)
        # Zero-pad bottom/right so every pixel falls in a patch.
        pad_height = self.padded_size[0] - pixels.shape[-2]
        pad_width = self.padded_size[1] - pixels.shape[-1]
        pixels = nn.functional.pad(pixels, (0, pad_width, 0, pad_height))
        hidden = self.model(pixel_values=pixels).last_hidden_state[:, 0]
        return unflatten_leading(self.head(hidden), leading)


class TransformerFields(LargeModelFields):
    """Size of a transformer built from a config, shared by the ``vit`` and ``ast`` encoders."""

    hidden: int = Field(64, ge=8, le=1024, description="Transformer width.")
    layers: int = Field(2, ge=1, le=12, description="Number of transformer layers.")
    heads: int = Field(4, ge=1, le=16, description="Attention heads per layer (must divide hidden).")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TransformerFields:
        check_heads_divide_hidden(self.hidden, self.heads)
        return self


class VitEncoderConfig(TransformerFields):
    """``vit``: a small vision transformer (``transformers.ViTModel`` built from a config, random init)."""

    modality: ClassVar[str] = "image"

    encoder: Literal["vit"] = Field("vit", description="Encoder name.")
    patch_size: int | None = Field(
        None, ge=1, le=64, description="Patch side in pixels; null: the smallest giving at most 8 patches a side."
    )

    def build(self, context: EncoderContext) -> TensorDictModule:
        """ViT ``[..., C, H, W] -> [..., embedding_dim]``; the image is zero-padded to whole patches."""
        channels, height, width = image_shape(context.spec.shape)
        patch = self.patch_size or math.ceil(max(height, width) / 8)
        config = ViTConfig(
            image_size=(math.ceil(height / patch) * patch, math.ceil(width / patch) * patch),
            patch_size=patch,
            num_channels=channels,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=4 * self.hidden,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        network = VisionTransformer(config, self.embedding_dim)
        return self.wrap(self.prepare(network, pretrained=False), context)
