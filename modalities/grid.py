"""Symbolic grid observations: each cell holds integer codes (MiniGrid's object, colour and state).

Codes are categories, not intensities: every channel's code is looked up in its own embedding
table and a cell's embeddings are summed (a bag of its attributes), then the convolutional trunk
of the ``cnn`` encoder reads the ``[cell_features, height, width]`` map.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from tensordict.nn import TensorDictModule
from torch import nn

from himo.modalities.base import EncoderContext
from himo.modalities.image import ConvolutionFields, image_shape
from himo.modalities.layers import flatten_leading, unflatten_leading


class CellEmbedding(nn.Module):
    """``[..., channels, height, width]`` integer codes to ``[n, features, height, width]`` summed embeddings."""

    def __init__(self, channels: int, codes_per_channel: int, features: int) -> None:
        super().__init__()
        self.codes_per_channel = codes_per_channel
        self.table = nn.Embedding(channels * codes_per_channel, features)
        self.register_buffer("offsets", torch.arange(channels).view(1, channels, 1, 1) * codes_per_channel)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """Summed per-channel embeddings of every cell, channels first."""
        codes = grid.long()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codes_per_channel):
            raise ValueError(
                f"grid encoder: cell codes must lie in [0, {self.codes_per_channel}); got "
                f"{int(codes.min())}..{int(codes.max())} (raise codes_per_channel, or use the cnn encoder for pixels)"
            )
        return self.table(codes + self.offsets).sum(1).permute(0, 3, 1, 2)


class GridTrunk(nn.Module):
    """Cell embeddings, then conv layers and a linear layer to the embedding, for any leading dims."""

    def __init__(self, cells: CellEmbedding, convolution: nn.Module) -> None:
        super().__init__()
        self.cells = cells
        self.convolution = convolution

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """``[..., channels, height, width] -> [..., embedding_dim]``."""
        flat, leading = flatten_leading(grid, event_dims=3)
        return unflatten_leading(self.convolution(self.cells(flat)), leading)


class GridEncoderConfig(ConvolutionFields):
    """``grid``: categorical cell codes (MiniGrid and BabyAI's ``image``), embedded per cell, then a CNN."""

    modality: ClassVar[str] = "image"

    encoder: Literal["grid"] = Field("grid", description="Encoder name.")
    codes_per_channel: int = Field(
        16, ge=2, le=1024, description="Distinct codes each channel may hold (MiniGrid: objects 11, colours 6, states 3)."
    )
    cell_features: int = Field(16, ge=1, le=512, description="Size of a cell's summed attribute embedding.")
    stride: int = Field(1, ge=1, le=4, description="Stride of every conv layer (1 keeps every cell of a small grid).")

    def build(self, context: EncoderContext) -> TensorDictModule:
        """Grid ``[..., C, H, W] -> [..., embedding_dim]``."""
        channels, height, width = image_shape(context.spec.shape)
        cells = CellEmbedding(channels, self.codes_per_channel, self.cell_features)
        shape = (self.cell_features, height, width)
        if self.condition is not None:
            return self.wrap(self.conditioned(cells, shape, 3, context), context)
        return self.wrap(GridTrunk(cells, self.convolution(shape)), context)
