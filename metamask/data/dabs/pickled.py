"""DABS datasets stored as pickled pandas DataFrames: EuroSAT (multispectral) and WM-811K wafers.

Pickles can run code when loaded. metamask reads them with a restricted unpickler that only
rebuilds numpy arrays and the parts of a DataFrame (metamask.data.formats.safe_pickle) and refuses
anything else, and only from the data root the user passes. Pickles cannot be read partially:
the first load needs as much memory as the file (EuroSAT pretrain.pkl: ~5 GB of float32; the
WM-811K unlabeled.pkl, similar); the arrays are then cached in the user cache (EuroSAT as
float32 CHW, wafers as the transformed 32 x 32 uint8 images) and memory-mapped on later loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.bundles import IndexSubset, lazy_bundle
from metamask.data.cache import cached_arrays
from metamask.data.dabs.layout import Layouts, dabs_head_tail, dabs_order, folder_entry
from metamask.data.formats.safe_pickle import read_pickled_frame
from metamask.data.formats.wafer_maps import IMAGE_SIZE, WAFER_CLASSES, WAFER_LABELS, wafer_image
from metamask.data.lazy import Item
from metamask.data.registry import register_dataset
from metamask.errors import DataError


@dataclass
class ArrayItems(Dataset[Item]):
    """Items of stored arrays: ``x[i]`` scaled by ``scale`` then ``(x - mean) / std`` per channel
    (float32), and ``y[i]`` (int64). Arrays may be memory-maps."""

    x: np.ndarray
    y: np.ndarray
    mean: np.ndarray | None = None  # per channel, shape (C, 1, 1)
    std: np.ndarray | None = None
    scale: float = 1.0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> Item:
        x = np.asarray(self.x[index], dtype=np.float32) * np.float32(self.scale)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.tensor(
            int(self.y[index])
        )


# ----------------------------------------------------------------------------------------------
# EuroSAT: Sentinel-2 patches (13 bands x 64 x 64, 10 land-use classes)
# ----------------------------------------------------------------------------------------------

EUROSAT = DatasetInfo(
    name="eurosat",
    modality="image2d",
    input_shape=(13, 64, 64),
    patch=(8, 8),
    num_classes=10,
    metric="accuracy",
    domain="multispectral images",
    description="EuroSAT/all (TFDS) as DABS pickles it: 13 Sentinel-2 bands x 64 x 64, "
    "10 land-use classes",
)
EUROSAT_LAYOUTS = Layouts("eurosat_all", "satellite_images")
EUROSAT_FILES = ("pretrain.pkl", "transfer.pkl")
# per-band statistics used by DABS / MetaMAE (TFDS band order; band 10 is the cirrus band)
EUROSAT_MEAN = (1354.3003, 1117.7579, 1042.2800, 947.6443, 1199.6334, 2001.9829, 2372.5579,
                2299.6663, 731.0175, 12.0956, 1822.4083, 1119.5759, 2598.4456)  # fmt: skip
EUROSAT_STD = (244.0469, 323.4128, 385.0928, 584.1638, 566.0543, 858.5753, 1083.6704,
               1103.0342, 402.9594, 4.7207, 1002.4071, 759.6080, 1228.4104)  # fmt: skip


def eurosat_arrays(path: Path) -> dict[str, np.ndarray]:
    """x: float32 (N, 13, 64, 64) raw reflectances (cast whatever the pickle stored: the
    official loader kept float64 pickles as float64); y: int64 labels 0..9."""

    def build() -> dict[str, np.ndarray]:
        columns = read_pickled_frame(path, ("sentinel2", "label"))
        images = columns["sentinel2"]
        x = np.empty((len(images), *EUROSAT.input_shape), dtype=np.float32)
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.shape != (64, 64, 13):
                raise DataError(f"{path}: row {i} sentinel2 has shape {image.shape}, expected "
                                "(64, 64, 13)")  # fmt: skip
            x[i] = image.transpose(2, 0, 1)
        y = np.asarray(columns["label"]).astype(np.int64)
        if len(y) and (y.min() < 0 or y.max() >= EUROSAT.num_classes):
            raise DataError(f"{path}: labels must lie in 0..9, found {y.min()}..{y.max()}")
        return {"x": x, "y": y}

    return cached_arrays("eurosat", [path], build)


def _eurosat_items(arrays: dict[str, np.ndarray]) -> ArrayItems:
    mean = np.array(EUROSAT_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(EUROSAT_STD, dtype=np.float32)[:, None, None]
    return ArrayItems(arrays["x"], arrays["y"], mean, std)


def _load_eurosat(options: LoadOptions) -> DataBundle:
    base = EUROSAT_LAYOUTS.base(options, EUROSAT_FILES, "eurosat")
    pretrain = _eurosat_items(eurosat_arrays(base / "pretrain.pkl"))
    transfer_arrays = eurosat_arrays(base / "transfer.pkl")
    transfer = _eurosat_items(transfer_arrays)
    # DABS shuffled before writing the pickles: the split is a plain head / tail
    head, tail = dabs_head_tail(np.arange(len(transfer)))
    pretrain_head, _ = dabs_head_tail(np.arange(len(pretrain)))
    return lazy_bundle(
        EUROSAT,
        IndexSubset(transfer, head),
        np.asarray(transfer_arrays["y"])[head],
        options,
        test=IndexSubset(transfer, tail),
        pretrain=IndexSubset(pretrain, pretrain_head),
    )


register_dataset(folder_entry(EUROSAT, EUROSAT_LAYOUTS, EUROSAT_FILES, _load_eurosat))

# ----------------------------------------------------------------------------------------------
# wafer-map: WM-811K wafer maps (3 x 32 x 32, 9 failure classes, weighted F1)
# ----------------------------------------------------------------------------------------------

WAFER_MAP = DatasetInfo(
    name="wafer-map",
    modality="image2d",
    input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
    patch=(4, 4),
    num_classes=len(WAFER_CLASSES),
    metric="weighted_f1",
    domain="wafer maps",
    description="WM-811K wafer maps as DABS pickles them: 0/127/255 dies resized to 32 x 32, "
    "9 failure classes",
)
WAFER_LAYOUTS = Layouts("wafer_map", "semiconductors")
WAFER_FILES = ("unlabeled.pkl", "labeled.pkl")


def wafer_arrays(path: Path) -> dict[str, np.ndarray]:
    """x: uint8 (N, 3, 32, 32) DABS-transformed maps (before the 1/255 scaling), y: int64."""

    def build() -> dict[str, np.ndarray]:
        columns = read_pickled_frame(path, ("failureType", "pixels"))
        x = np.empty((len(columns["pixels"]), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for i, pixels in enumerate(columns["pixels"]):
            pixels = np.asarray(pixels)
            if pixels.ndim != 3 or pixels.shape[2] != 3:
                raise DataError(f"{path}: row {i} pixels have shape {pixels.shape}, expected "
                                "(H, W, 3)")  # fmt: skip
            x[i] = np.rint(wafer_image(pixels) * 255.0).astype(np.uint8)
        y = np.empty(len(x), dtype=np.int64)
        for i, failure in enumerate(columns["failureType"]):
            name = str(failure).strip().lower()
            if name not in WAFER_LABELS:
                raise DataError(f"{path}: row {i} failureType {failure!r} is not one of "
                                f"{sorted(WAFER_LABELS)}")  # fmt: skip
            y[i] = WAFER_LABELS[name]
        return {"x": x, "y": y}

    return cached_arrays("wafer-map", [path], build)


def _wafer_split(path: Path) -> tuple[ArrayItems, np.ndarray, np.ndarray, np.ndarray]:
    arrays = wafer_arrays(path)
    items = ArrayItems(arrays["x"], arrays["y"], scale=1.0 / 255.0)
    head, tail = dabs_head_tail(dabs_order(len(items)))  # DABS shuffles with seed 42 first
    return items, head, tail, np.asarray(arrays["y"])


def _load_wafer_map(options: LoadOptions) -> DataBundle:
    base = WAFER_LAYOUTS.base(options, WAFER_FILES, "wafer-map")
    unlabelled, pretrain_head, _, _ = _wafer_split(base / "unlabeled.pkl")
    labelled, head, tail, labels = _wafer_split(base / "labeled.pkl")
    return lazy_bundle(
        WAFER_MAP,
        IndexSubset(labelled, head),
        labels[head],
        options,
        test=IndexSubset(labelled, tail),
        pretrain=IndexSubset(unlabelled, pretrain_head),
    )


register_dataset(folder_entry(WAFER_MAP, WAFER_LAYOUTS, WAFER_FILES, _load_wafer_map))
