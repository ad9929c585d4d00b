"""The numpy DABS speech transform matches librosa 0.11 (values pinned from librosa itself)."""

from __future__ import annotations

import numpy as np
import pytest

from metamask.data.formats.speech_transform import (
    MAX_LENGTH,
    SpeechNorm,
    dabs_log_mel,
    fix_length,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    speech_image,
)

# librosa 0.11.0: S = melspectrogram(y=padded, sr=16000, hop_length=672, n_mels=224);
# power_to_db(S**2) of the signal below, zero-padded to 150 526 samples
LIBROSA_DB = {
    (0, 0): 20.7756,
    (30, 28): 6.5074,
    (33, 14): 55.6292,
    (45, 3): 15.4878,
    (106, 11): 36.7881,
    (166, 29): 5.3431,
}
LIBROSA_MAX, LIBROSA_ARGMAX, LIBROSA_MEAN, LIBROSA_ABOVE_FLOOR = 75.4663, (32, 3), -3.8229, 1015
# librosa.filters.mel(sr=16000, n_fft=2048, n_mels=224): (row, argmax, max) and total sum
LIBROSA_FILTERS = [(0, 2, 0.06224675), (50, 88, 0.05351550), (223, 1010, 0.00912790)]
LIBROSA_FILTER_SUM = 28.667614


def _signal() -> np.ndarray:
    t = np.arange(40000) / 16000
    return 0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * (100 + 1500 * t) * t)


def test_log_mel_matches_librosa_with_the_double_squaring() -> None:
    db = dabs_log_mel(fix_length(_signal()), 16000)
    assert db.shape == (224, 224) and db.dtype == np.float32
    for index, value in LIBROSA_DB.items():
        assert db[index] == pytest.approx(value, abs=1e-3), index
    assert db.max() == pytest.approx(LIBROSA_MAX, abs=1e-3)
    assert np.unravel_index(db.argmax(), db.shape) == LIBROSA_ARGMAX
    assert db.mean() == pytest.approx(LIBROSA_MEAN, abs=1e-3)
    assert int((db > -4.5).sum()) == LIBROSA_ABOVE_FLOOR
    assert db.min() == pytest.approx(db.max() - 80.0, abs=1e-3)  # top_db 80


def test_mel_filterbank_matches_librosa_slaney() -> None:
    fb = mel_filterbank(16000.0)
    assert fb.shape == (224, 1025) and fb.dtype == np.float32
    for row, argmax, peak in LIBROSA_FILTERS:
        assert int(np.argmax(fb[row])) == argmax
        assert fb[row].max() == pytest.approx(peak, rel=1e-5)
    assert fb.sum() == pytest.approx(LIBROSA_FILTER_SUM, rel=1e-5)
    assert not fb.flags.writeable  # cached and shared


def test_slaney_mel_scale_is_linear_below_1khz_and_invertible() -> None:
    assert hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)
    assert hz_to_mel(np.array(500.0)) == pytest.approx(7.5)
    freqs = np.array([0.0, 300.0, 999.0, 1000.0, 4000.0, 11025.0])
    assert np.allclose(mel_to_hz(hz_to_mel(freqs)), freqs)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_every_sample_rate_gives_224_frames(rate: int) -> None:
    assert dabs_log_mel(fix_length(np.zeros(100)), rate).shape == (224, 224)


def test_fix_length_pads_with_zeros_or_keeps_head_or_tail() -> None:
    short = fix_length(np.ones(10))
    assert short.shape == (MAX_LENGTH,) and short[:10].sum() == 10 and short[10:].sum() == 0
    long = np.arange(MAX_LENGTH + 5, dtype=np.float64)
    assert fix_length(long)[0] == 0 and fix_length(long, take_tail=True)[0] == 5


def test_speech_image_applies_the_dataset_normalisation() -> None:
    wave = _signal()
    raw = dabs_log_mel(fix_length(wave), 16000)
    image = speech_image(wave, 16000, SpeechNorm(mean=-10.0, std=4.0))
    assert image.shape == (1, 224, 224)
    assert np.allclose(image[0], (raw + 10.0) / 4.0, atol=1e-5)
