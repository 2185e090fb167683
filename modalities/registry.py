"""Encoder names a scenario may use, each mapped to its pydantic config class.

The scenario schema builds a discriminated union on ``encoder`` from ``ENCODERS``; each class's
``modality`` says which kind of observation it reads.
"""

from __future__ import annotations

from modalities.audio import AstEncoderConfig, SpectrogramEncoderConfig
from modalities.base import EncoderConfig
from modalities.fusion import FUSIONS, FusionConfig, build_fusion
from modalities.grid import GridEncoderConfig
from modalities.image import CnnEncoderConfig, VitEncoderConfig
from modalities.text import TransformerEncoderConfig
from modalities.vector import MlpEncoderConfig

ENCODERS: dict[str, type[EncoderConfig]] = {
    "mlp": MlpEncoderConfig,
    "cnn": CnnEncoderConfig,
    "grid": GridEncoderConfig,
    "vit": VitEncoderConfig,
    "transformer": TransformerEncoderConfig,
    "spectrogram": SpectrogramEncoderConfig,
    "ast": AstEncoderConfig,
}

__all__ = ["ENCODERS", "FUSIONS", "EncoderConfig", "FusionConfig", "build_fusion"]
