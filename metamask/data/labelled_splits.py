"""A labelled training split cut in two, seeded and stratified: A trains a head, B a masker.

MLO-MAE's levels 2 and 3 read different labelled data (docs/mlomae.md): the head trains on
split A, the masker on the head's loss over split B, held out from A.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.base import DataBundle
from metamask.data.bundles import IndexSubset, split_indices


@dataclass(frozen=True)
class LabelledSplits:
    """The labelled training split cut in two: A trains the head, B trains the masker."""

    a: Dataset
    b: Dataset


def split_labelled(bundle: DataBundle, holdout: float, seed: int) -> LabelledSplits:
    """Stratified, seeded split of ``bundle.train`` into A (1 - holdout) and B (holdout)."""
    labels = dataset_labels(bundle.train)
    a, b = split_indices(labels, holdout, seed + 2)  # +2: differs from the test/val draws
    return LabelledSplits(IndexSubset(bundle.train, a), IndexSubset(bundle.train, b))


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The label of every item, read without decoding inputs where the dataset allows it."""
    if isinstance(dataset, IndexSubset):
        base = dataset_labels_cheap(dataset.base)
        if base is not None:
            return base[dataset.indices]
    cheap = dataset_labels_cheap(dataset)
    if cheap is not None:
        return cheap
    return np.array([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def dataset_labels_cheap(dataset: Dataset) -> np.ndarray | None:
    for attr in ("y", "labels"):
        value = getattr(dataset, attr, None)
        if value is not None:
            return np.asarray(value.numpy() if torch.is_tensor(value) else value)
    return None
