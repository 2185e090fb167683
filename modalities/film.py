"""Conditioned convolutions: another modality's embedding scales and shifts every conv layer's feature maps.

Feature-wise linear modulation ("FiLM: Visual Reasoning with a General Conditioning Layer",
https://arxiv.org/abs/1709.07871): after each conv layer, channel ``c`` becomes
``x_c * (1 + scale_c) + shift_c`` where ``(scale, shift)`` is a linear map of the conditioning embedding. A
mission such as "go to the red ball" can then pick out the cells that match it before the maps are flattened,
which a concatenation of the two embeddings leaves to the heads to work out. The maps start unmodulated (the
linear maps are zero at initialisation), so a conditioned encoder starts as its plain twin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from himo.modalities.layers import ACTIVATIONS, flatten_leading, unflatten_leading


class FilmConvolution(nn.Module):
    """Same-padded conv layers, each followed by its FiLM modulation and the activation, then a linear layer.

    Reads ``features [batch, channels, height, width]`` and ``condition [batch, condition_size]``; gives
    ``[batch, embedding_dim]``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: Sequence[int],
        kernel_size: int,
        stride: int,
        activation: str,
        condition_size: int,
        embedding_dim: int,
    ) -> None:
        super().__init__()
        sizes = [input_shape[0], *channels]
        self.convolutions = nn.ModuleList(
            nn.Conv2d(inputs, outputs, kernel_size, stride, padding=kernel_size // 2)
            for inputs, outputs in zip(sizes[:-1], sizes[1:])
        )
        self.modulations = nn.ModuleList(nn.Linear(condition_size, 2 * outputs) for outputs in channels)
        for modulation in self.modulations:
            nn.init.zeros_(modulation.weight)
            nn.init.zeros_(modulation.bias)
        self.activation = ACTIVATIONS[activation]()
        with torch.no_grad():
            flat_size = self._maps(torch.zeros(1, *input_shape), torch.zeros(1, condition_size)).shape[-1]
        self.output = nn.Linear(flat_size, embedding_dim)

    def _maps(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        for convolution, modulation in zip(self.convolutions, self.modulations):
            scale, shift = modulation(condition)[..., None, None].chunk(2, dim=1)
            features = self.activation(convolution(features) * (1 + scale) + shift)
        return features.flatten(1)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``[batch, embedding_dim]`` from the feature maps modulated by ``condition``."""
        return self.output(self._maps(features, condition))


class ConditionedEncoder(nn.Module):
    """An observation turned into feature maps by ``prepare``, then read by a :class:`FilmConvolution` under a
    conditioning embedding with the same leading dims, for any leading dims.

    Args:
        prepare: ``[batch, *event] -> [batch, channels, height, width]`` (float conversion, cell embeddings or a
            spectrogram).
        trunk: the conditioned convolutions.
        event_dims: the observation's own dims (3 for an image, 2 for ``[ears, samples]`` audio).
    """

    def __init__(self, prepare: nn.Module, trunk: FilmConvolution, event_dims: int) -> None:
        super().__init__()
        self.prepare = prepare
        self.trunk = trunk
        self.event_dims = event_dims

    def forward(self, observation: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``[..., *event]`` and ``[..., condition_size]`` to ``[..., embedding_dim]``."""
        flat, leading = flatten_leading(observation, self.event_dims)
        if condition.shape[:-1] != leading:
            raise ValueError(
                f"the conditioning embedding's leading dims {tuple(condition.shape[:-1])} do not match the "
                f"observation's {tuple(leading)}"
            )
        features = self.trunk(self.prepare(flat), flatten_leading(condition.float(), event_dims=1)[0])
        return unflatten_leading(features, leading)
