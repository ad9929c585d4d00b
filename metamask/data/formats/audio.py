"""Lazily transformed audio datasets: waveforms (in memory or files) -> DABS log-mel images.

Files are read with soundfile (libsndfile ships inside its wheel: WAV and FLAC work with no
system library); only the first channel is kept, as in DABS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.formats.speech_transform import SpeechNorm, speech_image
from metamask.errors import DataError


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(first channel as float64 in [-1, 1], sample rate) of an audio file; DataError if
    it is missing or unreadable."""
    import soundfile

    try:
        data, sample_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        if not path.is_file():
            raise DataError(f"audio file {path} does not exist") from None
        raise DataError(f"{path}: cannot read audio ({exc})") from None
    return data[:, 0], int(sample_rate)


def _take_tail(random_crop: bool) -> bool:
    # DABS: on training splits, a clip longer than the window keeps its head or its tail at
    # random; elsewhere always its head. torch's generator is seeded per DataLoader worker.
    return random_crop and bool(torch.randint(0, 2, ()).item())


class AudioFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Audio files -> (1, 224, 224) float32 DABS log-mel, int64 label; decoded on access."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        norm: SpeechNorm,
        random_crop: bool = False,
    ) -> None:
        if len(paths) != len(labels):
            raise DataError(f"AudioFiles: {len(paths)} files but {len(labels)} labels")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.norm = norm
        self.random_crop = random_crop  # True on training splits (DABS' random head / tail)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        wave, sample_rate = read_audio(self.paths[index])
        image = speech_image(wave, sample_rate, self.norm, _take_tail(self.random_crop))
        return torch.from_numpy(image), torch.tensor(self.labels[index])


class AudioClips(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory int16 clips -> (1, 224, 224) float32 DABS log-mel, int64 label, on access.

    Keeping the waveforms (a few KB each) and transforming per item costs ~10 ms per access but
    avoids holding 200 KB per image in memory.
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        labels: Sequence[int] | np.ndarray,
        sample_rate: int,
        norm: SpeechNorm,
    ) -> None:
        if len(clips) != len(labels):
            raise DataError(f"AudioClips: {len(clips)} clips but {len(labels)} labels")
        self.clips = list(clips)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.sample_rate = sample_rate
        self.norm = norm

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        wave = self.clips[index].astype(np.float64) / 32768.0
        image = speech_image(wave, self.sample_rate, self.norm)
        return torch.from_numpy(image), torch.tensor(self.labels[index])
