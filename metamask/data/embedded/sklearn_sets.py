"""Real datasets shipped inside installed wheels: the offline defaults.

BasicMotions (aeon's .ts files; smartwatch accel + gyro) stands in for DABS time series,
JapaneseVowels (aeon; 12 LPC-cepstrum channels, 9 speakers) for speech features, sklearn digits
(as 3x32x32) for natural images, sklearn breast_cancer and wine for tabular rows. Continuous
inputs are standardised with statistics of the training split only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from metamask.data.base import (
    ArrayDataset,
    DataBundle,
    DatasetEntry,
    DatasetInfo,
    LoadOptions,
    labels_to_int,
)
from metamask.data.bundles import split_bundle
from metamask.data.embedded.wheels import missing_package_file, package_file
from metamask.data.formats.ts_format import read_ts
from metamask.data.registry import register_dataset
from metamask.errors import DataError

# ----------------------------------------------------------------------------------------------
# BasicMotions: time series (6 channels x 100 steps, 4 activities)
# ----------------------------------------------------------------------------------------------

BASICMOTIONS = DatasetInfo(
    name="basicmotions",
    modality="signal1d",
    input_shape=(6, 100),
    patch=(5,),
    num_classes=4,
    metric="accuracy",
    domain="time series",
    description="aeon BasicMotions: smartwatch accel+gyro, 10 Hz x 10 s, 4 activities (40+40)",
)
_BM = "datasets/data/BasicMotions/BasicMotions_{}.ts"


def _load_basicmotions(options: LoadOptions) -> DataBundle:
    parts = {}
    for split in ("TRAIN", "TEST"):
        series, labels, _ = read_ts(package_file("aeon", _BM.format(split)))
        parts[split] = (np.stack(series), [label.lower() for label in labels])
    ids, _ = labels_to_int(parts["TRAIN"][1] + parts["TEST"][1])
    n_train = len(parts["TRAIN"][1])
    return split_bundle(
        BASICMOTIONS,
        parts["TRAIN"][0],
        ids[:n_train],
        options,
        test=(parts["TEST"][0], ids[n_train:]),
        standardise="channel",
    )


register_dataset(
    DatasetEntry(
        BASICMOTIONS,
        _load_basicmotions,
        requires=lambda o: missing_package_file("aeon", _BM.format("TRAIN")),
    )
)

# ----------------------------------------------------------------------------------------------
# sklearn digits: natural images (8x8 grey -> 3x32x32 in [0, 1], 10 classes)
# ----------------------------------------------------------------------------------------------

DIGITS = DatasetInfo(
    name="digits",
    modality="image2d",
    input_shape=(3, 32, 32),
    patch=(4, 4),
    num_classes=10,
    metric="accuracy",
    domain="natural images",
    description="sklearn digits: 1797 handwritten 8x8 digits, bilinear x4 to 32x32, 3 channels",
)


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits as float32 (N, 3, 32, 32) images in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    big = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    return big.clamp(0, 1).repeat(1, 3, 1, 1).numpy(), digits.target.astype(np.int64)


def _load_digits(options: LoadOptions) -> DataBundle:
    x, y = digits_images()
    return split_bundle(DIGITS, x, y, options)


register_dataset(DatasetEntry(DIGITS, _load_digits))

# ----------------------------------------------------------------------------------------------
# sklearn breast_cancer: tabular (30 standardised features -> 30 tokens, binary)
# ----------------------------------------------------------------------------------------------

BREAST_CANCER = DatasetInfo(
    name="breast_cancer",
    modality="signal1d",
    input_shape=(1, 30),
    patch=(1,),
    num_classes=2,
    metric="binary_accuracy",
    domain="tabular",
    description="sklearn breast_cancer: 569 tumours x 30 features, malignant vs benign",
)


def _load_breast_cancer(options: LoadOptions) -> DataBundle:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = data.data.astype(np.float32)[:, None, :]  # (N, 1, 30): each feature is a token
    return split_bundle(
        BREAST_CANCER, x, data.target.astype(np.int64), options, standardise="feature"
    )


register_dataset(DatasetEntry(BREAST_CANCER, _load_breast_cancer))

# ----------------------------------------------------------------------------------------------
# sklearn wine: tabular, multi-class (13 standardised features -> 13 tokens, 3 cultivars)
# ----------------------------------------------------------------------------------------------

WINE = DatasetInfo(
    name="wine",
    modality="signal1d",
    input_shape=(1, 13),
    patch=(1,),
    num_classes=3,
    metric="accuracy",
    domain="tabular",
    description="sklearn wine: 178 wines x 13 chemical measurements, 3 cultivars",
)


def _load_wine(options: LoadOptions) -> DataBundle:
    from sklearn.datasets import load_wine

    data = load_wine()
    x = data.data.astype(np.float32)[:, None, :]  # (N, 1, 13): each feature is a token
    return split_bundle(WINE, x, data.target.astype(np.int64), options, standardise="feature")


register_dataset(DatasetEntry(WINE, _load_wine))

# ----------------------------------------------------------------------------------------------
# JapaneseVowels: speech features (12 LPC cepstrum channels x 7-29 frames -> padded to 32)
# ----------------------------------------------------------------------------------------------

JV_FRAMES = 32  # the longest utterance has 29 frames; 32 = 8 tokens of patch 4

JAPANESE_VOWELS = DatasetInfo(
    name="japanese_vowels",
    modality="signal1d",
    input_shape=(12, JV_FRAMES),
    patch=(4,),
    num_classes=9,
    metric="accuracy",
    domain="speech",
    description="aeon JapaneseVowels: 12 LPC cepstra x 7-29 frames of /ae/, 9 speakers (270+370), "
    "zero-padded to 32 frames",
)
_JV = "datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"


def pad_series(series: list[np.ndarray], length: int) -> np.ndarray:
    """Stack variable-length (C, T) series into (N, C, length), NaN after each series' end.

    Why pad and not resample: resampling (as in aeon's ``_eq`` files) time-warps each utterance,
    changing its speaking rate; padding keeps every frame as recorded. Longer series are an error
    (nothing is cropped silently).
    """
    longest = max(s.shape[1] for s in series)
    if longest > length:
        raise DataError(f"a series has {longest} steps, more than the padded length {length}")
    out = np.full((len(series), series[0].shape[0], length), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out


def _load_japanese_vowels(options: LoadOptions) -> DataBundle:
    parts = {}
    for split in ("TRAIN", "TEST"):
        series, labels, _ = read_ts(package_file("aeon", _JV.format(split)))
        parts[split] = (pad_series(series, JV_FRAMES), list(labels))
    ids, _ = labels_to_int(parts["TRAIN"][1] + parts["TEST"][1])
    n_train = len(parts["TRAIN"][1])
    bundle = split_bundle(
        JAPANESE_VOWELS,
        parts["TRAIN"][0],
        ids[:n_train],
        options,
        test=(parts["TEST"][0], ids[n_train:]),
        standardise="channel",  # NaN padding is ignored by the statistics ...
    )
    for subset in (bundle.train, bundle.val, bundle.test):
        assert isinstance(subset, ArrayDataset)
        subset.x = torch.nan_to_num(subset.x, nan=0.0)  # ... and becomes 0 = the channel mean
    return bundle


register_dataset(
    DatasetEntry(
        JAPANESE_VOWELS,
        _load_japanese_vowels,
        requires=lambda o: missing_package_file("aeon", _JV.format("TRAIN")),
    )
)
