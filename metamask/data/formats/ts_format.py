"""A reader for the UEA/UCR ``.ts`` time-series format (aeon's shipped files), numpy only.

Format: ``#`` comment lines, ``@key value`` header lines up to ``@data``, then one case per
line: channels separated by ``:``, values by ``,``, the class label last. ``?`` is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metamask.errors import DataError


def read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray, dict[str, str]]:
    """Read a classification ``.ts`` file.

    Returns:
        (series, labels, header): ``series`` is a list of float32 arrays of shape (channels, T)
        (T may vary per case), ``labels`` the string labels as written in the file (case kept),
        ``header`` the ``@key value`` pairs, lower-cased keys.
    """
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read .ts file ({exc})") from None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{path}:{lineno}: expected a '@' header line before @data")
            key, _, value = line[1:].partition(" ")
            if key.lower() == "data":
                in_data = True
            else:
                header[key.lower()] = value.strip()
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise DataError(f"{path}:{lineno}: expected 'channel:...:label', got {line[:40]!r}")
        try:
            channels = [
                np.array([np.nan if v == "?" else float(v) for v in f.split(",")], dtype=np.float32)
                for f in fields[:-1]
            ]
        except ValueError:
            raise DataError(f"{path}:{lineno}: non-numeric value in a series") from None
        if len({len(c) for c in channels}) != 1:
            raise DataError(f"{path}:{lineno}: channels of one case have different lengths")
        series.append(np.stack(channels))
        labels.append(fields[-1].strip())
    if not in_data:
        raise DataError(f"{path}: no @data section (truncated or not a .ts file)")
    if not series:
        raise DataError(f"{path}: @data section is empty")
    dims = header.get("dimensions")
    if dims is not None and any(s.shape[0] != int(dims) for s in series):
        raise DataError(f"{path}: a case does not have the {dims} channels the header declares")
    return series, np.array(labels), header
