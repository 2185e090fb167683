"""Fusion of the modality embeddings into the one vector the manager sees.

``concat`` concatenates (optionally projecting to ``embedding_dim``); ``attention`` runs a small
cross-modal transformer over the embeddings as tokens (each tagged with a learned modality
embedding) and pools a learned [CLS] token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tensordict.nn import TensorDictModule
from torch import nn

from himo.modalities.keyed import KeyedModule
from himo.modalities.layers import check_heads_divide_hidden, flatten_leading, unflatten_leading

Key = str | tuple[str, ...]


class ConcatFusion(nn.Module):
    """Concatenate ``[..., dim_m]`` embeddings along the last dim, then an optional linear projection."""

    def __init__(self, input_dims: Sequence[int], embedding_dim: int, project: bool) -> None:
        super().__init__()
        total = sum(input_dims)
        self.projection = nn.Linear(total, embedding_dim) if project else nn.Identity()
        self.output_dim = embedding_dim if project else total

    def forward(self, *embeddings: torch.Tensor) -> torch.Tensor:
        """Fused ``[..., output_dim]``."""
        return self.projection(torch.cat(embeddings, dim=-1))


class AttentionFusion(nn.Module):
    """Transformer over one token per modality (+ a learned [CLS] token), pooled on [CLS]."""

    def __init__(
        self, input_dims: Sequence[int], embedding_dim: int, hidden: int, layers: int, heads: int, feedforward: int
    ) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(nn.Linear(size, hidden) for size in input_dims)
        self.modality_embeddings = nn.Parameter(torch.randn(len(input_dims), hidden) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, feedforward, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.projection = nn.Linear(hidden, embedding_dim)
        self.output_dim = embedding_dim

    def forward(self, *embeddings: torch.Tensor) -> torch.Tensor:
        """Fused ``[..., embedding_dim]`` from ``[..., dim_m]`` embeddings with the same leading dims."""
        tokens = torch.stack([layer(embedding) for layer, embedding in zip(self.inputs, embeddings)], dim=-2)
        tokens, leading = flatten_leading(tokens + self.modality_embeddings, event_dims=2)
        cls = self.cls_token.expand(tokens.shape[0], 1, -1)
        hidden = self.transformer(torch.cat([cls, tokens], dim=1))[:, 0]
        return unflatten_leading(self.projection(self.norm(hidden)), leading)


class FusionConfig(BaseModel):
    """Fields shared by every fusion; subclasses add their options and narrow ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="Fusion name (see FUSIONS).")

    def make(self, input_dims: Sequence[int], embedding_dim: int) -> nn.Module:
        """The fusion network over embeddings of sizes ``input_dims``."""
        raise NotImplementedError(f"fusion {self.kind!r} does not implement make()")

    def build(
        self, in_keys: Sequence[Key], out_key: Key, embedding_dim: int, input_dims: Sequence[int] | None = None
    ) -> TensorDictModule:
        """TensorDictModule fusing the embeddings at ``in_keys`` (sizes ``input_dims``, default all
        ``embedding_dim``) into ``out_key``; the fused size is ``module.module.output_dim``."""
        if not in_keys:
            raise ValueError("fusion needs at least one embedding key")
        sizes = list(input_dims) if input_dims is not None else [embedding_dim] * len(in_keys)
        if len(sizes) != len(in_keys):
            raise ValueError(f"{len(in_keys)} embedding keys but {len(sizes)} input_dims")
        return KeyedModule(self.make(sizes, embedding_dim), in_keys=list(in_keys), out_keys=[out_key])


class ConcatFusionConfig(FusionConfig):
    """``concat``: concatenate the modality embeddings, optionally projected to ``embedding_dim``."""

    kind: Literal["concat"] = Field("concat", description="Fusion name.")
    project: bool = Field(True, description="Project the concatenation to embedding_dim (else its size is the sum).")

    def make(self, input_dims: Sequence[int], embedding_dim: int) -> nn.Module:
        """See :class:`ConcatFusion`."""
        return ConcatFusion(input_dims, embedding_dim, self.project)


class AttentionFusionConfig(FusionConfig):
    """``attention``: a small cross-modal transformer with learned modality embeddings, pooled on [CLS]."""

    kind: Literal["attention"] = Field("attention", description="Fusion name.")
    hidden: int = Field(64, ge=8, le=1024, description="Token width inside the fusion transformer.")
    layers: int = Field(1, ge=1, le=8, description="Number of transformer layers.")
    heads: int = Field(4, ge=1, le=16, description="Attention heads per layer (must divide hidden).")
    feedforward: int = Field(128, ge=8, le=8192, description="Width of each layer's feed-forward block.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> AttentionFusionConfig:
        check_heads_divide_hidden(self.hidden, self.heads)
        return self

    def make(self, input_dims: Sequence[int], embedding_dim: int) -> nn.Module:
        """See :class:`AttentionFusion`."""
        return AttentionFusion(input_dims, embedding_dim, self.hidden, self.layers, self.heads, self.feedforward)


FUSIONS: dict[str, type[FusionConfig]] = {
    "concat": ConcatFusionConfig,
    "attention": AttentionFusionConfig,
}
"""Fusion name -> its config class (a pydantic discriminated union on ``kind`` can be built from it)."""


def build_fusion(
    kind: str,
    in_keys: Sequence[Key],
    out_key: Key,
    embedding_dim: int,
    input_dims: Sequence[int] | None = None,
    **options: Any,
) -> TensorDictModule:
    """TensorDictModule fusing the embeddings at ``in_keys`` into ``out_key``.

    ``input_dims`` are the sizes of the embeddings (default: all ``embedding_dim``); ``options``
    are the fusion's config fields (validated: an unknown or out-of-range option raises). The
    fused size is ``module.module.output_dim``. Raises ``ValueError`` for an unknown ``kind``.
    """
    if kind not in FUSIONS:
        raise ValueError(f"unknown fusion {kind!r}; expected one of {sorted(FUSIONS)}")
    return FUSIONS[kind](kind=kind, **options).build(in_keys, out_key, embedding_dim, input_dims)
