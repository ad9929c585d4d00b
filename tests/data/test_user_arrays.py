"""A researcher's own arrays (.npz or CSV) become a dataset, with clear errors when wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import assert_items

from metamask.data import LoadOptions, get_dataset, load_dataset
from metamask.data.registry import DATASETS
from metamask.data.user_arrays import ArraySource, array_dataset_entry, register_array_dataset
from metamask.errors import DataError


def _npz(path: Path, n: int = 50, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(n, 3, 16)), "y": np.arange(n) % 4, **extra}
    np.savez(path, **arrays)
    return path


def _source(path: Path, **kw: object) -> ArraySource:
    args: dict[str, object] = {
        "path": str(path),
        "modality": "signal1d",
        "input_shape": (3, 16),
        "patch": (4,),
        "num_classes": 4,
    }
    args.update(kw)
    return ArraySource(**args)  # type: ignore[arg-type]


def _load(source: ArraySource, name: str = "mine") -> object:
    return array_dataset_entry(name, source).load(LoadOptions(seed=1))


def test_npz_arrays_load_with_the_declared_shape_and_a_stratified_test_split(
    tmp_path: Path,
) -> None:
    bundle = _load(_source(_npz(tmp_path / "a.npz")))
    assert_items(bundle)
    assert len(bundle.test) == 10 and len(bundle.train) + len(bundle.val) == 40
    assert bundle.info.metric == "accuracy"
    assert sorted(bundle.test.y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]  # 13,13,12,12 x 0.2


def test_npz_official_test_split_is_used(tmp_path: Path) -> None:
    path = _npz(tmp_path / "a.npz", x_test=np.zeros((7, 3, 16)), y_test=np.zeros(7, dtype=int))
    bundle = _load(_source(path))
    assert len(bundle.test) == 7 and len(bundle.train) + len(bundle.val) == 50


def test_registered_array_dataset_is_found_by_name(tmp_path: Path) -> None:
    name = "user_arrays_test_dataset"
    try:
        register_array_dataset(name, _source(_npz(tmp_path / "a.npz"), standardise="channel"))
        assert get_dataset(name).source == "file"
        bundle = load_dataset(name)
        x = bundle.train.x
        assert torch.allclose(x.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4)
    finally:
        DATASETS.pop(name, None)


def test_load_array_dataset_checks_and_leaves_the_registry_alone(tmp_path: Path) -> None:
    from metamask.data.user_arrays import load_array_dataset

    before = set(DATASETS)
    bundle = load_array_dataset("unregistered", _source(_npz(tmp_path / "a.npz")))
    assert bundle.info.name == "unregistered" and set(DATASETS) == before
    with pytest.raises(DataError, match=r"dataset unregistered: file .*b\.npz does not exist"):
        load_array_dataset("unregistered", _source(tmp_path / "b.npz"))


def test_csv_features_and_label_column_become_flat_tokens(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = ["a,b,label,c"] + [f"{i},{i * 2},{i % 2},{-i}" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    source = _source(path, input_shape=(1, 3), patch=(1,), num_classes=2)
    bundle = _load(source)
    assert bundle.info.metric == "binary_accuracy"
    x, y = bundle.test[0]
    assert x.shape == (1, 3) and float(x[0, 1]) == 2 * float(x[0, 0]) and int(y) in (0, 1)


def test_regression_targets_stay_float(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    np.savez(path, x=np.ones((30, 1, 4)), y=np.linspace(0, 1, 30))
    bundle = _load(_source(path, input_shape=(1, 4), patch=(1,), num_classes=0))
    assert bundle.info.metric == "spearman" and bundle.train.y.dtype == torch.float32


def test_token_arrays_are_checked_against_the_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "tok.npz"
    np.savez(path, x=np.arange(40).reshape(4, 10) % 7, y=np.array([0, 1, 0, 1]))
    source = _source(path, modality="tokens", input_shape=(10,), patch=(1,), num_classes=2)
    with pytest.raises(DataError, match=r"token inputs must be integer ids in 0\.\.4"):
        _load(ArraySource(**{**source.__dict__, "vocab_size": 5}))


@pytest.mark.parametrize(
    ("arrays", "kw", "message"),
    [
        ({"x": np.zeros((5, 3, 15)), "y": np.zeros(5)}, {}, r"shape \(3, 15\) per example"),
        ({"x": np.zeros((5, 3, 16)), "y": np.array([0, 1, 0.5, 1, 0])}, {}, "must be integers"),
        ({"x": np.zeros((5, 3, 16)), "y": np.array([0, 1, 2, 3, 4])}, {}, r"lie in 0\.\.3"),
        ({"x": np.zeros((5, 3, 16))}, {}, r"missing array\(s\) \['y'\]"),
        ({"x": np.full((5, 3, 16), np.nan), "y": np.zeros(5)}, {}, "NaN"),
        ({"x": np.zeros((5, 3, 16)), "y": np.zeros(4)}, {}, "5 inputs but 4 labels"),
    ],
)
def test_bad_npz_files_raise_one_line_errors_naming_the_file(
    tmp_path: Path, arrays: dict[str, np.ndarray], kw: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        _load(_source(path, **kw))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_is_reported_by_requires_and_load(tmp_path: Path) -> None:
    entry = array_dataset_entry("mine", _source(tmp_path / "nope.npz"))
    assert entry.requires(LoadOptions()) == f"file {tmp_path / 'nope.npz'} does not exist"
    with pytest.raises(DataError, match=r"nope\.npz does not exist"):
        entry.load(LoadOptions())


def test_csv_with_string_labels_or_missing_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a,label\n1,cat\n2,dog\n")
    with pytest.raises(DataError, match="label 'cat' in column 'label' is not a number"):
        _load(_source(path, input_shape=(1, 1), patch=(1,)))
    with pytest.raises(DataError, match="no label column 'target'"):
        _load(_source(path, input_shape=(1, 1), patch=(1,), label_column="target"))


def test_inconsistent_declarations_fail_before_loading(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not divide"):
        array_dataset_entry("mine", _source(tmp_path / "a.npz", patch=(5,)))
    with pytest.raises(DataError, match="standardise must be"):
        array_dataset_entry("mine", _source(tmp_path / "a.npz", standardise="minmax"))
