"""The DABS speech transform in numpy: waveform -> (1, 224, 224) normalised log-mel image.

DABS / MetaMAE compute it with librosa; metamask re-implements it (librosa would pull numba and
llvmlite into the data path) following librosa 0.11's documented defaults:

* a fixed window of ``MAX_LENGTH`` = 150 526 samples at the file's own sample rate: longer clips
  are cut (head, or at random head or tail on training splits), shorter ones zero-padded;
* STFT: ``n_fft`` 2048, periodic Hann window of 2048, hop 672, centred frames (the signal is
  padded by ``n_fft // 2`` on both sides, zeros: librosa >= 0.10's ``pad_mode="constant"``),
  power spectrum ``|X|**2`` -> 1 + 150526 // 672 = 224 frames;
* mel filter bank: 224 triangular filters from 0 Hz to sr / 2 on the Slaney mel scale (linear
  below 1 kHz, logarithmic above), Slaney area normalisation, weights stored as float32;
* then, as in the DABS code, the mel power is **squared again** before ``power_to_db`` (ref 1,
  amin 1e-10, top_db 80): the published normalisation constants were measured on this doubled
  quantity, so it is kept;
* a channel axis and one scalar normalisation per dataset ``(x - mean) / std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse

MAX_LENGTH = 150_526  # samples, whatever the sample rate (DABS)
N_FFT = 2048
HOP_LENGTH = 672
N_MELS = 224
TOP_DB = 80.0
AMIN = 1e-10

PadMode = Literal["constant", "reflect"]


@dataclass(frozen=True)
class SpeechNorm:
    """The scalar normalisation DABS applies per speech dataset."""

    mean: float
    std: float


def fix_length(wave: np.ndarray, take_tail: bool = False, length: int = MAX_LENGTH) -> np.ndarray:
    """Cut ``wave`` to ``length`` samples (its head, or its tail when ``take_tail``) or
    zero-pad it at the end; returns float64 (DABS pads into a float64 buffer)."""
    wave = np.asarray(wave, dtype=np.float64)
    if len(wave) > length:
        return wave[-length:] if take_tail else wave[:length]
    out = np.zeros(length, dtype=np.float64)
    out[: len(wave)] = wave
    return out


def hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mels = freq / f_sp
    high = freq >= min_log_hz
    logs = min_log_hz / f_sp + np.log(np.maximum(freq, 1e-12) / min_log_hz) / logstep
    return np.where(high, logs, mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(
        mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels
    )


@lru_cache(maxsize=16)
def mel_filterbank(sr: float, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 Slaney-normalised triangular mel filters, 0 .. sr/2."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    top = float(hz_to_mel(np.array(sr / 2.0)))
    mel_freqs = mel_to_hz(np.linspace(0.0, top, n_mels + 2))  # fmin 0 Hz = 0 mel
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    out = weights.astype(np.float32)
    out.setflags(write=False)  # cached: shared by every caller
    return out


@lru_cache(maxsize=16)
def _sparse_filterbank(sr: float) -> scipy.sparse.csr_matrix:
    # each FFT bin feeds at most two filters: a sparse product is ~100x cheaper than a dense one
    import scipy.sparse  # here, not at the top: importing scipy.sparse takes ~0.1 s

    return scipy.sparse.csr_matrix(mel_filterbank(sr).astype(np.float64))


@lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    n = np.arange(n_fft)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)  # periodic ("fftbins") Hann


def power_spectrogram(
    wave: np.ndarray,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    pad_mode: PadMode = "constant",
) -> np.ndarray:
    """|STFT|**2 of centred, Hann-windowed frames: (1 + n_fft // 2, 1 + len // hop) float64."""
    padded = np.pad(np.asarray(wave, dtype=np.float64), n_fft // 2, mode=pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]  # [T, n_fft]
    spectrum = np.fft.rfft(frames * _hann(n_fft), axis=1)  # [T, 1 + n_fft // 2]
    return (spectrum.real**2 + spectrum.imag**2).T


def power_to_db(power: np.ndarray, top_db: float | None = TOP_DB) -> np.ndarray:
    """10 log10(power) with ref 1 and floor ``AMIN``, clipped to ``top_db`` below the maximum."""
    db = 10.0 * np.log10(np.maximum(AMIN, power))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def dabs_log_mel(
    wave: np.ndarray, sample_rate: float, pad_mode: PadMode = "constant"
) -> np.ndarray:
    """(224, 224) float32 DABS log-mel of a waveform already cut/padded to ``MAX_LENGTH``.

    The mel power is squared once more before the dB conversion, as in the DABS code.
    """
    mel = _sparse_filterbank(float(sample_rate)) @ power_spectrogram(wave, pad_mode=pad_mode)
    return power_to_db(mel**2).astype(np.float32)


def speech_image(
    wave: np.ndarray, sample_rate: float, norm: SpeechNorm, take_tail: bool = False
) -> np.ndarray:
    """The whole DABS transform: raw mono waveform in [-1, 1] -> (1, 224, 224) float32."""
    spec = dabs_log_mel(fix_length(wave, take_tail), sample_rate)
    return ((spec - norm.mean) / norm.std)[None].astype(np.float32)
