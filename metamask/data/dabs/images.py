"""DABS natural images at MetaMAE's 32 x 32 setting: imagenet32 (pretraining), CIFAR-10, CUB,
VGG Flowers, DTD, GTSRB traffic signs and FGVC aircraft (transfer); and CIFAR-100 (MLO-MAE).

Every image goes through MetaMAE's transform (metamask.data.lazy.load_rgb): RGB, bilinear
resize to 32 x 32, [0, 1], no normalisation. Files are decoded on access with Pillow; only the
lists of paths and labels are held in memory (CIFAR-10's batches: 180 MB of uint8).

Deliberate differences from the official loaders:

* every file listing is sorted before any seeded shuffle (traffic-sign's unsorted glob made its
  split depend on the file system);
* class indices come from all split files together (DTD and aircraft built them per split
  file, which only works when every split holds every class);
* where the dataset has an official validation split it is used for model selection (DTD val1,
  FGVC ``images_variant_val.txt``); otherwise ``val_fraction`` of the training split, seeded;
* traffic-sign and aircraft, defined in DABS but never wired up in MetaMAE, are available.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.bundles import IndexSubset, lazy_bundle, split_indices
from metamask.data.dabs.layout import DABS_SEED, Layouts, folder_entry
from metamask.data.formats.safe_pickle import restricted_load
from metamask.data.formats.text_files import read_text
from metamask.data.lazy import IMAGE_SIZE, ImageFiles, Item
from metamask.data.registry import register_dataset
from metamask.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def rgb_info(name: str, classes: int, description: str, labelled: bool = True) -> DatasetInfo:
    """The (3, 32, 32), patch 4 DatasetInfo every natural-image dataset shares."""
    return DatasetInfo(
        name=name,
        modality="image2d",
        input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
        patch=(4, 4),
        num_classes=classes,
        metric="accuracy",
        domain="natural images",
        description=description,
        labelled=labelled,
    )


def _lines(path: Path) -> list[str]:
    """The non-blank lines of a list file, stripped; DataError when there are none."""
    lines = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty file (expected one entry per line)")
    return lines


def _pairs(path: Path) -> dict[str, str]:
    """``<key> <value...>`` lines -> {key: value}; DataError naming the line on a bad one."""
    pairs = {}
    for lineno, line in enumerate(_lines(path), start=1):
        key, sep, value = line.partition(" ")
        if not sep:
            raise DataError(f"{path}:{lineno}: expected '<id> <value>', got {line[:60]!r}")
        pairs[key] = value.strip()
    return pairs


def _ordered_split(
    info: DatasetInfo,
    train: ImageFiles,
    test: ImageFiles,
    options: LoadOptions,
    val: ImageFiles | None = None,
) -> DataBundle:
    return lazy_bundle(info, train, train.labels, options, test=test, val=val)


# ----------------------------------------------------------------------------------------------
# imagenet32: ILSVRC-2012 train images resized to 32 x 32 (pretraining)
# ----------------------------------------------------------------------------------------------

IMAGENET32 = rgb_info(
    "imagenet32", 1000, "ILSVRC-2012 train folders resized to 32 x 32 on the fly (DABS pretraining)"
)
IMAGENET_LAYOUTS = Layouts("", "natural_images/imagenet")
IMAGENET_TEST_FRACTION = 0.02  # when no val / validation folder exists


def image_folder(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """An ImageFolder tree ``root/<class>/<image>``: sorted paths, labels (index of the class in
    the sorted class folders), class names. One ``os.scandir`` per class folder."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    paths: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        files = sorted(
            e.name for e in os.scandir(root / name) if e.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        paths += [root / name / f for f in files]
        labels += [k] * len(files)
    return paths, np.array(labels, dtype=np.int64), classes


def _load_imagenet32(options: LoadOptions) -> DataBundle:
    base = IMAGENET_LAYOUTS.base(options, ("train",), "imagenet32")
    paths, labels, classes = image_folder(base / "train")
    pool = ImageFiles(paths, labels)
    for name in ("val", "validation"):  # torchvision ImageNet / DABS
        if (base / name).is_dir():
            test_paths, test_labels, test_classes = image_folder(base / name)
            if test_classes != classes:
                raise DataError(f"{base / name}: class folders differ from {base / 'train'}")
            test = ImageFiles(test_paths, test_labels)
            return lazy_bundle(IMAGENET32, pool, labels, options, test=test, pretrain=pool)
    # no validation folder: hold out a small seeded test share of the train folders
    rest, held = split_indices(labels, IMAGENET_TEST_FRACTION, options.seed)
    bundle = lazy_bundle(
        IMAGENET32, IndexSubset(pool, rest), labels[rest], options, test=IndexSubset(pool, held)
    )
    bundle.pretrain = pool  # DABS pretrains on every train image
    return bundle


register_dataset(folder_entry(IMAGENET32, IMAGENET_LAYOUTS, ("train",), _load_imagenet32))

# ----------------------------------------------------------------------------------------------
# cifar10: the python batches (cifar-10-batches-py), official train / test
# ----------------------------------------------------------------------------------------------

CIFAR10 = rgb_info("cifar10", 10, "CIFAR-10 python batches: 50 000 train / 10 000 test")
CIFAR_LAYOUTS = Layouts("", "natural_images/cifar10")
CIFAR_TRAIN = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "cifar-10-batches-py/test_batch"


class UInt8Images(Dataset[Item]):
    """(N, 3, 32, 32) uint8 images -> float32 in [0, 1], with int64 labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Item:
        x = torch.from_numpy(self.images[index].astype(np.float32) / 255.0)
        return x, torch.tensor(self.labels[index])


def read_cifar_batches(paths: Sequence[Path]) -> UInt8Images:
    """CIFAR-10 python batches (pickled dicts, read with the restricted unpickler)."""
    images, labels = [], []
    for path in paths:
        batch = restricted_load(path, encoding="latin1")
        if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
            raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict with data, labels)")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch["labels"]):
            raise DataError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    y = np.concatenate(labels)
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"{paths[0].parent}: CIFAR-10 labels must lie in 0..9")
    return UInt8Images(np.concatenate(images), y)


def _load_cifar10(options: LoadOptions) -> DataBundle:
    base = CIFAR_LAYOUTS.base(options, (*CIFAR_TRAIN, CIFAR_TEST), "cifar10")
    train = read_cifar_batches([base / p for p in CIFAR_TRAIN])
    test = read_cifar_batches([base / CIFAR_TEST])
    return lazy_bundle(CIFAR10, train, train.labels, options, test=test)


register_dataset(folder_entry(CIFAR10, CIFAR_LAYOUTS, (*CIFAR_TRAIN, CIFAR_TEST), _load_cifar10))

# ----------------------------------------------------------------------------------------------
# cifar100: the python pickles (cifar-100-python/{train,test}), fine labels, official split
# (not a DABS dataset: MLO-MAE reports on it)
# ----------------------------------------------------------------------------------------------

CIFAR100 = rgb_info("cifar100", 100, "CIFAR-100 python pickles, fine labels: 50 000 / 10 000")
CIFAR100_LAYOUTS = Layouts("", "natural_images/cifar100")
CIFAR100_FILES = ("cifar-100-python/train", "cifar-100-python/test")


def read_cifar100(path: Path) -> UInt8Images:
    """One CIFAR-100 pickle (``train`` or ``test``): images and their fine labels (0..99)."""
    batch = restricted_load(path, encoding="latin1")
    if not isinstance(batch, dict) or "data" not in batch or "fine_labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-100 file (expected a dict with data, fine_labels)")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["fine_labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{path}: data has shape {data.shape}, expected ({len(labels)}, 3072)")
    if len(labels) and (labels.min() < 0 or labels.max() > 99):
        raise DataError(f"{path}: CIFAR-100 fine labels must lie in 0..99")
    return UInt8Images(data.reshape(-1, 3, 32, 32), labels)


def _load_cifar100(options: LoadOptions) -> DataBundle:
    base = CIFAR100_LAYOUTS.base(options, CIFAR100_FILES, "cifar100")
    train, test = (read_cifar100(base / name) for name in CIFAR100_FILES)
    return lazy_bundle(CIFAR100, train, train.labels, options, test=test)


register_dataset(folder_entry(CIFAR100, CIFAR100_LAYOUTS, CIFAR100_FILES, _load_cifar100))

# ----------------------------------------------------------------------------------------------
# cub: Caltech-UCSD Birds 200-2011, official train / test split
# ----------------------------------------------------------------------------------------------

CUB = rgb_info("cub", 200, "CUB-200-2011 birds: official split 5994 / 5794, 200 species")
CUB_LAYOUTS = Layouts("", "natural_images/cu_birds")
CUB_FILES = tuple(
    f"CUB_200_2011/{f}" for f in ("images.txt", "image_class_labels.txt", "train_test_split.txt")
)


def _load_cub(options: LoadOptions) -> DataBundle:
    base = CUB_LAYOUTS.base(options, CUB_FILES, "cub") / "CUB_200_2011"
    images = _pairs(base / "images.txt")
    classes = _pairs(base / "image_class_labels.txt")
    is_train = _pairs(base / "train_test_split.txt")
    split: dict[bool, tuple[list[Path], list[int]]] = {True: ([], []), False: ([], [])}
    for image_id, rel in images.items():
        if image_id not in classes or image_id not in is_train:
            raise DataError(f"{base}: image id {image_id} has no class or no split entry")
        label = int(classes[image_id]) - 1
        if not 0 <= label < CUB.num_classes:
            raise DataError(f"{base / 'image_class_labels.txt'}: class {label + 1} not in 1..200")
        paths, labels = split[is_train[image_id] == "1"]
        paths.append(base / "images" / rel)
        labels.append(label)
    train, test = ImageFiles(*split[True]), ImageFiles(*split[False])
    return _ordered_split(CUB, train, test, options)


register_dataset(folder_entry(CUB, CUB_LAYOUTS, CUB_FILES, _load_cub))

# ----------------------------------------------------------------------------------------------
# vggflower: Oxford 102 flowers; DABS' own per-class 80 / 20 split (seed 42)
# ----------------------------------------------------------------------------------------------

VGGFLOWER = rgb_info("vggflower", 102, "Oxford 102 flowers: per-class 80/20 split, seed 42 (DABS)")
FLOWER_LAYOUTS = Layouts("flowers102", "natural_images/flowers")


def _load_vggflower(options: LoadOptions) -> DataBundle:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    base = FLOWER_LAYOUTS.base(options, ("imagelabels.mat", "jpg"), "vggflower")
    try:
        labels = np.asarray(loadmat(base / "imagelabels.mat")["labels"]).reshape(-1).astype(int)
    except (OSError, ValueError, KeyError, IndexError, TypeError, MatReadError) as exc:
        raise DataError(f"{base / 'imagelabels.mat'}: cannot read key 'labels' ({exc})") from None
    # as DABS: classes in order of first appearance, one RandomState(42) shuffling each class's
    # image indices in turn; the first int(0.8 n) of a class train, the rest test
    rs = np.random.RandomState(DABS_SEED)
    parts: dict[bool, tuple[list[Path], list[int]]] = {True: ([], []), False: ([], [])}
    for label in dict.fromkeys(labels.tolist()):
        if not 1 <= label <= VGGFLOWER.num_classes:
            raise DataError(f"{base / 'imagelabels.mat'}: label {label} not in 1..102")
        members = np.flatnonzero(labels == label)
        order = np.arange(len(members))
        rs.shuffle(order)
        cut = int(0.8 * len(members))
        for rank, k in enumerate(order):
            paths, ys = parts[rank < cut]
            paths.append(base / "jpg" / f"image_{members[k] + 1:05d}.jpg")
            ys.append(label - 1)
    return _ordered_split(VGGFLOWER, ImageFiles(*parts[True]), ImageFiles(*parts[False]), options)


register_dataset(
    folder_entry(VGGFLOWER, FLOWER_LAYOUTS, ("imagelabels.mat", "jpg"), _load_vggflower)
)

# ----------------------------------------------------------------------------------------------
# dtd: Describable Textures, split 1 (train1 / val1 / test1)
# ----------------------------------------------------------------------------------------------

DTD = rgb_info("dtd", 47, "Describable Textures, split 1: train1 / val1 / test1, 47 textures")
DTD_LAYOUTS = Layouts("imagenet/dtd", "natural_images/dtd/dtd")
DTD_FILES = ("labels/train1.txt", "labels/val1.txt", "labels/test1.txt")


def _load_dtd(options: LoadOptions) -> DataBundle:
    base = DTD_LAYOUTS.base(options, DTD_FILES, "dtd")
    splits = {name: _lines(base / f"labels/{name}1.txt") for name in ("train", "val", "test")}
    categories = sorted({rel.split("/")[0] for rows in splits.values() for rel in rows})
    files = {
        name: ImageFiles(
            [base / "images" / rel for rel in rows],
            [categories.index(rel.split("/")[0]) for rel in rows],
        )
        for name, rows in splits.items()
    }
    return _ordered_split(DTD, files["train"], files["test"], options, val=files["val"])


register_dataset(folder_entry(DTD, DTD_LAYOUTS, DTD_FILES, _load_dtd))

# ----------------------------------------------------------------------------------------------
# traffic-sign: GTSRB training images, per-class 80 / 20 split (seed 42) of the sorted files
# ----------------------------------------------------------------------------------------------

TRAFFIC_SIGN = rgb_info("traffic-sign", 43, "GTSRB final training set: per-class 80/20 split")
TRAFFIC_LAYOUTS = Layouts("imagenet/traffic_sign", "natural_images/traffic_sign")
GTSRB_IMAGES = "GTSRB/Final_Training/Images"


def _load_traffic_sign(options: LoadOptions) -> DataBundle:
    base = TRAFFIC_LAYOUTS.base(options, (GTSRB_IMAGES,), "traffic-sign") / GTSRB_IMAGES
    rs = np.random.RandomState(DABS_SEED)
    parts: dict[bool, tuple[list[Path], list[int]]] = {True: ([], []), False: ([], [])}
    for label in range(TRAFFIC_SIGN.num_classes):
        folder = base / f"{label:05d}"
        files = sorted(folder.glob("*.ppm"))  # sorted: the official glob order was not
        order = np.arange(len(files))
        rs.shuffle(order)
        cut = int(0.8 * len(files))
        for rank, k in enumerate(order):
            paths, ys = parts[rank < cut]
            paths.append(files[k])
            ys.append(label)
    if not parts[True][0]:
        raise DataError(f"{base}: no .ppm images in {base}/00000 ... 00042")
    return _ordered_split(
        TRAFFIC_SIGN, ImageFiles(*parts[True]), ImageFiles(*parts[False]), options
    )


register_dataset(folder_entry(TRAFFIC_SIGN, TRAFFIC_LAYOUTS, (GTSRB_IMAGES,), _load_traffic_sign))

# ----------------------------------------------------------------------------------------------
# aircraft: FGVC-Aircraft 2013b variants, cropped to their bounding boxes
# ----------------------------------------------------------------------------------------------

AIRCRAFT = rgb_info("aircraft", 100, "FGVC-Aircraft 2013b: 100 variants, bounding-box crops")
AIRCRAFT_LAYOUTS = Layouts(
    "imagenet/fgvc-aircraft-2013b", "natural_images/aircraft/fgvc-aircraft-2013b"
)
AIRCRAFT_FILES = (
    "data/images_variant_trainval.txt",
    "data/images_variant_test.txt",
    "data/images_box.txt",
)


def _load_aircraft(options: LoadOptions) -> DataBundle:
    base = AIRCRAFT_LAYOUTS.base(options, AIRCRAFT_FILES, "aircraft") / "data"
    boxes = {}
    for image_id, value in _pairs(base / "images_box.txt").items():
        try:
            xmin, ymin, xmax, ymax = (int(v) for v in value.split())
        except ValueError:
            raise DataError(
                f"{base / 'images_box.txt'}: bad box for {image_id}: {value!r}"
            ) from None
        boxes[image_id] = (xmin, ymin, xmax, ymax)
    names = ["trainval", "test"]
    has_val = (base / "images_variant_train.txt").is_file() and (
        base / "images_variant_val.txt"
    ).is_file()
    if has_val:  # FGVC's own train / val halves of trainval
        names = ["train", "val", "test"]
    splits = {name: _pairs(base / f"images_variant_{name}.txt") for name in names}
    variants = sorted({v for rows in splits.values() for v in rows.values()})
    if len(variants) > AIRCRAFT.num_classes:
        raise DataError(f"{base}: {len(variants)} variants, expected at most 100")

    def files(rows: dict[str, str]) -> ImageFiles:
        ids = sorted(rows)
        missing = [i for i in ids if i not in boxes]
        if missing:
            raise DataError(f"{base / 'images_box.txt'}: no box for image {missing[0]}")
        return ImageFiles(
            [base / "images" / f"{i}.jpg" for i in ids],
            [variants.index(rows[i]) for i in ids],
            [boxes[i] for i in ids],
        )

    if has_val:
        return _ordered_split(
            AIRCRAFT,
            files(splits["train"]),
            files(splits["test"]),
            options,
            val=files(splits["val"]),
        )
    return _ordered_split(AIRCRAFT, files(splits["trainval"]), files(splits["test"]), options)


register_dataset(folder_entry(AIRCRAFT, AIRCRAFT_LAYOUTS, AIRCRAFT_FILES, _load_aircraft))
