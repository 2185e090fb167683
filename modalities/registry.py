"""Encoder names a scenario may use, each mapped to its pydantic config class.

The scenario schema builds a discriminated union on ``encoder`` from ``ENCODERS``; each class's
``modality`` says which kind of observation it reads.
"""

from __future__ import annotations

from himo.modalities.audio import AstEncoderConfig, SpectrogramEncoderConfig
from himo.modalities.base import EncoderConfig
from himo.modalities.fusion import FUSIONS, FusionConfig, build_fusion
from himo.modalities.grid import GridEncoderConfig
from himo.modalities.image import CnnEncoderConfig, VitEncoderConfig
from himo.modalities.text import TransformerEncoderConfig
from himo.modalities.vector import MlpEncoderConfig

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
