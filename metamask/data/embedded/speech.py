"""Embedded speech through the real DABS path: eSpeak NG digit words -> (1, 224, 224) log-mel.

Synthetic, not recorded speech: the ten English digit words spoken by 8 eSpeak NG voices at 3
rates and 2 pitches (480 clips at 22 050 Hz, rendered offline in ~0.3 s). The task is the digit
(10 classes, like AudioMNIST); the test split holds out two whole voices, so a probe is scored
on voices it never heard. Each clip goes through the DABS speech transform on access.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Subset

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_indices
from metamask.data.embedded.wheels import missing_package_file, package_file
from metamask.data.formats.audio import AudioClips
from metamask.data.formats.espeak import SpeechJob, synthesize
from metamask.data.formats.speech_transform import N_MELS, SpeechNorm
from metamask.data.registry import register_dataset
from metamask.errors import DataError

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TRAIN_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en+f3", "en-us+f2")
TEST_VOICES = ("en-029", "en+m3")
RATES = (140, 175, 210)  # words per minute
PITCHES = (35, 65)  # eSpeak base pitch, 0-100
# mean / std of the un-normalised log-mel over all 480 clips, measured once as DABS did for its
# datasets (tests recompute them); the std is small because most of the 6.8 s window is silence
NORM = SpeechNorm(mean=-31.474, std=7.047)

ESPEAK_DIGITS = DatasetInfo(
    name="espeak_digits",
    modality="image2d",
    input_shape=(1, N_MELS, N_MELS),
    patch=(16, 16),
    num_classes=10,
    metric="accuracy",
    domain="speech",
    description="eSpeak NG digit words, 8 voices x 3 rates x 2 pitches (480 clips, 2 voices "
    "held out for test), DABS log-mel transform",
)
_LIB, _PHONEMES = "libespeak-ng.so", "espeak-ng-data/phontab"  # phontab: in the data folder


def digit_jobs() -> list[SpeechJob]:
    """The fixed job list; clip i is a pure function of this list (see
    metamask.data.formats.espeak)."""
    return [
        SpeechJob(word, voice, rate, pitch)
        for voice in TRAIN_VOICES + TEST_VOICES
        for rate in RATES
        for pitch in PITCHES
        for word in DIGITS
    ]


def digit_clips() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    """(int16 clips, digit labels, is-test-voice flags, sample rate) of every job."""
    jobs = digit_jobs()
    try:
        clips, sample_rate = synthesize(
            jobs,
            package_file("espeakng_loader", _LIB),
            package_file("espeakng_loader", _PHONEMES).parent,
        )
    except RuntimeError as exc:
        raise DataError(f"dataset espeak_digits: {exc}") from None
    labels = np.array([DIGITS.index(j.text) for j in jobs], dtype=np.int64)
    test = np.array([j.voice in TEST_VOICES for j in jobs])
    return clips, labels, test, sample_rate


def _load_espeak_digits(options: LoadOptions) -> DataBundle:
    clips, labels, is_test, sample_rate = digit_clips()
    pool_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    tr, va = split_indices(labels[pool_idx], options.val_fraction, options.seed + 1)
    dataset = AudioClips(clips, labels, sample_rate, NORM)
    return DataBundle(
        ESPEAK_DIGITS,
        train=Subset(dataset, pool_idx[tr].tolist()),
        val=Subset(dataset, pool_idx[va].tolist()),
        test=Subset(dataset, test_idx.tolist()),
    )


def _requires(options: LoadOptions) -> str | None:
    return missing_package_file("espeakng_loader", _LIB) or missing_package_file(
        "espeakng_loader", _PHONEMES
    )


register_dataset(DatasetEntry(ESPEAK_DIGITS, _load_espeak_digits, requires=_requires))
