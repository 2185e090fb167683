"""Vector observations: an MLP over a flat feature vector."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, PositiveInt
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Categorical, TensorSpec
from torchrl.modules import MLP
from torchrl.modules.value_norm import RunningValueNorm

from himo.modalities.base import EncoderConfig, EncoderContext
from himo.modalities.layers import ACTIVATIONS, Activation


class VectorToFloat(nn.Module):
    """Cast a vector observation to float; with ``classes`` set, one-hot encode a categorical index."""

    def __init__(self, classes: int | None = None) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """``[..., features]`` (or ``[...]`` indices when ``classes`` is set) to float ``[..., features]``."""
        if self.classes is not None:
            return nn.functional.one_hot(observation.long(), self.classes).float()
        return observation.float()


class InputNorm(nn.Module):
    """Standardises each feature of a vector by running statistics of the observations learned from.

    The statistics are TorchRL's ``RunningValueNorm`` (exact running mean and variance per feature); learning folds
    each batch's observations in before it updates (``update``), so acting reads them as of the last batch, and they
    travel with the policy (checkpoints, actors). Standardised values are clipped to ``[-CLIP, CLIP]``; before the
    first batch the input passes unchanged.
    """

    CLIP = 10.0

    def __init__(self, features: int) -> None:
        super().__init__()
        self.statistics = RunningValueNorm(shape=features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., features]`` standardised (unchanged before any statistics)."""
        standardised = self.statistics.normalize(features).clamp(-self.CLIP, self.CLIP)
        return torch.where(self.statistics.count > 0, standardised, features)

    @torch.no_grad()
    def update(self, features: torch.Tensor) -> None:
        """Fold ``[..., features]`` observations into the statistics."""
        self.statistics.update(features.reshape(-1, features.shape[-1]))


def vector_input_size(spec: TensorSpec) -> tuple[int, int | None]:
    """Feature count the MLP sees for ``spec``, and the class count when the spec is a categorical index.

    A ``Categorical`` spec (TorchRL's form of a discrete observation, no feature dim) is one-hot
    encoded; every other spec is read as ``[..., features]`` and cast to float.
    """
    if isinstance(spec, Categorical):
        return int(spec.space.n), int(spec.space.n)
    if len(spec.shape) == 0:
        raise ValueError(f"a vector observation needs a feature dim; got spec shape {tuple(spec.shape)}")
    return int(spec.shape[-1]), None


class MlpEncoderConfig(EncoderConfig):
    """``mlp``: a multilayer perceptron over a float vector (ints, bools and one-hots are cast)."""

    modality: ClassVar[str] = "vector"

    encoder: Literal["mlp"] = Field("mlp", description="Encoder name.")
    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (64, 64), max_length=8, description="Width of each hidden layer (empty: one linear layer)."
    )
    activation: Activation = Field("tanh", description="Activation between layers.")
    normalize: bool = Field(
        False,
        description="Standardise each input feature by running statistics of the observations learned from (folded "
        "in before each update, saved with the policy; clipped to +-10).",
    )

    def build(self, context: EncoderContext) -> TensorDictModule:
        """MLP ``[..., features] -> [..., embedding_dim]``."""
        features, classes = vector_input_size(context.spec)
        if self.normalize and classes is not None:
            raise ValueError("normalize is for real-valued vectors; this observation is a categorical index (one-hot encoded)")
        network = nn.Sequential(
            VectorToFloat(classes),
            *([InputNorm(features)] if self.normalize else []),
            MLP(
                in_features=features,
                out_features=self.embedding_dim,
                num_cells=list(self.hidden_sizes),
                activation_class=ACTIVATIONS[self.activation],
            ),
        )
        return self.wrap(network, context)
