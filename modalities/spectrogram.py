"""Log-magnitude spectrograms of waveforms with ``torch.stft`` (there is no CPU torchaudio here)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from himo.modalities.layers import flatten_leading, unflatten_leading


def spectrogram_shape(samples: int, n_fft: int, hop_length: int, mel_bins: int = 0) -> tuple[int, int]:
    """``(frequency bins, frames)`` that :class:`Spectrogram` gives for ``samples`` samples."""
    return (mel_bins or n_fft // 2 + 1), 1 + samples // hop_length


class Spectrogram(nn.Module):
    """``[..., samples]`` waveform to a ``[..., frequency, frames]`` log-magnitude spectrogram.

    The value is ``log(1 + |STFT|)`` (Hann window, frames centred, zero-padded at the ends), so
    silence is 0. Frequency bin ``k`` is ``k * sample_rate / n_fft`` Hz. With ``mel_bins > 0`` the
    magnitudes are first pooled by a mel filter bank (``transformers.audio_utils.mel_filter_bank``)
    over ``0 .. sample_rate / 2``.
    """

    window: torch.Tensor

    def __init__(self, n_fft: int = 256, hop_length: int = 128, mel_bins: int = 0, sample_rate: int = 16000) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.mel_filters: torch.Tensor | None
        if mel_bins:
            filters = mel_filter_bank(
                num_frequency_bins=n_fft // 2 + 1,
                num_mel_filters=mel_bins,
                min_frequency=0.0,
                max_frequency=sample_rate / 2,
                sampling_rate=sample_rate,
                norm="slaney",
                mel_scale="slaney",
            )
            self.register_buffer("mel_filters", torch.as_tensor(filters, dtype=torch.float32), persistent=False)
        else:
            self.mel_filters = None

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Spectrogram of every waveform in ``waveform [..., samples]``: ``[..., frequency, frames]``."""
        signal, leading = flatten_leading(waveform.float(), event_dims=1)
        magnitude = torch.stft(
            signal,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        ).abs()
        if self.mel_filters is not None:
            magnitude = torch.einsum("bft,fm->bmt", magnitude, self.mel_filters)
        return unflatten_leading(torch.log1p(magnitude), leading)


def log_spectrogram(
    waveform: torch.Tensor, n_fft: int = 256, hop_length: int = 128, mel_bins: int = 0, sample_rate: int = 16000
) -> torch.Tensor:
    """Functional form of :class:`Spectrogram` (builds the window each call)."""
    return Spectrogram(n_fft, hop_length, mel_bins, sample_rate).to(waveform.device)(waveform)
