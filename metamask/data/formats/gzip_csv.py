"""A gzip-compressed numeric CSV table with a header row (river's bundled datasets).

Read whole into one float64 array: the files are small (river's Shuttle: 49,097 rows, 346 KB
compressed). A file that is not gzip, is cut short, lacks a named column, has a row of the wrong
width or a non-numeric field is one DataError naming the file (and the line).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metamask.errors import DataError


def read_gzip_csv(path: Path, columns: Sequence[str]) -> np.ndarray:
    """The named ``columns`` of gzip CSV ``path`` as a float64 (rows, len(columns)) array."""
    if not path.is_file():
        raise DataError(f"file {path} does not exist")
    try:
        with gzip.open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a complete gzip file ({err}); expected a .csv.gz") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: the decompressed data is not UTF-8 text; expected a CSV"
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file; expected a CSV header row")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; columns are {header}")
    where = [header.index(c) for c in columns]
    rows: list[list[float]] = []
    for lineno, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataError(
                f"{path}:{lineno}: expected {len(header)} comma-separated fields, got {len(fields)}"
            )
        try:
            rows.append([float(fields[k]) for k in where])
        except ValueError:
            raise DataError(f"{path}:{lineno}: a non-numeric field in {fields}") from None
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return np.array(rows, dtype=np.float64)
