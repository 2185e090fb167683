"""The contract every encoder follows.

An encoder is declared by a pydantic config class (its scenario fields, defaults and one-line
descriptions) whose ``build`` returns a TensorDictModule reading ``(group, "observation", key)``
and writing ``(group, "embedding", modality)`` of size ``embedding_dim``, for any leading batch
dims (``[envs, time, agents]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import nn
from torchrl.data import TensorSpec
from transformers import PreTrainedTokenizerBase

from himo.modalities.keyed import KeyedModule
from himo.modalities.layers import freeze


ENCODER_SPECIFIC_OPTIONS = {
    "adapter": "the transformer encoders (transformer, vit, ast): {encoder!r} has no transformer to adapt",
    "checkpointing": "the transformer encoders (transformer, vit, ast): {encoder!r} has no transformer to checkpoint",
    "condition": "the convolutional encoders (cnn, grid, spectrogram): {encoder!r} has no feature maps to modulate",
}
"""Options only some encoders take (``himo.modalities.large_models``, ``himo.modalities.film``), and why another
cannot."""


@dataclass(frozen=True)
class EncoderContext:
    """What an encoder needs to know about its input when it is built."""

    in_key: tuple[str, ...]
    """Key of the raw observation, e.g. ``("agents", "observation", "view")``."""
    out_key: tuple[str, ...]
    """Key to write the embedding to, e.g. ``("agents", "embedding", "image")``."""
    spec: TensorSpec
    """Spec of ``in_key`` with the leading env/agent dims (a Composite for text: ids + mask)."""
    tokenizer: PreTrainedTokenizerBase | None = field(default=None)
    """The env's tokenizer for a text observation (to decode ids for a pretrained model)."""
    condition_key: tuple[str, ...] | None = field(default=None)
    """Key of the embedding that conditions this encoder (``modalities.<m>.condition``); ``None``: none."""
    condition_size: int = field(default=0)
    """Size of that embedding."""


class EncoderConfig(BaseModel):
    """Fields shared by every encoder; subclasses add their own and narrow ``encoder``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: ClassVar[str] = ""
    """Kind of observation the encoder reads: ``vector``, ``image``, ``text`` or ``audio``."""

    key: str = Field(description="Observation key this modality reads: (group, 'observation', key).")
    encoder: str = Field(description="Encoder name (see the encoder table).")
    embedding_dim: int = Field(64, ge=1, description="Size of the embedding the encoder writes.")
    frozen: bool = Field(False, description="Keep the encoder's parameters fixed during training.")

    @model_validator(mode="before")
    @classmethod
    def _options_of_other_encoders_are_refused_plainly(cls, data: Any) -> Any:
        # Said plainly rather than as an unknown field: the option exists, this encoder cannot take it.
        if isinstance(data, dict):
            for option, reason in ENCODER_SPECIFIC_OPTIONS.items():
                if option in data and option not in cls.model_fields:
                    raise ValueError(f"{option} applies to {reason.format(encoder=data.get('encoder'))}")
        return data

    @property
    def conditioned_on(self) -> str | None:
        """The modality whose embedding conditions this encoder (``himo.modalities.film``); ``None``: none."""
        return None

    def build(self, context: EncoderContext) -> TensorDictModuleBase:
        """Return the TensorDictModule for this modality."""
        raise NotImplementedError(f"encoder {self.encoder!r} does not implement build()")

    def wrap(self, network: nn.Module, context: EncoderContext) -> TensorDictModule:
        """``network`` as a module from the context's input key to its output key, frozen if asked."""
        if self.frozen:
            freeze(network)
        condition = [context.condition_key] if context.condition_key is not None else []
        return KeyedModule(network, in_keys=[context.in_key, *condition], out_keys=[context.out_key])
