"""Audio observations ``[..., channels (ears), samples]``: spectrogram + CNN, or an audio spectrogram transformer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from tensordict.nn import TensorDictModule
from torch import nn
from transformers import ASTConfig, ASTModel

from himo.modalities.base import EncoderConfig, EncoderContext
from himo.modalities.image import ConvolutionFields, TransformerFields
from himo.modalities.layers import flatten_leading, unflatten_leading
from himo.modalities.spectrogram import Spectrogram, spectrogram_shape


def audio_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The trailing ``(channels, samples)`` of a spec shape, with a clear error when too short."""
    if len(shape) < 2:
        raise ValueError(f"an audio observation must be [..., channels, samples]; got shape {tuple(shape)}")
    return int(shape[-2]), int(shape[-1])


class SpectrogramFields(EncoderConfig):
    """Spectrogram settings shared by the audio encoders."""

    n_fft: int = Field(256, ge=8, le=8192, description="FFT size (window length) in samples.")
    hop_length: int = Field(128, ge=1, le=8192, description="Samples between successive frames.")
    mel_bins: int = Field(0, ge=0, le=512, description="Mel filter-bank bins; 0 keeps the n_fft/2+1 linear bins.")
    sample_rate: int = Field(16000, ge=100, le=192000, description="Sample rate in Hz (sets the mel scale).")

    @model_validator(mode="after")
    def _mel_bins_fit(self) -> SpectrogramFields:
        if self.mel_bins > self.n_fft // 2 + 1:
            raise ValueError(f"mel_bins ({self.mel_bins}) must be at most n_fft // 2 + 1 ({self.n_fft // 2 + 1})")
        return self

    def spectrogram(self) -> Spectrogram:
        """The spectrogram module these settings describe."""
        return Spectrogram(self.n_fft, self.hop_length, self.mel_bins, self.sample_rate)


class SpectrogramEncoderConfig(SpectrogramFields, ConvolutionFields):
    """``spectrogram``: log-magnitude spectrogram per channel, then a small CNN (channels = ears)."""

    modality: ClassVar[str] = "audio"

    encoder: Literal["spectrogram"] = Field("spectrogram", description="Encoder name.")

    def build(self, context: EncoderContext) -> TensorDictModule:
        """Spectrogram + CNN ``[..., ears, samples] -> [..., embedding_dim]``."""
        ears, samples = audio_shape(context.spec.shape)
        frequencies, frames = spectrogram_shape(samples, self.n_fft, self.hop_length, self.mel_bins)
        shape = (ears, frequencies, frames)
        if self.condition is not None:
            return self.wrap(self.conditioned(self.spectrogram(), shape, 2, context), context)
        return self.wrap(nn.Sequential(self.spectrogram(), *self.convolution(shape)), context)


class AudioSpectrogramTransformer(nn.Module):
    """One ``transformers`` AST shared by every ear; the ears' pooled outputs are concatenated and projected."""

    def __init__(self, spectrogram: Spectrogram, config: ASTConfig, ears: int, embedding_dim: int) -> None:
        super().__init__()
        self.spectrogram = spectrogram
        self.padded_shape = (config.num_mel_bins, config.max_length)
        self.model = ASTModel(config)
        self.head = nn.Linear(ears * config.hidden_size, embedding_dim)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[..., ears, samples] -> [..., embedding_dim]``."""
        signal, leading = flatten_leading(waveform, event_dims=2)
        batch, ears = signal.shape[:2]
        spectrum = self.spectrogram(signal.flatten(0, 1))  # [batch * ears, frequency, frames]
        # Zero-padded (silence) up to whole patches.
        spectrum = nn.functional.pad(
            spectrum,
            (0, self.padded_shape[1] - spectrum.shape[-1], 0, self.padded_shape[0] - spectrum.shape[-2]),
        )
        pooled = self.model(input_values=spectrum.transpose(1, 2)).pooler_output
        return unflatten_leading(self.head(pooled.reshape(batch, -1)), leading)


class AstEncoderConfig(SpectrogramFields, TransformerFields):
    """``ast``: audio spectrogram transformer (``transformers.ASTModel`` from a config, random init) per ear."""

    modality: ClassVar[str] = "audio"

    encoder: Literal["ast"] = Field("ast", description="Encoder name.")
    patch_size: int = Field(16, ge=2, le=64, description="Side of the square, non-overlapping spectrogram patches.")

    def build(self, context: EncoderContext) -> TensorDictModule:
        """AST ``[..., ears, samples] -> [..., embedding_dim]``; the spectrogram is zero-padded to whole patches."""
        ears, samples = audio_shape(context.spec.shape)
        frequencies, frames = spectrogram_shape(samples, self.n_fft, self.hop_length, self.mel_bins)
        config = ASTConfig(
            num_mel_bins=math.ceil(frequencies / self.patch_size) * self.patch_size,
            max_length=math.ceil(frames / self.patch_size) * self.patch_size,
            patch_size=self.patch_size,
            frequency_stride=self.patch_size,
            time_stride=self.patch_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=4 * self.hidden,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        network = AudioSpectrogramTransformer(self.spectrogram(), config, ears, self.embedding_dim)
        return self.wrap(self.prepare(network, pretrained=False), context)
