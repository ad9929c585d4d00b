"""CIFAR-100 from a tiny `cifar-100-python` folder, in both layouts (pickles as the real ones)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import assert_items, base

from metamask.data import LoadOptions, get_dataset, load_dataset
from metamask.data.labelled_splits import split_labelled
from metamask.errors import DataError


def write_cifar100(root: Path, layout: str, n_train: int = 60, n_test: int = 20) -> None:
    """cifar-100-python/{train,test,meta}: image i is constant (2 * fine label), fine label
    i % 100 for the test file and (7 * i) % 100 for train; coarse labels are fine // 5."""
    folder = base(root, layout, "", "natural_images/cifar100") / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, step in (("train", n_train, 7), ("test", n_test, 1)):
        fine = [(step * i) % 100 for i in range(n)]
        data = np.repeat(np.array(fine, dtype=np.uint8)[:, None] * 2, 3072, axis=1)
        payload = {
            "filenames": [f"img_{i}.png" for i in range(n)],
            "batch_label": f"{name} batch",
            "fine_labels": fine,
            "coarse_labels": [f // 5 for f in fine],
            "data": data,
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    with (folder / "meta").open("wb") as handle:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, handle, protocol=2)


@pytest.mark.parametrize("layout", ["metamae", "dabs"])
def test_cifar100_reads_fine_labels_and_the_official_split(tmp_path: Path, layout: str) -> None:
    write_cifar100(tmp_path, layout)
    bundle = load_dataset("cifar100", LoadOptions(data_root=str(tmp_path)))
    assert_items(bundle)
    assert bundle.info.num_classes == 100 and bundle.info.input_shape == (3, 32, 32)
    assert len(bundle.test) == 20 and len(bundle.train) + len(bundle.val) == 60
    x, y = bundle.test[13]
    assert int(y) == 13 and torch.allclose(x, torch.full((3, 32, 32), 26 / 255))


def test_cifar100_without_its_files_says_which_are_expected(tmp_path: Path) -> None:
    reason = get_dataset("cifar100").requires(LoadOptions(data_root=str(tmp_path)))
    assert reason is not None and "cifar-100-python/train" in reason
    with pytest.raises(DataError, match="cifar-100-python/train"):
        load_dataset("cifar100", LoadOptions(data_root=str(tmp_path)))


def test_a_cifar10_batch_is_not_taken_for_cifar100(tmp_path: Path) -> None:
    write_cifar100(tmp_path, "metamae")
    with (tmp_path / "cifar-100-python" / "test").open("wb") as handle:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, handle, protocol=2)
    with pytest.raises(DataError, match="not a CIFAR-100 file"):
        load_dataset("cifar100", LoadOptions(data_root=str(tmp_path)))


def test_mlomae_splits_a_lazy_folder_dataset_without_decoding_images(tmp_path: Path) -> None:
    write_cifar100(tmp_path, "dabs", n_train=200)
    bundle = load_dataset("cifar100", LoadOptions(data_root=str(tmp_path)))
    splits = split_labelled(bundle, 0.2, seed=0)
    a, b = splits.a.indices, splits.b.indices  # type: ignore[attr-defined]
    assert len(a) + len(b) == len(bundle.train) and not set(a) & set(b)  # type: ignore[arg-type]
