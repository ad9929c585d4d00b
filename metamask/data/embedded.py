"""Real datasets shipped inside installed wheels: the offline defaults.

BasicMotions (aeon's .ts files; smartwatch accel + gyro) stands in for DABS time series,
sklearn digits (as 3x32x32) for natural images, sklearn breast_cancer for tabular rows.
Continuous inputs are standardised with statistics of the training split only.
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
    stratified_split,
)
from metamask.data.registry import register_dataset
from metamask.data.ts_format import read_ts
from metamask.data.wheels import missing_package_file, package_file

TEST_FRACTION = 0.2  # for datasets that ship without an official test split


def split_bundle(
    info: DatasetInfo,
    x: np.ndarray,
    y: np.ndarray,
    options: LoadOptions,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    standardise: str | None = None,
) -> DataBundle:
    """Seeded stratified train/val(/test) splits of arrays, optionally standardised.

    Args:
        test: an official test split; when None, ``TEST_FRACTION`` of (x, y) becomes the test.
        standardise: None, "feature" (per position, as for tabular columns) or "channel"
            (per channel over time); statistics come from the training split alone.
    """
    if test is None:
        rest, test_idx = stratified_split(y, [1 - TEST_FRACTION, TEST_FRACTION], options.seed)
        test = (x[test_idx], y[test_idx])
        x, y = x[rest], y[rest]
    tr, va = stratified_split(y, [1 - options.val_fraction, options.val_fraction], options.seed + 1)
    xs = {"train": x[tr], "val": x[va], "test": test[0]}
    ys = {"train": y[tr], "val": y[va], "test": test[1]}
    if standardise is not None:
        axes = (0,) if standardise == "feature" else (0, 2)
        mean = xs["train"].mean(axis=axes, keepdims=True)
        std = xs["train"].std(axis=axes, keepdims=True) + 1e-6
        xs = {k: (v - mean) / std for k, v in xs.items()}
    tensors = {
        k: ArrayDataset(torch.as_tensor(xs[k], dtype=torch.float32), torch.as_tensor(ys[k]))
        for k in xs
    }
    return DataBundle(info, tensors["train"], tensors["val"], tensors["test"])


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
    ids, names = labels_to_int(parts["TRAIN"][1] + parts["TEST"][1])
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
