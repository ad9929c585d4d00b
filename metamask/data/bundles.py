"""Turning arrays or index lists into the seeded train / val / test splits of a DataBundle.

Every loader ends here, so that the split rules live in one place:

* an official test split is used as is; without one, ``TEST_FRACTION`` of the data (stratified by
  class when the labels are classes) becomes the test split, seeded by ``LoadOptions.seed``;
* the validation split is ``LoadOptions.val_fraction`` of the training split, stratified and
  seeded by ``seed + 1`` (so it differs from the test draw);
* every split's indices are sorted, so a split depends only on the labels and the seed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.base import ArrayDataset, DataBundle, DatasetInfo, LoadOptions, stratified_split
from metamask.errors import DataError

TEST_FRACTION = 0.2  # for datasets that ship without an official test split

Standardise = Literal["feature", "channel"]


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into (rest, held_out) with ``fraction`` held out.

    Stratified by class when ``labels`` is a 1-D integer array (regression targets, per-token
    labels and unlabelled data are split uniformly at random). When every class is too small
    to lend the held-out part a member (a handful of examples), the split is uniform too, so
    neither part is empty. Both index arrays are sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"a held-out fraction must lie strictly between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    if labels.ndim != 1:  # per-token labels: split examples, not classes
        labels = np.zeros(len(labels), dtype=np.float32)
    rest, held = stratified_split(labels, [1.0 - fraction, fraction], seed)
    if (len(held) == 0 or len(rest) == 0) and len(labels) >= 2:
        # classes too small to give the held-out part a member each: split uniformly instead
        count = min(max(1, round(fraction * len(labels))), len(labels) - 1)
        order = np.random.default_rng(seed).permutation(len(labels))
        held, rest = np.sort(order[:count]), np.sort(order[count:])
    return rest, held


def split_bundle(
    info: DatasetInfo,
    x: np.ndarray,
    y: np.ndarray,
    options: LoadOptions,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    standardise: Standardise | None = None,
    pretrain: np.ndarray | None = None,
) -> DataBundle:
    """Seeded stratified train/val(/test) splits of in-memory arrays, optionally standardised.

    Args:
        info: the dataset's facts; its modality decides the dtype of x (int64 token ids for
            ``tokens``, float32 otherwise) and ``num_classes`` the dtype of y (float32 for
            regression, int64 otherwise).
        x, y: all examples of the training pool (and of the test split when ``test`` is None).
        test: an official test split; when None, ``TEST_FRACTION`` of (x, y) becomes the test.
        standardise: None, ``"feature"`` (per position, as for tabular columns) or ``"channel"``
            (per channel over every other axis); statistics come from the training split alone.
        pretrain: extra unlabelled inputs for pretraining only (standardised like the rest);
            None: pretraining uses the training split.
    """
    if len(x) != len(y):
        raise DataError(f"dataset {info.name}: {len(x)} inputs but {len(y)} labels")
    if test is None:
        rest, test_idx = split_indices(y, TEST_FRACTION, options.seed)
        test = (x[test_idx], y[test_idx])
        x, y = x[rest], y[rest]
    tr, va = split_indices(y, options.val_fraction, options.seed + 1)
    xs = {"train": x[tr], "val": x[va], "test": test[0]}
    ys = {"train": y[tr], "val": y[va], "test": test[1]}
    if pretrain is not None:
        xs["pretrain"] = pretrain
    if standardise is not None:
        xs = standardised(xs, standardise)
    x_dtype = torch.int64 if info.modality == "tokens" else torch.float32
    y_dtype = torch.float32 if info.num_classes == 0 and info.labelled else torch.int64
    sets: dict[str, Dataset] = {}
    for key, xv in xs.items():
        yv = ys.get(key, np.full(len(xv), -1))
        sets[key] = ArrayDataset(
            torch.as_tensor(np.asarray(xv), dtype=x_dtype), torch.as_tensor(yv, dtype=y_dtype)
        )
    return DataBundle(info, sets["train"], sets["val"], sets["test"], sets.get("pretrain"))


def standardised(xs: dict[str, np.ndarray], how: Standardise) -> dict[str, np.ndarray]:
    """Standardise every array of ``xs`` with the mean/std of ``xs["train"]``.

    ``"feature"``: one statistic per position (axis 0 reduced); ``"channel"``: one per channel
    (every axis but 1 reduced). NaN entries (padding) are ignored by the statistics.
    """
    train = xs["train"]
    axes = (0,) if how == "feature" else tuple(a for a in range(train.ndim) if a != 1)
    mean = np.nanmean(train, axis=axes, keepdims=True)
    std = np.nanstd(train, axis=axes, keepdims=True) + 1e-6
    return {k: ((v - mean) / std).astype(np.float32) for k, v in xs.items()}


class IndexSubset(Dataset):
    """Items ``indices[i]`` of ``base``; indices kept as one int64 array (8 bytes each), not the
    Python list torch's Subset holds (~36 bytes each), for datasets with millions of rows."""

    def __init__(self, base: Dataset, indices: np.ndarray) -> None:
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.base[int(self.indices[index])]


def lazy_bundle(
    info: DatasetInfo,
    pool: Dataset,
    labels: np.ndarray,
    options: LoadOptions,
    test: Dataset | None = None,
    val: Dataset | None = None,
    pretrain: Dataset | None = None,
    eval_pool: Dataset | None = None,
) -> DataBundle:
    """Splits of a lazily decoded dataset by index, without touching its items.

    Args:
        pool: the training pool (the probe-training split of DABS); items decode on access.
        labels: the label of every item of ``pool`` (known from an index, not by decoding),
            used to stratify; pass ``np.zeros(len(pool))`` when they are not known cheaply.
        test: the official test split; None: ``TEST_FRACTION`` of ``pool`` is held out.
        val: an official validation split; None: ``val_fraction`` of the rest is held out.
        pretrain: data for pretraining only; None: pretraining uses the training split.
        eval_pool: the same items as ``pool`` decoded without training-time randomness (random
            crops); the validation and test splits held out of ``pool`` are taken from it.
    """
    labels = np.asarray(labels)
    n_pool = len(pool)  # type: ignore[arg-type]
    if len(labels) != n_pool:
        raise DataError(f"dataset {info.name}: {len(labels)} labels for {n_pool} items")
    rest = np.arange(len(labels))
    if test is None:
        rest, test_idx = split_indices(labels, TEST_FRACTION, options.seed)
        test = IndexSubset(eval_pool or pool, test_idx)
    if val is None:
        tr, va = split_indices(labels[rest], options.val_fraction, options.seed + 1)
        train: Dataset = IndexSubset(pool, rest[tr])
        val = IndexSubset(eval_pool or pool, rest[va])
    else:
        train = pool if len(rest) == len(labels) else IndexSubset(pool, rest)
    return DataBundle(info, train, val, test, pretrain)
