"""The dataset contract: what a dataset yields and what metamask needs to know about it.

A dataset is any ``torch.utils.data.Dataset`` yielding ``(x, y)`` pairs; :class:`DatasetInfo`
says how to read ``x`` (modality, shape, patch) and how to score ``y`` (classes, metric).
:class:`DataBundle` holds the seeded train / validation / test splits of one dataset, plus
optionally unlabelled data for pretraining only. Data knows nothing of models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.config.arrays import Metric as Metric  # torch-free, for the spec schema
from metamask.config.arrays import Modality as Modality
from metamask.errors import DataError

METRICS: tuple[str, ...] = (
    "accuracy",
    "binary_accuracy",
    "weighted_f1",
    "spearman",
    "token_accuracy",
)

# Per-token labels (metric token_accuracy) hold this value at positions that must not be scored
# (padding); metamask.downstream.probe passes it to cross-entropy as ``ignore_index``.
IGNORE_LABEL = -1
# The label of every example of an unlabelled dataset (``DatasetInfo.labelled`` False).
NO_LABEL = -1


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: enough to build a model and score it, without loading it."""

    name: str  # registry name, e.g. "basicmotions"
    modality: Modality  # signal1d (C, T); image2d (C, H, W); tokens (L,) of ids < vocab_size
    input_shape: tuple[int, ...]  # shape of one x, without the batch dimension
    patch: tuple[int, ...]  # (p,) for signal1d and tokens (p=1), (p, q) for image2d
    num_classes: int  # classes of y; 2 = binary (one logit); 0 = regression
    metric: Metric  # how the probe is scored
    vocab_size: int = 0  # tokens only: number of distinct token ids
    domain: str = ""  # the DABS modality it stands for: "time series", "tabular", ...
    description: str = ""  # one line: where the data comes from
    labelled: bool = True  # False: pretraining only (no probe possible)

    def __post_init__(self) -> None:
        check_patch(self.name, self.modality, self.input_shape, self.patch, self.vocab_size)

    @property
    def num_tokens(self) -> int:
        """Number of tokens L the tokenizer produces for one x."""
        if self.modality == "image2d":
            return (self.input_shape[1] // self.patch[0]) * (self.input_shape[2] // self.patch[1])
        if self.modality == "signal1d":
            return self.input_shape[1] // self.patch[0]
        return self.input_shape[0]


def check_patch(
    name: str,
    modality: str,
    input_shape: Sequence[int],
    patch: Sequence[int],
    vocab_size: int = 0,
) -> None:
    """Raise DataError unless ``patch`` tiles ``input_shape`` exactly for ``modality``."""
    shape, patch = tuple(input_shape), tuple(patch)
    expected_dims = {"signal1d": (2, 1), "image2d": (3, 2), "tokens": (1, 1)}
    if modality not in expected_dims:
        raise DataError(f"dataset {name}: unknown modality {modality!r}")
    ndim, npatch = expected_dims[modality]
    if len(shape) != ndim or len(patch) != npatch:
        raise DataError(
            f"dataset {name}: modality {modality} needs an input of {ndim} dims and a patch of "
            f"{npatch}, got input {shape} and patch {patch}"
        )
    if any(p <= 0 for p in patch) or any(s <= 0 for s in shape):
        raise DataError(f"dataset {name}: input {shape} and patch {patch} must be positive")
    spatial = shape[1:] if modality != "tokens" else shape
    if modality == "tokens" and patch != (1,):
        raise DataError(f"dataset {name}: token inputs take patch (1,), got {patch}")
    for size, p in zip(spatial, patch, strict=True):
        if size % p:
            raise DataError(
                f"dataset {name}: patch {patch} does not divide input {shape} "
                f"({size} is not a multiple of {p})"
            )
    if modality == "tokens" and vocab_size < 2:
        raise DataError(f"dataset {name}: token inputs need vocab_size >= 2, got {vocab_size}")


class ArrayDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory ``(x, y)`` pairs from two aligned tensors."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise DataError(f"ArrayDataset: {len(x)} inputs but {len(y)} labels")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


@dataclass
class DataBundle:
    """The splits of one dataset. ``pretrain`` defaults to ``train`` (labels unused there)."""

    info: DatasetInfo
    train: Dataset  # labelled training split: probe training, MLO-MAE's labelled splits
    val: Dataset  # model selection (probe epoch, fine-tune epoch); never used for training
    test: Dataset  # reported once, at the selected epoch
    pretrain: Dataset | None = None  # unlabelled pretraining data; None: use `train`

    @property
    def pretrain_set(self) -> Dataset:
        return self.pretrain if self.pretrain is not None else self.train


@dataclass(frozen=True)
class LoadOptions:
    """What a loader may take from the run spec."""

    seed: int = 0  # seeds the splits
    val_fraction: float = 0.2  # share of the training split held out for validation
    data_root: str | None = None  # folder of real (DABS) data


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its facts, its loader and a check whether it can load here."""

    info: DatasetInfo
    load: Callable[[LoadOptions], DataBundle]
    requires: Callable[[LoadOptions], str | None] = field(default=lambda options: None)
    source: str = "embedded"  # "embedded" (inside installed wheels) or "folder" (--data-root)


def stratified_split(y: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices into parts of the given fractions, stratified by class when y is discrete.

    The last part takes the remainder. Each part's indices are sorted, so a split depends only
    on ``y`` and ``seed``.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    discrete = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if discrete else [np.arange(len(y))]
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for idx in groups:
        idx = rng.permutation(idx)
        bounds = np.floor(np.cumsum(fractions)[:-1] * len(idx) + 0.5).astype(int)
        for k, chunk in enumerate(np.split(idx, bounds)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def labels_to_int(labels: Sequence[str] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map string labels to 0..K-1 in sorted label order; returns (ids, class names)."""
    names = sorted({str(v) for v in labels})
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[str(v)] for v in labels], dtype=np.int64), names
