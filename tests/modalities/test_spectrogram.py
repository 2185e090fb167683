"""The torch spectrogram: pure tones peak at their frequency bin, per ear, with or without mel bins."""

from __future__ import annotations

import math

import pytest
import torch

from himo.modalities.spectrogram import Spectrogram, log_spectrogram, spectrogram_shape

SAMPLE_RATE = 16000
N_FFT = 256


def tone(frequency: float, samples: int = 4000) -> torch.Tensor:
    time = torch.arange(samples) / SAMPLE_RATE
    return torch.sin(2 * math.pi * frequency * time)


@pytest.mark.parametrize("frequency_bin", [5, 16, 37, 100])
def test_pure_tone_peaks_at_its_frequency_bin(frequency_bin):
    frequency = frequency_bin * SAMPLE_RATE / N_FFT  # bin k is k * sample_rate / n_fft Hz
    spectrum = log_spectrogram(tone(frequency), n_fft=N_FFT, hop_length=64)
    assert spectrum.shape == spectrogram_shape(4000, N_FFT, 64)
    assert spectrum.mean(-1).argmax().item() == frequency_bin


def test_each_ear_keeps_its_own_tone_for_any_leading_dims():
    left, right = tone(1000.0), tone(3000.0)  # bins 16 and 48
    waveform = torch.stack([left, right]).expand(3, 2, 2, -1)  # [envs, agents, ears, samples]
    spectrum = Spectrogram(N_FFT, 128)(waveform)
    assert spectrum.shape == (3, 2, 2, *spectrogram_shape(4000, N_FFT, 128))
    peaks = spectrum.mean(-1).argmax(-1)
    assert (peaks[..., 0] == 16).all() and (peaks[..., 1] == 48).all()


def test_mel_spectrogram_peaks_at_the_filter_covering_the_tone():
    module = Spectrogram(N_FFT, 128, mel_bins=40, sample_rate=SAMPLE_RATE)
    spectrum = module(tone(1000.0))
    assert spectrum.shape == (40, spectrogram_shape(4000, N_FFT, 128)[1])
    assert spectrum.mean(-1).argmax().item() == module.mel_filters[16].argmax().item()


def test_silence_is_zero_and_short_waveforms_work():
    spectrum = log_spectrogram(torch.zeros(2, 100), n_fft=N_FFT, hop_length=64)
    assert spectrum.shape == (2, *spectrogram_shape(100, N_FFT, 64))
    assert (spectrum == 0).all()
