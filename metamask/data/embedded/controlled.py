"""Embedded controlled-masking tasks: the class is written only in a known set of patches,
every other patch is noise of the same per-value mean and variance (issue 15, experiment 2).

Two generated datasets, 4 classes x 300 examples each, fixed by :data:`GENERATOR_SEED`
(``LoadOptions.seed`` only changes the splits):

- ``controlled_patches``: 3 x 32 x 32 images, patch 4 (an 8 x 8 grid of 64 patches), 8 of
  them informative (:func:`informative_patches`);
- ``controlled_signal``: 2-channel signals of 128 steps, patch 8 (16 tokens), 4 of them
  informative.

Every value of every example is ``sqrt(m) t + sqrt(1 - m) n`` at an informative position and
``n`` elsewhere, where ``n ~ N(0, 1)`` is fresh noise and ``t`` the class's template value
there, with ``m`` = :data:`PATTERN_SHARE`. At each informative position the four classes'
template values are a random order of ``±1.342, ±0.447`` (mean 0, variance 1 over the
balanced classes), so every value of the data set has mean 0 and variance 1 whether it is
informative or not: the informative patches cannot be told from the noise by their first two
moments, only by what they say about the class. Noise patches are unpredictable, so a masked
auto-encoder can only reconstruct the informative ones (from the class that the visible
informative ones reveal).

:func:`informative_map` gives the ground truth for scripts: one boolean per token, in the
tokenizer's order (row-major over the patch grid for images, time order for signals).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.bundles import split_bundle
from metamask.data.registry import register_dataset
from metamask.errors import DataError

CLASSES = 4
PER_CLASS = 300
GENERATOR_SEED = 1515  # the examples and the informative positions are fixed
PATTERN_SHARE = 0.5  # m: the share of an informative value's variance that is the class's
#: the four classes' template values at one position: mean 0, variance 1
LEVELS = np.array([-3.0, -1.0, 1.0, 3.0]) / np.sqrt(5.0)

CONTROLLED_PATCHES = DatasetInfo(
    name="controlled_patches",
    modality="image2d",
    input_shape=(3, 32, 32),
    patch=(4, 4),
    num_classes=CLASSES,
    metric="accuracy",
    domain="generated (controlled masking)",
    description="4 classes written only in 8 fixed patches of an 8x8 grid, the other 56 "
    "noise of the same mean and variance (generated)",
)
CONTROLLED_SIGNAL = DatasetInfo(
    name="controlled_signal",
    modality="signal1d",
    input_shape=(2, 128),
    patch=(8,),
    num_classes=CLASSES,
    metric="accuracy",
    domain="generated (controlled masking)",
    description="4 classes written only in 4 fixed segments of 16, the other 12 noise of "
    "the same mean and variance (generated)",
)
INFORMATIVE = {"controlled_patches": 8, "controlled_signal": 4}  # informative tokens
_INFOS = {info.name: info for info in (CONTROLLED_PATCHES, CONTROLLED_SIGNAL)}


def informative_map(name: str) -> np.ndarray:
    """Which tokens of dataset ``name`` carry the class: bool (L,), in the tokenizer's order."""
    if name not in _INFOS:
        raise DataError(f"informative_map: {name!r} is not a controlled dataset ({list(_INFOS)})")
    tokens = _INFOS[name].num_tokens
    rng = np.random.default_rng([GENERATOR_SEED, len(name)])
    chosen = rng.choice(tokens, size=INFORMATIVE[name], replace=False)
    informative = np.zeros(tokens, dtype=bool)
    informative[chosen] = True
    return informative


def informative_patches() -> np.ndarray:
    """``controlled_patches``' informative patches as its bool (8, 8) patch grid."""
    return informative_map(CONTROLLED_PATCHES.name).reshape(8, 8)


def _value_mask(info: DatasetInfo) -> np.ndarray:
    """bool of one input's shape: True at the values of informative tokens."""
    informative = informative_map(info.name)
    if info.modality == "image2d":
        (p, q), (_, h, w) = info.patch, info.input_shape
        grid = informative.reshape(h // p, w // q)
        spatial = np.kron(grid, np.ones((p, q), dtype=bool)).astype(bool)
    else:
        spatial = np.repeat(informative, info.patch[0])
    return np.broadcast_to(spatial, info.input_shape)


def controlled_arrays(
    name: str, per_class: int = PER_CLASS, seed: int = GENERATOR_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """float32 inputs (N, *input_shape) and int64 labels 0..3 of controlled dataset ``name``."""
    if name not in _INFOS:
        raise DataError(f"controlled_arrays: {name!r} is not a controlled dataset")
    info = _INFOS[name]
    rng = np.random.default_rng([seed, len(name), 1])
    # per value: a random order of the four levels over the classes
    order = np.argsort(rng.random((*info.input_shape, CLASSES)), axis=-1)
    templates = np.moveaxis(LEVELS[order], -1, 0)  # (classes, *input_shape)
    labels = np.repeat(np.arange(CLASSES, dtype=np.int64), per_class)
    x = rng.standard_normal((len(labels), *info.input_shape))
    where = _value_mask(info)
    pattern = np.sqrt(PATTERN_SHARE) * templates[labels] + np.sqrt(1 - PATTERN_SHARE) * x
    x = np.where(where, pattern, x)
    return x.astype(np.float32), labels


def _loader(info: DatasetInfo) -> Callable[[LoadOptions], DataBundle]:
    def load(options: LoadOptions) -> DataBundle:
        x, y = controlled_arrays(info.name)
        return split_bundle(info, x, y, options)  # already mean 0, variance 1 everywhere

    return load


for _info in (CONTROLLED_PATCHES, CONTROLLED_SIGNAL):
    register_dataset(DatasetEntry(_info, _loader(_info)))
