"""Embedded sklearn datasets: digits (as 3x32x32 images), breast_cancer and wine (tabular rows).

digits stands in for DABS natural images, breast_cancer and wine for tabular rows. sklearn is
imported inside the loaders only. Continuous tabular inputs are standardised per feature with
statistics of the training split only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.registry import register_dataset

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
