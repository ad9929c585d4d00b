"""DABS natural-image datasets from tiny folders in both layouts (Pillow only)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import (
    assert_disjoint,
    assert_items,
    item_keys,
    write_aircraft,
    write_cifar10,
    write_cub,
    write_dtd,
    write_imagenet,
    write_traffic_sign,
    write_vggflower,
)

from metamask.data import LoadOptions, get_dataset, load_dataset
from metamask.errors import DataError

LAYOUTS = ["metamae", "dabs"]


def _load(name: str, root: Path, seed: int = 0) -> object:
    return load_dataset(name, LoadOptions(seed=seed, data_root=str(root)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cifar10_batches_give_the_official_split(tmp_path: Path, layout: str) -> None:
    write_cifar10(tmp_path, layout)
    bundle = _load("cifar10", tmp_path)
    assert_items(bundle)
    assert len(bundle.test) == 10 and len(bundle.train) + len(bundle.val) == 50
    x, y = bundle.test[3]
    assert int(y) == 3 and torch.allclose(x, torch.full((3, 32, 32), 30 / 255))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cub_uses_the_official_train_test_file(tmp_path: Path, layout: str) -> None:
    write_cub(tmp_path, layout)
    bundle = _load("cub", tmp_path)
    assert_items(bundle)
    assert_disjoint(bundle)
    assert [Path(p).name for p in item_keys(bundle.test)] == [
        "Bird_1.jpg",
        "Bird_5.jpg",
        "Bird_9.jpg",
    ]
    assert [int(y) for _, y in bundle.test] == [0, 1, 2]  # classes 1, 2, 3 -> 0, 1, 2


def test_image_transform_squashes_to_32_by_32_in_0_1(tmp_path: Path) -> None:
    write_cub(tmp_path, "metamae")
    x, _ = _load("cub", tmp_path).test[0]  # a 40 x 30 constant image (20, 10, 235)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[:, 16, 16], torch.tensor([20, 10, 235]) / 255, atol=2 / 255)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vggflower_reproduces_the_dabs_per_class_split(tmp_path: Path, layout: str) -> None:
    labels = write_vggflower(tmp_path, layout)
    bundle = _load("vggflower", tmp_path)
    assert_items(bundle)
    assert_disjoint(bundle)
    # per class (5 images each): int(0.8 * 5) = 4 train, 1 test, chosen by RandomState(42)
    rs = np.random.RandomState(42)
    expected = []
    for label in dict.fromkeys(labels):
        members = [i for i, v in enumerate(labels) if v == label]
        order = np.arange(len(members))
        rs.shuffle(order)
        expected += [f"image_{members[k] + 1:05d}.jpg" for k in order[4:]]
    assert [Path(p).name for p in item_keys(bundle.test)] == expected


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dtd_labels_come_from_every_split_file(tmp_path: Path, layout: str) -> None:
    write_dtd(tmp_path, layout)
    bundle = _load("dtd", tmp_path)
    assert_items(bundle)
    assert_disjoint(bundle)
    # test1 lists only dotted and zigzagged: they keep their global indices 1 and 2
    assert sorted(int(y) for _, y in bundle.test) == [1, 2]
    assert len(bundle.val) == 3  # the official val1 list, not a seeded share


@pytest.mark.parametrize("layout", LAYOUTS)
def test_traffic_sign_split_is_sorted_then_seeded(tmp_path: Path, layout: str) -> None:
    write_traffic_sign(tmp_path, layout)
    a, b = _load("traffic-sign", tmp_path), _load("traffic-sign", tmp_path)
    assert_items(a)
    assert_disjoint(a)
    assert item_keys(a.test) == item_keys(b.test) and len(a.test) == 3  # 1 of 5 per class


@pytest.mark.parametrize("with_val", [False, True])
def test_aircraft_crops_boxes_and_labels_sorted_variants(tmp_path: Path, with_val: bool) -> None:
    write_aircraft(tmp_path, "dabs", with_val=with_val)
    bundle = _load("aircraft", tmp_path)
    assert_items(bundle)
    assert_disjoint(bundle)
    assert len(bundle.test) == 2 and [int(y) for _, y in bundle.test] == [1, 0]  # A320 < Boeing
    x, _ = bundle.test[0]
    assert float(x.max()) < 0.1  # the box holds only the black quarter
    if with_val:
        assert len(bundle.val) == 2 and len(bundle.train) == 4


@pytest.mark.parametrize("layout", LAYOUTS)
def test_imagenet32_pretrains_on_all_train_images(tmp_path: Path, layout: str) -> None:
    write_imagenet(tmp_path, layout)
    bundle = _load("imagenet32", tmp_path)
    assert_items(bundle)
    assert_disjoint(bundle)
    assert len(bundle.pretrain) == 18 and len(bundle.test) == 6  # the val / validation folder


def test_imagenet32_without_validation_folder_holds_out_a_test_share(tmp_path: Path) -> None:
    write_imagenet(tmp_path, "metamae", with_val=False)
    bundle = _load("imagenet32", tmp_path)
    assert_disjoint(bundle)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 18


def test_missing_image_file_is_named(tmp_path: Path) -> None:
    write_cub(tmp_path, "metamae")
    bundle = _load("cub", tmp_path)
    missing = Path(item_keys(bundle.test)[0])
    missing.unlink()
    with pytest.raises(DataError, match=re.escape(f"image file {missing} does not exist")):
        bundle.test[0]


def test_missing_dataset_folder_names_both_layouts(tmp_path: Path) -> None:
    reason = get_dataset("dtd").requires(LoadOptions(data_root=str(tmp_path)))
    assert reason is not None
    assert str(tmp_path / "imagenet/dtd/labels/train1.txt") in reason
    assert str(tmp_path / "natural_images/dtd/dtd/labels/train1.txt") in reason
