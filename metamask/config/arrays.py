"""The ``data.arrays`` block of a spec (a user's own .npz/.csv), and the modality and metric names.

Torch-free on purpose: the spec schema needs these types, and reading a spec (and refusing a bad
one) must not import torch, which costs seconds (``metamask run bad.yaml`` answers in a fraction
of a second). :mod:`metamask.data.user_arrays` loads what an :class:`ArraySource` names;
:mod:`metamask.data.base` re-exports :data:`Modality` and :data:`Metric`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metamask.ranges import Count, NonNegativeInt

Modality = Literal["signal1d", "image2d", "tokens"]
Metric = Literal["accuracy", "binary_accuracy", "weighted_f1", "spearman", "token_accuracy"]


@dataclass(frozen=True)
class ArraySource:
    """Where a user's arrays are and how to read them (the ``data.arrays`` block of a spec)."""

    path: str  # .npz (arrays `x`, `y`, optional `x_test`, `y_test`) or .csv with a header row
    modality: Modality  # signal1d (C, T) | image2d (C, H, W) | tokens (L,)
    input_shape: tuple[Count, ...]  # shape of one x; flat rows are reshaped to it
    patch: tuple[Count, ...]  # (p,) for signal1d / tokens (p = 1), (p, q) for image2d
    num_classes: NonNegativeInt  # classes of y; 2 = binary (one logit); 0 = regression
    metric: Metric | None = None  # None: accuracy, binary_accuracy (2) or spearman (0)
    vocab_size: NonNegativeInt = 0  # tokens: number of token ids (ids must lie in 0..vocab_size-1)
    label_column: str = "label"  # CSV: the label column; every other column is a feature
    test_path: str | None = None  # CSV: a separate test file; None: a seeded 20 % test split
    standardise: str = "none"  # none | feature (per position) | channel: train-split statistics
    domain: str = ""  # free text shown by `metamask datasets`
