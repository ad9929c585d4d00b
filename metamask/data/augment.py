"""Train-split augmentation: seeded random views of a dataset's examples, per modality.

The published MLO-MAE trains on ``RandomCrop(32, padding=4)`` and ``RandomHorizontalFlip()``
views of CIFAR (optionally Cutout); its masker picks the top ``r·L`` of its probabilities, so
without augmentation every image gets the same mask at every epoch. :class:`Augmented` wraps a
training split and serves such views:

* ``image2d``: random crop with zero padding (``crop_pad``), horizontal flip with p = 0.5
  (``flip``), one zeroed square of side ``cutout`` (``cutout``), in the published order;
* ``signal1d``: a random shift along time of up to ``shift`` steps, filled with zeros (the
  signal version of the padded crop: recordings are not periodic, so a circular shift would
  join the end to the start with a jump no real recording has);
* ``tokens``: none (a spec that asks is refused by :func:`augment_errors`).

The view of example ``index`` at epoch ``epoch`` is a pure function of ``(seed, epoch, index)``
(:meth:`Augmented.view`), so a resumed run serves bit for bit the views an uninterrupted one
serves, with no state of its own to save: the loader's sampler tells the wrapper which epoch it
serves (:meth:`Augmented.set_epoch`), and the sampler's position is already checkpointed.
Data knows nothing of models or specs: the settings are any object with the four fields
(:class:`Settings`; the spec's ``data.augment`` is one).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from metamask.data.base import DatasetInfo

#: the keys of each modality (the others must stay at their "off" value)
KEYS: dict[str, tuple[str, ...]] = {
    "image2d": ("crop_pad", "flip", "cutout"),
    "signal1d": ("shift",),
    "tokens": (),
}


class Settings(Protocol):
    """The augmentation settings (``data.augment``): 0 / False switches a transform off."""

    @property
    def crop_pad(self) -> int: ...

    @property
    def flip(self) -> bool: ...

    @property
    def cutout(self) -> int: ...

    @property
    def shift(self) -> int: ...


def active(settings: Settings) -> bool:
    """Whether any transform is switched on."""
    return bool(settings.crop_pad or settings.flip or settings.cutout or settings.shift)


def augment_errors(settings: Settings, info: DatasetInfo) -> list[tuple[str, str]]:
    """What is wrong with ``settings`` for the dataset ``info``, as (key, why) pairs.

    A transform of another modality, a padding or shift as large as the input (the view could
    be all fill), a Cutout square larger than the image, and a time shift on tabular rows
    (each position is a different feature) are refused.
    """
    errors: list[tuple[str, str]] = []
    name, own = info.name, KEYS[info.modality]
    for key in ("crop_pad", "flip", "cutout", "shift"):
        if getattr(settings, key) and key not in own:
            allowed = f"only {', '.join(own)}" if own else "no augmentation"
            why = f"dataset {name} has {info.modality} inputs, which take {allowed}"
            errors.append((key, why))
    if info.modality == "image2d":
        side = min(info.input_shape[1:])
        if settings.crop_pad >= side:
            why = f"{settings.crop_pad} must be below the image side {side} ({name})"
            errors.append(("crop_pad", why))
        if settings.cutout > side:
            why = f"{settings.cutout} must be at most the image side {side} ({name})"
            errors.append(("cutout", why))
    if info.modality == "signal1d" and settings.shift:
        steps = info.input_shape[1]
        if info.domain == "tabular":
            why = f"dataset {name} is tabular: a shift would move features into other columns"
            errors.append(("shift", why))
        elif settings.shift >= steps:
            why = f"{settings.shift} must be below the signal length {steps} ({name})"
            errors.append(("shift", why))
    return errors


class Augmented(Dataset):
    """Seeded random views of ``base``'s ``(x, y)`` items; ``y`` passes through unchanged.

    ``dataset[i]`` is ``view(i, epoch)`` at the epoch last given to :meth:`set_epoch` (the
    training loader's sampler sets it as each epoch starts). ``view`` is a pure function of
    ``(seed, epoch, index)``: call it to see the view any epoch served (mask diversity).

    Example:
        >>> data = Augmented(ArrayDataset(x, y), "image2d", settings, seed=7)
        >>> data.set_epoch(3)
        >>> torch.equal(data[5][0], data.view(5, 3)[0])
        True
    """

    def __init__(self, base: Dataset, modality: str, settings: Settings, seed: int) -> None:
        if modality == "tokens" or modality not in KEYS:
            raise ValueError(f"no augmentation for {modality} inputs")
        self.base, self.modality, self.seed = base, modality, int(seed)
        self.crop_pad, self.flip = int(settings.crop_pad), bool(settings.flip)
        self.cutout, self.shift = int(settings.cutout), int(settings.shift)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose views ``dataset[i]`` serves."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Any:
        return self.view(index, self.epoch)

    def view(self, index: int, epoch: int) -> Any:
        """Item ``index`` as epoch ``epoch`` serves it: ``(augmented x, y)``."""
        x, *rest = self.base[index]
        rng = np.random.default_rng((self.seed, int(epoch), int(index)))
        x = self._image(x, rng) if self.modality == "image2d" else self._signal(x, rng)
        return (x, *rest)

    def _image(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.crop_pad:
            pad = self.crop_pad
            top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
            x = F.pad(x, (pad, pad, pad, pad))[..., top : top + height, left : left + width]
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        if self.cutout:
            # as the published Cutout: a centre anywhere in the image, the square clipped at
            # its borders (a hole at an edge is smaller)
            cy, cx = (int(v) for v in rng.integers(0, (height, width)))
            half = self.cutout // 2
            x = x.clone()
            x[..., max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0
        return x.contiguous()

    def _signal(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if not self.shift:
            return x
        steps = x.shape[-1]
        offset = int(rng.integers(0, 2 * self.shift + 1))  # a window of the zero-padded signal
        padded = F.pad(x, (self.shift, self.shift))
        return padded[..., offset : offset + steps].contiguous()
