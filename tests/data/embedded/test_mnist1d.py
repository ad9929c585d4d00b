"""MNIST-1D drawn offline: the published recipe's values (pinned, and against the package where
installed), its resampling, and the bundles' splits."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from metamask.data import LoadOptions, load_dataset
from metamask.data.embedded.mnist1d import FINAL_LENGTH, mnist1d_arrays, resample, templates


def test_the_published_set_matches_values_recorded_from_the_package() -> None:
    """Recorded from mnist1d 0.0.2.post1 ``make_dataset(get_dataset_args())`` (4000 + 1000)."""
    x, y = mnist1d_arrays(5000)
    assert x.shape == (5000, FINAL_LENGTH) and y.dtype == np.int64
    train, test = x[:4000], x[4000:]
    ref_first = [-0.3320056673693902, -0.4719103656557236, -0.778697076293495, -1.0097408265367047]
    ref_last = [0.4472328851428726, 0.6598756470890784, 0.8777343497528006, 1.193151836835276]
    np.testing.assert_allclose(train[0, :4], ref_first, rtol=0, atol=1e-12)
    np.testing.assert_allclose(test[-1, -4:], ref_last, rtol=0, atol=1e-12)
    assert y[:12].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1, 6, 9]
    assert y[-12:].tolist() == [3, 9, 8, 3, 3, 6, 1, 2, 5, 9, 6, 4]
    assert np.bincount(y[:4000]).tolist() == [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    assert abs(train.sum() - -51.78746787509556) < 1e-8
    assert abs(np.abs(test).sum() - 29977.877540866408) < 1e-8


@pytest.mark.skipif(importlib.util.find_spec("mnist1d") is None, reason="mnist1d not installed")
def test_equals_the_package_make_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package imports requests (to download a pickle) at import; the generator needs none."""
    monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 1230  # not the default: the size is a parameter of the recipe
    ref = make_dataset(args)
    x, y = mnist1d_arrays(1230)
    cut = len(ref["y"])
    assert cut == 984 and len(y) == 1230
    np.testing.assert_allclose(x[:cut], ref["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(x[cut:], ref["x_test"], rtol=0, atol=1e-12)
    assert np.array_equal(y[:cut], ref["y"]) and np.array_equal(y[cut:], ref["y_test"])
    np.testing.assert_allclose(templates(), ref["templates"]["x"], rtol=0, atol=1e-15)


def test_templates_start_and_end_at_zero_with_std_one_sixth() -> None:
    t = templates()
    assert t.shape == (10, 12)
    assert np.all(t[:, 0] == 0) and np.allclose(t[:, -1], 0)
    np.testing.assert_allclose(t.std(axis=1), 1 / 6)


def test_resample_is_linear_interpolation_of_each_rows_own_length() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 30))
    lengths = np.array([2, 7, 13, 29, 30])
    out = resample(rows, lengths, 17)
    for i, n in enumerate(lengths):
        ref = np.interp(np.linspace(0, 1, 17), np.linspace(0, 1, n), rows[i, :n])
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=1e-12)
        assert out[i, 0] == rows[i, 0] and out[i, -1] == rows[i, n - 1]


def test_the_bundle_keeps_the_recipe_test_split_and_balances_classes() -> None:
    x, y = mnist1d_arrays(5000)
    a = load_dataset("mnist1d", LoadOptions(seed=0))
    b = load_dataset("mnist1d", LoadOptions(seed=1))
    assert (len(a.train), len(a.val), len(a.test)) == (3200, 800, 1000)
    expected = torch.as_tensor(x[4000:], dtype=torch.float32)[:, None, :]
    assert torch.equal(a.test.x, expected) and a.test.y.tolist() == y[4000:].tolist()
    assert torch.equal(a.test.x, b.test.x)  # the seed moves the validation split only
    assert not torch.equal(a.val.x, b.val.x)
    train_y = torch.cat([a.train.y, a.val.y])
    assert torch.bincount(train_y).tolist() == np.bincount(y[:4000]).tolist()


def test_the_large_set_is_100k_of_the_same_recipe() -> None:
    bundle = load_dataset("mnist1d_large")
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (80_000, 20_000)
    assert bundle.train.x.shape[1:] == (1, FINAL_LENGTH)
    assert torch.bincount(bundle.test.y, minlength=10).min() > 1800  # about 2000 each
    assert abs(float(bundle.test.x.mean())) < 0.02 and abs(float(bundle.test.x.std()) - 1) < 0.02
