"""Datasets that decode one item at a time: CSV rows, image files (audio: formats/audio.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.formats.csv_rows import CsvRows
from metamask.errors import DataError

Item = tuple[torch.Tensor, torch.Tensor]
# (fields of one CSV row, "file:row" for error messages) -> (x, y)
RowParser = Callable[[list[str], str], Item]


class CsvRowsDataset(Dataset[Item]):
    """Rows ``order[i]`` of a CSV, parsed by ``parse`` on access (``parse`` must be picklable:
    a module-level function or a dataclass instance, so DataLoader workers can receive it)."""

    def __init__(self, rows: CsvRows, order: np.ndarray, parse: RowParser) -> None:
        self.rows, self.order, self.parse = rows, np.asarray(order, dtype=np.int64), parse

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> Item:
        row = int(self.order[index])
        return self.parse(self.rows.row(row), f"{self.rows.path} data row {row + 1}")


IMAGE_SIZE = 32  # MetaMAE's RGB setting: DABS "_small", 32 x 32, patch 4


def load_rgb(path: Path, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """An image file -> (3, 32, 32) float32 in [0, 1], as MetaMAE's transform does it.

    RGB conversion, optional crop to ``box`` (left, upper, right, lower), then a bilinear resize
    to 32 x 32 (torchvision's ``Resize((32, 32))`` on a PIL image is exactly PIL's bilinear,
    antialiased, resize; the ``CenterCrop(32)`` after it is a no-op): non-square images are
    squashed, not cropped. No mean / std normalisation.
    """
    from PIL import Image, UnidentifiedImageError  # here: lazy.py is imported with metamask.data

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image file {path} does not exist") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    if box is not None:
        rgb = rgb.crop(box)
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0


class ImageFiles(Dataset[Item]):
    """Image files -> (3, 32, 32) float32 in [0, 1] and an int64 label, decoded on access."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        boxes: Sequence[tuple[int, int, int, int]] | None = None,
    ) -> None:
        if len(paths) != len(labels) or (boxes is not None and len(boxes) != len(paths)):
            raise DataError(f"ImageFiles: {len(paths)} files but {len(labels)} labels")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.boxes = list(boxes) if boxes is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        box = self.boxes[index] if self.boxes is not None else None
        image = load_rgb(self.paths[index], box)
        return torch.from_numpy(image), torch.tensor(self.labels[index])
