"""DABS pickled DataFrames (eurosat, wafer-map), read from real pandas pickles without pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import (
    EUROSAT_LABELS,
    WAFER_TYPES,
    assert_disjoint,
    assert_items,
    write_eurosat,
    write_wafer_map,
)

from metamask.data import LoadOptions, load_dataset
from metamask.data.dabs.layout import dabs_head_tail, dabs_order
from metamask.data.dabs.pickled import EUROSAT_MEAN, EUROSAT_STD
from metamask.data.formats.wafer_maps import WAFER_LABELS, encode_states, wafer_image
from metamask.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METAMASK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("layout", ["metamae", "dabs"])
def test_eurosat_is_float32_chw_normalised_per_band(tmp_path: Path, layout: str) -> None:
    write_eurosat(tmp_path, layout)
    bundle = load_dataset("eurosat", LoadOptions(data_root=str(tmp_path)))
    assert_items(bundle)
    assert_disjoint(bundle)
    assert bundle.test.indices.tolist() == [18, 19]  # head / tail, no reshuffle
    x, y = bundle.test[0]
    label = EUROSAT_LABELS[18]
    assert int(y) == label
    expected = (100.0 * label - torch.tensor(EUROSAT_MEAN)) / torch.tensor(EUROSAT_STD)
    assert torch.allclose(x[:, 5, 7], expected.float(), atol=1e-4)
    assert len(bundle.pretrain) == 18


def test_eurosat_arrays_are_cached_and_memory_mapped(tmp_path: Path, _cache: Path) -> None:
    write_eurosat(tmp_path, "metamae")
    load_dataset("eurosat", LoadOptions(data_root=str(tmp_path)))
    again = load_dataset("eurosat", LoadOptions(data_root=str(tmp_path)))
    assert isinstance(again.test.base.x, np.memmap)
    assert not list((tmp_path / "eurosat_all").glob("*.npy"))  # nothing next to the data
    assert len(list((_cache / "eurosat").iterdir())) == 2  # pretrain.pkl, transfer.pkl


@pytest.mark.parametrize("layout", ["metamae", "dabs"])
def test_wafer_map_labels_and_images_follow_dabs(tmp_path: Path, layout: str) -> None:
    write_wafer_map(tmp_path, layout)
    bundle = load_dataset("wafer-map", LoadOptions(data_root=str(tmp_path)))
    assert_items(bundle)
    assert_disjoint(bundle)
    assert bundle.info.metric == "weighted_f1"
    _, tail = dabs_head_tail(dabs_order(20))
    assert bundle.test.indices.tolist() == tail.tolist()
    for (x, y), row in zip(bundle.test, tail, strict=True):
        assert int(y) == WAFER_LABELS[WAFER_TYPES[row % 10]]  # unlabeled and none -> 0
        states = np.ones((10 + row % 3, 12))
        states[0, :] = states[:, 0] = 0
        states[5, 5] = 2
        expected = wafer_image(encode_states(states))  # the DABS transform of the stored map
        assert torch.allclose(x, torch.from_numpy(expected), atol=1e-6)
    assert len(bundle.pretrain) == 18


def test_pickle_with_a_missing_column_names_it(tmp_path: Path) -> None:
    write_wafer_map(tmp_path, "metamae")
    write_eurosat(tmp_path, "metamae")
    # a eurosat pickle where a wafer pickle is expected
    (tmp_path / "wafer_map/labeled.pkl").write_bytes(
        (tmp_path / "eurosat_all/transfer.pkl").read_bytes()
    )
    with pytest.raises(
        DataError, match=r"labeled.pkl: missing column\(s\) \['failureType', 'pixels'\]"
    ):
        load_dataset("wafer-map", LoadOptions(data_root=str(tmp_path)))
