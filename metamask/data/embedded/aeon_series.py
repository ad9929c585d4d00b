"""Embedded time series from aeon's shipped ``.ts`` files: BasicMotions and JapaneseVowels.

BasicMotions (smartwatch accel + gyro) stands in for DABS time series, JapaneseVowels (12
LPC-cepstrum channels, 9 speakers) for speech features. aeon is never imported (it pulls in
numba): its files are found by path (:mod:`metamask.data.embedded.wheels`) and read with
:mod:`metamask.data.formats.ts_format`. Inputs are standardised per channel with statistics of
the training split only.
"""

from __future__ import annotations

import numpy as np
import torch

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
