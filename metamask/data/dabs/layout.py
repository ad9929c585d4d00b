"""Where each DABS dataset lives under ``--data-root``: the MetaMAE or the DABS folder layout.

The two official code bases put the same files in different folders (MetaMAE:
``eurosat_all/pretrain.pkl``; DABS: ``satellite_images/pretrain.pkl``, ...). A dataset declares
its base folder in each layout and the files it needs below that base; the first layout that
has all of them wins. Nothing is ever downloaded: when neither layout is complete, the error
names, for each layout, the first file that is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metamask.data.base import DataBundle, DatasetEntry, DatasetInfo, LoadOptions
from metamask.data.formats.safe_pickle import pickle_problem
from metamask.data.formats.text_files import text_problem
from metamask.errors import DataError

DABS_SEED = 42  # the seed of every shuffle in the DABS / MetaMAE loaders
DABS_TRAIN_FRACTION = 0.9
TEXT_SUFFIXES = (".csv", ".txt", ".dat", ".tsv")


@dataclass(frozen=True)
class Layouts:
    """A dataset's base folder (relative to the data root) in each known layout."""

    metamae: str  # e.g. "eurosat_all"; "" = the data root itself
    dabs: str  # e.g. "satellite_images"

    def candidates(self) -> list[tuple[str, str]]:
        """(layout name, base) pairs, MetaMAE first, without duplicates."""
        pairs = [("MetaMAE", self.metamae), ("DABS", self.dabs)]
        if self.metamae == self.dabs:
            return [("MetaMAE/DABS", self.metamae)]
        return pairs

    def why_missing(self, options: LoadOptions, required: Sequence[str]) -> str | None:
        """None when some layout has every ``required`` path, else the reason. Cheap: stats,
        and the first bytes of the required files of the layout found (a text file of random
        bytes is reported "present but unreadable", not available)."""
        if not options.data_root:
            return "needs --data-root (the folder holding the DABS data; nothing is downloaded)"
        root = Path(options.data_root).expanduser()
        if not root.is_dir():
            return f"data root {root} is not a folder"
        missing = []
        for name, base in self.candidates():
            absent = [rel for rel in required if not (root / base / rel).exists()]
            if not absent:
                return _unreadable(root / base, required)
            missing.append(f"{root / base / absent[0]} ({name} layout)")
        return "expected " + " or ".join(missing) + "; neither exists"

    def base(self, options: LoadOptions, required: Sequence[str], dataset: str) -> Path:
        """The base folder of the first complete layout; DataError naming the paths expected."""
        reason = self.why_missing(options, required)
        if reason is not None:
            raise DataError(f"dataset {dataset}: {reason}")
        root = Path(options.data_root or "").expanduser()
        for _, base in self.candidates():
            if all((root / base / rel).exists() for rel in required):
                return root / base
        raise AssertionError("unreachable: why_missing found a complete layout")


def _unreadable(base: Path, required: Sequence[str]) -> str | None:
    """Why a present file cannot be the dataset's, from its first bytes (cheap), or None.

    Text files (``.csv``, ``.txt``, ``.dat``, ``.tsv``) must hold text, pickles must start as
    one; folders and other files are taken as they are (the loader checks them when it reads).
    """
    for rel in required:
        path = base / rel
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        problem = None
        if suffix in TEXT_SUFFIXES:
            problem = text_problem(path)
        elif suffix == ".pkl":
            problem = pickle_problem(path)
        if problem is not None:
            return f"present but unreadable: {path}: {problem}"
    return None


def dabs_order(n: int) -> np.ndarray:
    """Row order of DABS' ``DataFrame.sample(frac=1, random_state=42)``.

    pandas draws ``RandomState(42).choice(n, n, replace=False)``, i.e. the first n entries of
    ``RandomState(42).permutation(n)``: reproducing it keeps DABS' exact test rows.
    """
    return np.random.RandomState(DABS_SEED).permutation(n)


def dabs_head_tail(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DABS' 90 / 10 split of (already ordered) rows: the first ``ceil(0.9 n)``, then the rest.

    The head is DABS' own (the same floating-point ``ceil(0.9 * n)``). DABS' tail,
    ``floor((1 - 0.9) * n)``, is one row short for about one n in ten (0.1 is not exact in
    binary), silently dropping that row from the test set; here the tail is every row after the
    head: disjoint from it and complete.
    """
    n_head = math.ceil(DABS_TRAIN_FRACTION * len(rows))
    return rows[:n_head], rows[n_head:]


def folder_entry(
    info: DatasetInfo,
    layouts: Layouts,
    required: Sequence[str],
    load: Callable[[LoadOptions], DataBundle],
) -> DatasetEntry:
    """A registry entry for a dataset read from the data root; ``requires`` only stats files."""
    return DatasetEntry(
        info, load, requires=lambda o: layouts.why_missing(o, required), source="folder"
    )
