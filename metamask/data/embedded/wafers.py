"""Embedded wafer maps: procedurally drawn WM-811K-style maps of the 9 DABS failure classes."""

from __future__ import annotations

import numpy as np

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.formats.wafer_maps import (
    IMAGE_SIZE,
    WAFER_CLASSES,
    encode_states,
    synthetic_wafer,
    wafer_image,
)
from metamask.data.registry import register_dataset

MAPS_PER_CLASS = 200
GENERATOR_SEED = 811  # the maps are fixed; LoadOptions.seed only changes the splits

SYNTHETIC_WAFERS = DatasetInfo(
    name="synthetic_wafers",
    modality="image2d",
    input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
    patch=(4, 4),
    num_classes=len(WAFER_CLASSES),
    metric="weighted_f1",
    domain="wafer maps",
    description="procedural wafer maps, WM-811K encoding, 9 DABS failure classes x 200 "
    "(synthetic: no wheel ships WM-811K)",
)


def synthetic_wafer_arrays(
    per_class: int = MAPS_PER_CLASS, seed: int = GENERATOR_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, 3, 32, 32) images through the DABS transform, and int64 labels 0..8."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(WAFER_CLASSES), dtype=np.int64), per_class)
    images = np.stack(
        [wafer_image(encode_states(synthetic_wafer(WAFER_CLASSES[k], rng))) for k in labels]
    )
    return images, labels


def _load_synthetic_wafers(options: LoadOptions) -> DataBundle:
    x, y = synthetic_wafer_arrays()
    return split_bundle(SYNTHETIC_WAFERS, x, y, options)  # DABS: no normalisation


register_dataset(DatasetEntry(SYNTHETIC_WAFERS, _load_synthetic_wafers))
