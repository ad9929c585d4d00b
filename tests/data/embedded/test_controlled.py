"""The controlled-masking datasets: registered with their facts, fixed by their seed, the class
only in the informative tokens, and every value's mean and variance the same everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamask.data.embedded.controlled import (
    CLASSES,
    INFORMATIVE,
    LEVELS,
    controlled_arrays,
    informative_map,
    informative_patches,
)
from metamask.data.registry import load_dataset
from metamask.errors import DataError
from metamask.models.tokenizers import build_tokenizer

NAMES = ("controlled_patches", "controlled_signal")


def test_the_levels_have_mean_zero_and_variance_one() -> None:
    assert LEVELS.mean() == pytest.approx(0.0, abs=1e-15)
    assert (LEVELS**2).mean() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_it_loads_with_its_facts_and_the_same_examples_every_time(name: str) -> None:
    bundle = load_dataset(name)
    info = bundle.info
    assert info.num_classes == CLASSES and info.metric == "accuracy"
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 1200  # type: ignore[arg-type]
    x, y = bundle.train[0]
    assert tuple(x.shape) == info.input_shape and 0 <= int(y) < CLASSES
    informative = informative_map(name)
    assert informative.shape == (info.num_tokens,) and informative.sum() == INFORMATIVE[name]
    first, again = controlled_arrays(name), controlled_arrays(name)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(controlled_arrays(name, seed=1)[0], first[0])


def _token_values(name: str, x: np.ndarray) -> np.ndarray:
    """(N, L, values per token) in the model's tokenizer's order (its reconstruction targets)."""
    tokenizer = build_tokenizer(load_dataset(name).info, width=8)
    return tokenizer.targets(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", NAMES)
def test_the_class_is_only_in_the_informative_tokens(name: str) -> None:
    x, y = controlled_arrays(name)
    tokens = _token_values(name, x)
    informative = informative_map(name)
    # per value, over the data set: mean 0 and variance 1 whether informative or not
    for where in (informative, ~informative):
        values = tokens[:, where]
        assert abs(values.mean()) < 0.01 and abs(values.var() - 1) < 0.01
    # the class means of each token: far apart at informative tokens, noise elsewhere
    means = np.stack([tokens[y == c].mean(axis=0) for c in range(CLASSES)])  # (C, L, V)
    spread = means.std(axis=0).mean(axis=-1)  # (L,)
    assert spread[informative].min() > 0.5  # sqrt(0.5) x the levels' spread
    assert spread[~informative].max() < 0.1  # 300 examples of noise per class


def test_the_patch_grid_and_unknown_names() -> None:
    grid = informative_patches()
    assert grid.shape == (8, 8) and np.array_equal(grid.reshape(-1), informative_map(NAMES[0]))
    with pytest.raises(DataError, match="'digits' is not a controlled dataset"):
        informative_map("digits")
