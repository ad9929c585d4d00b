"""Embedded MNIST-1D: 1-D digit signals drawn offline from the published recipe (Greydanus 2020).

The mnist1d wheel ships no data: its ``get_dataset`` downloads a pickle from GitHub (and on
failure silently regenerates it into the working folder), and importing it pulls in requests and
matplotlib. metamask draws the data itself from the recipe published with it (arXiv:2011.14439,
mnist1d 0.0.2.post1 defaults): ten 12-point digit templates, each example padded with 36-60
zeros, stretched to 72 points, scaled by 1 +- 0.2, circularly shifted by 0-47 points, its zero
(padding) points replaced by smoothed noise, plus white noise and a random shear, then resampled
to 40 points; the whole set is standardised by one global mean and std and split 80 / 20. The
random draws follow the recipe's order with a ``RandomState(42)``, so the canonical 5,000-example
set equals the package's ``make_dataset()`` (tests/data/embedded/test_mnist1d.py checks it).

Two sizes are registered: ``mnist1d`` (5,000: the published set, comparable to the paper's
numbers) and ``mnist1d_large`` (100,000 from the same recipe: a test split of 20,000, where a
seed's accuracy spread is ~0.3 points rather than ~1.4).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.registry import register_dataset

# the recipe's defaults (mnist1d 0.0.2.post1 get_dataset_args)
TEMPLATE_LEN = 12
PADDING = (36, 60)  # zeros appended to a template, both ends included
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48  # shifts 0..47
CORR_NOISE_SCALE = 0.25
CORR_NOISE_SIGMA = 2.0
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
FINAL_LENGTH = 40
TRAIN_SPLIT = 0.8
SEED = 42
EPS = 1e-8  # added to the template before padding so that only the padding is exactly zero
STRETCHED = TEMPLATE_LEN + PADDING[1]  # 72 points after the dilation

# the ten digit outlines (y values at 12 evenly spaced points), as published
_OUTLINES = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def templates() -> np.ndarray:
    """The ten (12,) digit templates: each outline standardised, shifted to start at 0, / 6."""
    x = np.asarray(_OUTLINES, dtype=np.float64)
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def resample(rows: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """Linear interpolation of each row's first ``lengths[i]`` points onto ``size`` points.

    Row i's points sit at ``linspace(0, 1, lengths[i])`` and are read at ``linspace(0, 1,
    size)``; the end points are kept exactly. ``rows`` is (N, >= max(lengths)).
    """
    lengths = np.asarray(lengths)
    target = np.linspace(0.0, 1.0, size)
    pos = target[None, :] * (lengths[:, None] - 1)  # fractional source index
    left = np.minimum(pos.astype(np.int64), lengths[:, None] - 2)  # floor: pos >= 0
    frac = pos - left
    lo = np.take_along_axis(rows, left, axis=1)
    hi = np.take_along_axis(rows, left + 1, axis=1)
    return lo * (1.0 - frac) + hi * frac


def mnist1d_arrays(num_samples: int = 5000, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(N, 40) float64 signals, standardised as a whole, and int64 labels, in the recipe's order.

    Examples are drawn class by class (``num_samples // 10`` each), then shuffled; the first
    ``TRAIN_SPLIT`` of the rows are the recipe's training split, the rest its test split.
    """
    rng = np.random.RandomState(seed)
    temps = templates()
    per_class = num_samples // len(temps)
    n = per_class * len(temps)
    labels = np.repeat(np.arange(len(temps), dtype=np.int64), per_class)
    pad, scale, shift, shear = (np.empty(n) for _ in range(4))
    corr, iid = np.empty((n, STRETCHED)), np.empty((n, STRETCHED))
    for i in range(n):  # the recipe's draws, in its order, one example after another
        pad[i] = PADDING[0] + int(rng.rand() * (PADDING[1] - PADDING[0] + 1))
        scale[i] = 1 + SCALE_COEFF * (rng.rand() - 0.5)
        shift[i] = rng.randint(0, MAX_TRANSLATION)
        corr[i] = CORR_NOISE_SCALE * rng.randn(STRETCHED)
        iid[i] = IID_NOISE_SCALE * rng.randn(STRETCHED)
        shear[i] = SHEAR_SCALE * (rng.rand() - 0.5)
    padded = np.zeros((n, TEMPLATE_LEN + PADDING[1]))
    padded[:, :TEMPLATE_LEN] = temps[labels] + EPS
    x = resample(padded, TEMPLATE_LEN + pad.astype(np.int64), STRETCHED) * scale[:, None]
    cols = (np.arange(STRETCHED)[None, :] - shift.astype(np.int64)[:, None]) % STRETCHED
    x = np.take_along_axis(x, cols, axis=1)  # circular shift right by `shift`
    noise = gaussian_filter1d(corr, CORR_NOISE_SIGMA, axis=1, mode="reflect")
    x = np.where(x != 0, x, noise) + iid
    x = x - shear[:, None] * np.linspace(-0.5, 0.5, STRETCHED)[None, :]
    x = resample(x, np.full(n, STRETCHED), FINAL_LENGTH)
    order = rng.permutation(n)
    x, labels = x[order], labels[order]
    return (x - x.mean()) / x.std(), labels


def _info(name: str, num_samples: int, what: str) -> DatasetInfo:
    n_train = int(num_samples * TRAIN_SPLIT)
    return DatasetInfo(
        name=name,
        modality="signal1d",
        input_shape=(1, FINAL_LENGTH),
        patch=(2,),  # 20 tokens of 2 points: a digit spans 7-10 of the 40 points
        num_classes=10,
        metric="accuracy",
        domain="time series",
        description=f"MNIST-1D ({what}): {num_samples} digit signals x 40 points, 10 classes, "
        f"recipe test split {num_samples - n_train}; drawn offline",
    )


MNIST1D = _info("mnist1d", 5000, "the published 5,000")
MNIST1D_LARGE = _info("mnist1d_large", 100_000, "the same recipe at 100,000")


def _loader(info: DatasetInfo, num_samples: int) -> Callable[[LoadOptions], DataBundle]:
    """The loader of ``num_samples`` examples of the recipe, under ``info``."""

    def load(options: LoadOptions) -> DataBundle:
        x, y = mnist1d_arrays(num_samples)
        x = x.astype(np.float32)[:, None, :]  # (N, 1, 40): one channel
        cut = int(len(y) * TRAIN_SPLIT)  # the recipe's own test split, as published
        # already standardised by the recipe (one global mean/std), as the paper's models see it
        return split_bundle(info, x[:cut], y[:cut], options, test=(x[cut:], y[cut:]))

    return load


register_dataset(DatasetEntry(MNIST1D, _loader(MNIST1D, 5000)))
register_dataset(DatasetEntry(MNIST1D_LARGE, _loader(MNIST1D_LARGE, 100_000)))
