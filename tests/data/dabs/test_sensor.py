"""PAMAP2 from tiny protocol recordings: fixed windows, no straddling, no cache in the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import PAMAP2_RUN, assert_disjoint, assert_items, write_pamap2

from metamask.data import LoadOptions, load_dataset
from metamask.data.dabs.sensor import ACTIVITIES, WINDOW, interpolate_nans
from metamask.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METAMASK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def pamap2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, tuple[int, int]]]:
    root = tmp_path_factory.mktemp("pamap2")
    return root, write_pamap2(root, "dabs")


def _load(root: Path, seed: int = 0) -> object:
    return load_dataset("pamap2", LoadOptions(seed=seed, data_root=str(root)))


def test_pamap2_windows_have_52_channels_and_one_activity(pamap2: tuple[Path, dict]) -> None:
    root, chosen = pamap2
    bundle = _load(root)
    assert_items(bundle)
    assert_disjoint(bundle, repeats=True)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (50_000, 10_000, 10_000)
    for i in range(0, 10_000, 997):
        x, y = bundle.test[i]
        activity = ACTIVITIES[int(y)]
        imu = x[1:].numpy()  # every IMU value = activity * 1000 + row
        rows = imu[0] - activity * 1000
        assert np.allclose(imu, imu[0:1]) and np.allclose(np.diff(rows), 1)  # one run, no jump
        subject = (105, 106)[int(bundle.test.recs[i]) - 7]
        assert activity in chosen[subject]


def test_pamap2_test_windows_are_fixed_whatever_the_seed(pamap2: tuple[Path, dict]) -> None:
    root, _ = pamap2
    a, b = _load(root, seed=0), _load(root, seed=5)
    assert np.array_equal(a.test.starts, b.test.starts) and np.array_equal(a.test.recs, b.test.recs)
    assert not np.array_equal(a.train.starts, b.train.starts)
    x1, _ = a.test[17]
    x2, _ = a.test[17]
    assert np.array_equal(x1.numpy(), x2.numpy())  # an index is always the same window


def test_pamap2_validation_windows_come_from_run_tails(pamap2: tuple[Path, dict]) -> None:
    root, _ = pamap2
    bundle = _load(root)
    # runs start at rows 50 and 50 + PAMAP2_RUN + 30; the last 20 % (340 rows) is validation
    first_cut = 50 + PAMAP2_RUN - 340
    second_cut = 50 + 2 * PAMAP2_RUN + 30 - 340
    starts = bundle.val.starts
    assert ((starts >= first_cut) & (starts + WINDOW <= 50 + PAMAP2_RUN)).sum() + (
        starts >= second_cut
    ).sum() == len(starts)
    train_ends = bundle.train.starts + WINDOW
    assert not ((bundle.train.starts < first_cut) & (train_ends > first_cut)).any()


def test_pamap2_leading_nans_are_filled_and_cache_stays_out_of_the_data(
    pamap2: tuple[Path, dict], _cache: Path
) -> None:
    root, _ = pamap2
    bundle = _load(root)
    x, _ = bundle.train[0]
    assert np.isfinite(x.numpy()).all()
    assert not list(root.rglob("*.p")) and not list(root.rglob("*.npy"))
    assert len(list((_cache / "pamap2").iterdir())) == 9


def test_interpolation_holds_the_edges_and_zeroes_silent_columns() -> None:
    data = np.array([[np.nan, np.nan], [1.0, np.nan], [np.nan, np.nan], [3.0, np.nan]])
    out = interpolate_nans(data)
    assert out[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0] and out[:, 1].tolist() == [0.0] * 4


def test_missing_subject_file_is_named(tmp_path: Path) -> None:
    write_pamap2(tmp_path, "metamae")
    (tmp_path / "sensor/pamap2/Protocol/subject105.dat").unlink()
    with pytest.raises(DataError, match=r"sensor/pamap2/Protocol/subject105\.dat \(MetaMAE"):
        _load(tmp_path)


def test_runs_too_short_for_a_window_are_reported(pamap2: tuple[Path, dict]) -> None:
    root, _ = pamap2
    with pytest.raises(DataError, match="no validation activity run is longer than 320 rows"):
        load_dataset("pamap2", LoadOptions(data_root=str(root), val_fraction=0.1))
