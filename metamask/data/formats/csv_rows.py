"""Random access to the rows of a (possibly huge) CSV file through an index of line offsets.

The DABS CSVs reach millions of rows (HIGGS pretraining: 9.9 M rows; Pfam: 32 M); the official
code reads them whole with pandas (several GB). Here one pass over the bytes finds where every
line starts (8 bytes per row, cached in the user cache for big files and memory-mapped), and a
row is parsed with the csv module only when it is accessed. Rows must not contain quoted line
breaks (none of the DABS files do); a row whose field count differs from the header is an error
naming the file and line.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from metamask.data.cache import cached_array
from metamask.data.formats.text_files import text_problem
from metamask.errors import DataError

CHUNK = 1 << 24  # bytes per read while indexing
CACHE_MIN_BYTES = 1 << 26  # index files above 64 MB are cached (and memory-mapped)


class CsvRows:
    """The header and the rows of a CSV file, parsed on access; safe to send to workers."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(f"file {path} does not exist")
        problem = text_problem(path)
        if problem is not None:
            raise DataError(f"{path}: {problem}; expected a CSV file with a header row")
        self.path = path
        build = lambda: _row_starts(path)  # noqa: E731
        if path.stat().st_size >= CACHE_MIN_BYTES:
            self._index = cached_array("csv-rows", [path], build, mmap=True)
        else:
            self._index = build()
        with path.open("rb") as handle:
            first = handle.read(int(self._index[0])).decode("utf-8", errors="replace")
        self.header = _fields(first, path, "the header")
        self._handle: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self._index) - 1

    def column(self, name: str) -> int:
        """Position of column ``name``; DataError listing the columns when it is absent."""
        if name not in self.header:
            columns = repr(self.header)
            columns = columns if len(columns) <= 200 else columns[:200] + "..."
            raise DataError(f"{self.path}: no column {name!r}; columns are {columns}")
        return self.header.index(name)

    def row(self, index: int) -> list[str]:
        """The fields of data row ``index`` (0 = the first row after the header)."""
        if self._handle is None or self._pid != os.getpid():  # reopen in a forked worker
            self._handle, self._pid = self.path.open("rb"), os.getpid()
        start, end = int(self._index[index]), int(self._index[index + 1])
        self._handle.seek(start)
        text = self._handle.read(end - start).decode("utf-8", errors="replace")
        fields = _fields(text, self.path, f"data row {index + 1}")
        if len(fields) != len(self.header):
            raise DataError(
                f"{self.path}: data row {index + 1} has {len(fields)} fields, the header "
                f"{len(self.header)}"
            )
        return fields

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, -1
        state["_index"] = np.asarray(self._index)  # a memory map travels as an array
        return state


def _fields(text: str, path: Path, what: str) -> list[str]:
    """The fields of one CSV line; DataError naming the file and the line when it is not CSV."""
    try:
        return next((r for r in csv.reader(io.StringIO(text)) if r), [])
    except csv.Error as exc:
        raise DataError(f"{path}: {what} is not a CSV line ({exc})") from None


def _row_starts(path: Path) -> np.ndarray:
    """[start of row 0, ..., start of row n-1, file size]; the header is the bytes before."""
    size = path.stat().st_size
    starts = [np.zeros(1, dtype=np.int64)]
    with path.open("rb") as handle:
        position = 0
        while chunk := handle.read(CHUNK):
            newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            starts.append(newlines.astype(np.int64) + position + 1)
            position += len(chunk)
    offsets = np.concatenate(starts)
    offsets = offsets[offsets < size]
    ends = np.append(offsets[1:], size)
    keep = ends - offsets > 2  # blank lines ("\n", "\r\n") are dropped ...
    short = np.flatnonzero(~keep)
    if len(short):  # ... but a 1-2 byte line may hold a value: look at those
        with path.open("rb") as handle:
            for i in short:
                handle.seek(int(offsets[i]))
                keep[i] = bool(handle.read(int(ends[i] - offsets[i])).strip())
    offsets = offsets[keep]
    if len(offsets) == 0:
        raise DataError(f"{path}: empty file (expected a header row)")
    # header = offsets[0]; rows start at offsets[1:]; a row ends where the next kept line
    # starts (blank lines in between are harmless to the csv parser)
    return np.append(offsets[1:], size).astype(np.int64)
