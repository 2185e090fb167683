"""Small pieces shared by the encoders: activations by name, freezing, leading-dims flattening."""

from __future__ import annotations

from typing import Literal, TypeVar

import torch
from torch import nn

Activation = Literal["relu", "tanh", "elu", "gelu", "silu"]
"""Activation names a scenario may use."""

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

ModuleType = TypeVar("ModuleType", bound=nn.Module)


def freeze(module: ModuleType) -> ModuleType:
    """Set ``requires_grad=False`` on every parameter of ``module`` and put it in eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def flatten_leading(tensor: torch.Tensor, event_dims: int) -> tuple[torch.Tensor, torch.Size]:
    """Merge every dim before the last ``event_dims`` into one batch dim.

    Returns the ``[batch, *event]`` tensor and the leading shape to give back to
    :func:`unflatten_leading`.
    """
    leading = tensor.shape[: tensor.dim() - event_dims]
    if len(leading) == 0:
        return tensor.unsqueeze(0), leading
    return tensor.flatten(0, len(leading) - 1), leading


def unflatten_leading(tensor: torch.Tensor, leading: torch.Size) -> torch.Tensor:
    """Undo :func:`flatten_leading` on the first dim of ``tensor``."""
    if len(leading) == 0:
        return tensor.squeeze(0)
    return tensor.unflatten(0, leading)


def check_heads_divide_hidden(hidden: int, heads: int) -> None:
    """Raise ``ValueError`` unless a transformer of width ``hidden`` can split it into ``heads`` heads."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
