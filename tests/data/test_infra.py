"""The data layer's plumbing: CSV row index, user cache, restricted unpickler, layouts, registry."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import SMALL_FRAMES, blob

from metamask.data import LoadOptions, all_datasets
from metamask.data.cache import cached_array, cached_json
from metamask.data.dabs.layout import Layouts, dabs_head_tail, dabs_order
from metamask.data.formats.csv_rows import CsvRows
from metamask.data.formats.safe_pickle import frame_columns, restricted_load
from metamask.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("METAMASK_CACHE_DIR", str(folder))
    monkeypatch.delenv("METAMASK_NO_CACHE", raising=False)
    return folder


def test_csv_rows_reads_any_row_with_quoted_commas_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b',primary,ss3\r\n0,AC,"[0, 1]"\r\n\r\n1,GT,"[2, 2]"\n2,A,"[1]"')
    rows = CsvRows(path)
    assert rows.header == ["", "primary", "ss3"] and len(rows) == 3
    assert rows.row(1) == ["1", "GT", "[2, 2]"] and rows.row(2) == ["2", "A", "[1]"]
    assert rows.row(0) == ["0", "AC", "[0, 1]"]
    assert rows.column("ss3") == 2
    with pytest.raises(DataError, match="no column 'label'"):
        rows.column("label")


def test_csv_rows_survives_pickling_and_names_a_malformed_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3\n")
    rows = pickle.loads(pickle.dumps(CsvRows(path)))
    assert rows.row(0) == ["1", "2"]
    with pytest.raises(DataError, match=r"t.csv: data row 2 has 1 fields, the header 2"):
        rows.row(1)


def test_cache_is_written_atomically_to_the_user_cache_and_reused(
    tmp_path: Path, _cache: Path
) -> None:
    source = tmp_path / "src.txt"
    source.write_text("x")
    calls = []

    def build() -> np.ndarray:
        calls.append(1)
        return np.arange(5)

    first = cached_array("demo", [source], build, mmap=True)
    again = cached_array("demo", [source], build, mmap=True)
    assert np.array_equal(first, again) and len(calls) == 1
    assert isinstance(again, np.memmap)
    files = list((_cache / "demo").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".tmp")
    source.write_text("changed")  # a changed source invalidates the entry
    cached_array("demo", [source], build)
    assert len(calls) == 2
    assert cached_json("j", [source], lambda: ["a", "b"]) == ["a", "b"]


def test_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAMASK_NO_CACHE", "1")
    source = tmp_path / "s"
    source.write_text("x")
    cached_array("demo", [source], lambda: np.zeros(2))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("version", sorted(SMALL_FRAMES))
def test_pandas_pickles_of_every_major_version_are_read_without_pandas(
    tmp_path: Path, version: str
) -> None:
    path = tmp_path / "frame.pkl"
    path.write_bytes(blob(SMALL_FRAMES[version]))
    columns = frame_columns(restricted_load(path), path)
    assert list(columns["failureType"]) == ["none", "Donut", "edge-ring"]
    assert columns["label"].tolist() == [0, 2, 7]
    assert [p.tolist() for p in columns["pixels"]] == [
        (np.arange(6).reshape(1, 2, 3) * k).tolist() for k in range(3)
    ]


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        restricted_load(path)


def test_missing_pickle_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"file {tmp_path / 'x.pkl'} does not exist")):
        restricted_load(tmp_path / "x.pkl")


def test_dabs_order_is_pandas_sample_with_seed_42() -> None:
    # pandas' df.sample(frac=1, random_state=42) draws RandomState(42).choice(n, n, False)
    rs = np.random.RandomState(42)
    assert np.array_equal(dabs_order(50), rs.choice(50, size=50, replace=False))


@pytest.mark.parametrize("n", [1, 9, 10, 11, 70, 1000, 12345])
def test_dabs_head_tail_is_disjoint_complete_and_keeps_the_dabs_head(n: int) -> None:
    import math

    head, tail = dabs_head_tail(np.arange(n))
    assert len(head) == math.ceil(0.9 * n)  # the official head size
    assert len(head) + len(tail) == n and not set(head) & set(tail)


def test_layouts_name_the_expected_path_of_each_layout(tmp_path: Path) -> None:
    layouts = Layouts("eurosat_all", "satellite_images")
    options = LoadOptions(data_root=str(tmp_path))
    reason = layouts.why_missing(options, ("pretrain.pkl",))
    assert reason == (
        f"expected {tmp_path / 'eurosat_all/pretrain.pkl'} (MetaMAE layout) or "
        f"{tmp_path / 'satellite_images/pretrain.pkl'} (DABS layout); neither exists"
    )
    assert "needs --data-root" in (layouts.why_missing(LoadOptions(), ("x",)) or "")
    (tmp_path / "satellite_images").mkdir()
    (tmp_path / "satellite_images/pretrain.pkl").write_bytes(b"")  # present, not a pickle
    pkl = tmp_path / "satellite_images/pretrain.pkl"
    assert layouts.why_missing(options, ("pretrain.pkl",)) == (
        f"present but unreadable: {pkl}: empty file"
    )
    pkl.write_bytes(b"\x80\x04N.")  # pickle.dumps(None): the first byte is what is checked
    assert layouts.why_missing(options, ("pretrain.pkl",)) is None
    assert layouts.base(options, ("pretrain.pkl",), "eurosat") == tmp_path / "satellite_images"


def test_every_dataset_declares_a_metric_and_a_cheap_availability_check(tmp_path: Path) -> None:
    entries = all_datasets()
    folder = [e for e in entries.values() if e.source == "folder"]
    assert len(folder) == 27  # the 26 DABS folders and CIFAR-100
    start = time.perf_counter()
    for entry in entries.values():
        if entry.source == "folder":
            assert "neither exists" in (entry.requires(LoadOptions(data_root=str(tmp_path))) or "")
            assert "--data-root" in (entry.requires(LoadOptions()) or "")
    assert time.perf_counter() - start < 0.5  # stats only, nothing is loaded
    for entry in entries.values():
        info = entry.info
        assert info.metric in ("accuracy", "binary_accuracy", "weighted_f1", "spearman",
                               "token_accuracy")  # fmt: skip
        assert (info.num_classes == 0) == (info.metric == "spearman" or not info.labelled)
        assert info.domain and info.description
