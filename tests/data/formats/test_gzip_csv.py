"""The gzip CSV reader: named columns as floats, and one clear DataError per kind of bad file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from metamask.data.formats.gzip_csv import read_gzip_csv
from metamask.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_reads_the_named_columns_in_the_order_asked(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv.gz", "a,b,c\n1,2,3\n4,-5,6.5\n")
    table = read_gzip_csv(path, ("c", "a"))
    assert table.dtype == np.float64
    assert table.tolist() == [[3.0, 1.0], [6.5, 4.0]]


def _gz(data: bytes) -> bytes:
    """Gzip with a fixed header time, so every pytest-xdist worker collects the same bytes."""
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n", "not a complete gzip file"),  # plain text under a .gz name
        (_gz(b"a,b\n1,2\n" * 50)[:-12], "not a complete gzip file"),  # cut short
        (_gz(b"a,c\n1,2\n"), "no column 'b'; columns are ['a', 'c']"),
        (_gz(b"a,b\n1,2\n3\n"), "t.csv.gz:3: expected 2 comma-separated fields, got 1"),
        (_gz(b"a,b\n1,x\n"), "t.csv.gz:2: a non-numeric field in ['1', 'x']"),
        (_gz(b"a,b\n"), "no data rows after the header"),
        (_gz(b""), "empty file; expected a CSV header row"),
        (_gz(b"\xff\xfe\x00a"), "the decompressed data is not UTF-8 text"),
    ],
    ids=[
        "plain-text",
        "cut-short",
        "missing-column",
        "short-row",
        "non-numeric",
        "no-rows",
        "empty",
        "not-utf8",
    ],
)
def test_a_bad_file_is_one_data_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_gzip_csv(path, ("a", "b"))
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_gzip_csv(tmp_path / "nope.csv.gz", ("a",))
