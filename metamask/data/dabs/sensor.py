"""DABS time series: PAMAP2 (52 body-sensor channels x 320 steps at 100 Hz, 12 activities).

Files: the UCI PAMAP2 ``Protocol/subject101.dat`` ... ``subject109.dat`` (MetaMAE:
``sensor/pamap2/Protocol``; DABS: ``sensor/pamap2/PAMAP2_Dataset/Protocol``): space-separated,
54 columns (timestamp, activity id, heart rate, 3 IMUs x 17), ``NaN`` where a sensor is silent.
Subjects 101-104 and 107-109 train; 105 and 106 test (MetaMAE's split).

How this differs from the official loader, on purpose:

* NaNs are interpolated linearly per column *and* held constant before the first / after the
  last reading (the official forward-only interpolation leaves leading heart-rate NaNs in);
* windows come from contiguous runs of one activity and never straddle two separate runs
  (the official code concatenates all rows of a (subject, activity) pair);
* the windows are drawn once, from seeds: the test set (fixed seed 42) is the same 10 000
  windows on every pass and for every run seed, where the official one changes every epoch;
  item i is always the same window (the official ``__getitem__`` ignores its index);
* the validation windows come from the last ``val_fraction`` of every training run, so they
  never overlap a training window;
* parsed recordings are cached as float32 in the user cache (metamask.data.cache), never next
  to the data, and memory-mapped (about 0.4 GB on disk for the 9 subjects).

As in the official loader, a (subject, activity) pair is drawn uniformly, then a window
uniformly within it; the 52 channels (heart rate onward) are kept raw, without normalisation.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.cache import cached_array
from metamask.data.dabs.layout import DABS_SEED, Layouts, folder_entry
from metamask.data.lazy import Item
from metamask.data.registry import register_dataset
from metamask.errors import DataError

WINDOW = 320  # rows (3.2 s at 100 Hz)
COLUMNS = 54
CHANNELS = slice(2, COLUMNS)  # heart rate and the 3 x 17 IMU columns
ACTIVITIES = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)  # PAMAP2 ids -> labels 0..11
TRAIN_SUBJECTS = (101, 102, 103, 104, 107, 108, 109)
TEST_SUBJECTS = (105, 106)
TRAIN_WINDOWS, EVAL_WINDOWS = 50_000, 10_000  # the official epoch lengths

PAMAP2 = DatasetInfo(
    name="pamap2",
    modality="signal1d",
    input_shape=(COLUMNS - 2, WINDOW),
    patch=(5,),
    num_classes=len(ACTIVITIES),
    metric="accuracy",
    domain="time series",
    description="PAMAP2 protocol recordings: heart rate + 3 IMUs (52 ch) x 3.2 s windows, "
    "12 activities; subjects 105/106 test",
)
LAYOUTS = Layouts("sensor/pamap2/Protocol", "sensor/pamap2/PAMAP2_Dataset/Protocol")
FILES = tuple(f"subject{s}.dat" for s in TRAIN_SUBJECTS + TEST_SUBJECTS)


def interpolate_nans(data: np.ndarray) -> np.ndarray:
    """Fill NaNs per column by linear interpolation, holding the first / last reading at the
    edges; an all-NaN column becomes 0. Works in place and returns ``data``."""
    index = np.arange(len(data))
    for c in range(data.shape[1]):
        col = data[:, c]
        missing = np.isnan(col)
        if missing.all():
            col[:] = 0.0
        elif missing.any():
            col[missing] = np.interp(index[missing], index[~missing], col[~missing])
    return data


def read_subject(path: Path) -> np.ndarray:
    """One PAMAP2 recording as float32 (rows, 54), NaNs interpolated; cached in the user cache."""

    def build() -> np.ndarray:
        try:
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise DataError(f"{path}: not a PAMAP2 recording ({exc})") from None
        if data.shape[1] != COLUMNS:
            raise DataError(f"{path}: expected {COLUMNS} columns, found {data.shape[1]}")
        return interpolate_nans(data).astype(np.float32)

    return cached_array("pamap2", [path], build, mmap=True)


def activity_runs(activity: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, end) of every maximal run of rows with one of the 12 activities."""
    edges = np.flatnonzero(np.diff(activity) != 0) + 1
    bounds = np.concatenate([[0], edges, [len(activity)]])
    runs = []
    for start, end in itertools.pairwise(bounds):
        act = int(activity[start])
        if act in ACTIVITIES:
            runs.append((ACTIVITIES.index(act), int(start), int(end)))
    return runs


def draw_windows(
    runs: list[tuple[int, int, int, int]], count: int, seed: int, split: str = "windows"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` windows: (recording, first row, label) arrays, drawn with ``seed``.

    ``runs`` holds (recording, label, start, end); runs of at most ``WINDOW`` rows are unusable.
    A (recording, label) pair is drawn uniformly, then a start uniformly over its usable runs.
    """
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for rec, label, start, end in runs:
        if end - start > WINDOW:
            groups.setdefault((rec, label), []).append((start, end - WINDOW))
    if not groups:
        raise DataError(
            f"dataset pamap2: no {split} activity run is longer than {WINDOW} rows "
            "(a shorter val_fraction leaves longer training runs)"
        )
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(keys), size=count)
    recs, starts, labels = (np.empty(count, dtype=np.int64) for _ in range(3))
    for k, key in enumerate(keys):
        chosen = np.flatnonzero(picks == k)
        spans = groups[key]
        sizes = np.array([stop - start for start, stop in spans])  # window starts per run
        u = rng.integers(sizes.sum(), size=len(chosen))
        run = np.searchsorted(np.cumsum(sizes), u, side="right")
        offsets = u - np.concatenate([[0], np.cumsum(sizes)])[run]
        starts[chosen] = np.array([s for s, _ in spans])[run] + offsets
        recs[chosen], labels[chosen] = key
    return recs, starts, labels


class PamapWindows(Dataset[Item]):
    """Fixed windows of PAMAP2 recordings -> ((52, 320) float32, int64 activity label)."""

    def __init__(
        self, recordings: list[np.ndarray], windows: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> None:
        self.recordings = recordings
        self.recs, self.starts, self.labels = windows

    def __len__(self) -> int:
        return len(self.recs)

    def __getitem__(self, index: int) -> Item:
        data = self.recordings[int(self.recs[index])]
        start = int(self.starts[index])
        x = np.array(data[start : start + WINDOW, CHANNELS].T, dtype=np.float32)
        return torch.from_numpy(x), torch.tensor(self.labels[index])


def _load_pamap2(options: LoadOptions) -> DataBundle:
    base = LAYOUTS.base(options, FILES, "pamap2")
    recordings = [read_subject(base / name) for name in FILES]
    train_runs, val_runs, test_runs = [], [], []
    for rec, data in enumerate(recordings):
        for label, start, end in activity_runs(data[:, 1]):
            if rec >= len(TRAIN_SUBJECTS):
                test_runs.append((rec, label, start, end))
                continue
            cut = end - round(options.val_fraction * (end - start))
            train_runs.append((rec, label, start, cut))
            val_runs.append((rec, label, cut, end))
    return DataBundle(
        PAMAP2,
        train=PamapWindows(
            recordings, draw_windows(train_runs, TRAIN_WINDOWS, options.seed, "training")
        ),
        val=PamapWindows(
            recordings, draw_windows(val_runs, EVAL_WINDOWS, options.seed + 1, "validation")
        ),
        test=PamapWindows(recordings, draw_windows(test_runs, EVAL_WINDOWS, DABS_SEED, "test")),
    )


register_dataset(folder_entry(PAMAP2, LAYOUTS, FILES, _load_pamap2))
