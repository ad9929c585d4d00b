"""A user-level cache for derived data (row indexes, parsed recordings, label maps).

Never the data folder (the DABS code wrote pickles next to the PAMAP2 files, which fails on a
read-only share and mixes derived files into a dataset) and never the package folder. The
location is ``$METAMASK_CACHE_DIR``, else ``$XDG_CACHE_HOME/metamask``, else
``~/.cache/metamask``; ``METAMASK_NO_CACHE=1`` turns caching off. Entries are keyed by the
source files' path, size and modification time, written atomically (temporary file + rename),
and a cache that cannot be written is skipped silently: caching only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path | None:
    """The cache folder, or None when caching is turned off."""
    if os.environ.get("METAMASK_NO_CACHE", "") not in ("", "0"):
        return None
    if os.environ.get("METAMASK_CACHE_DIR"):
        return Path(os.environ["METAMASK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metamask"


def source_key(kind: str, sources: Sequence[Path], *extra: object) -> str:
    """A key naming ``kind`` and the identity (path, size, mtime) of every source file."""
    parts: list[object] = [kind, *extra]
    for src in sources:
        stat = src.stat()
        parts += [str(src.resolve()), stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # read-only or full: the caller already has the data


def cached_array(
    kind: str, sources: Sequence[Path], build: Callable[[], np.ndarray], mmap: bool = False
) -> np.ndarray:
    """``build()``'s array, from the cache when the sources are unchanged.

    With ``mmap`` a cached array is memory-mapped read-only instead of read into memory.
    """
    root = cache_dir()
    if root is None:
        return build()
    path = root / kind / f"{source_key(kind, sources)}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            pass  # corrupt entry (emptied, cut, overwritten): rebuild it
    array = build()
    _atomic_write(path, lambda tmp: np.save(tmp, array, allow_pickle=False))
    if mmap and path.is_file():
        return np.load(path, mmap_mode="r", allow_pickle=False)
    return array


def cached_json(kind: str, sources: Sequence[Path], build: Callable[[], Any]) -> Any:
    """``build()``'s JSON-serialisable value, from the cache when the sources are unchanged."""
    root = cache_dir()
    if root is None:
        return build()
    path = root / kind / f"{source_key(kind, sources)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    value = build()
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value)))
    return value


def cached_arrays(
    kind: str, sources: Sequence[Path], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Several named arrays built together; cached as one folder of ``.npy`` files (renamed
    into place only when complete) and memory-mapped read-only when they come from the cache."""
    root = cache_dir()
    if root is None:
        return build()
    folder = root / kind / source_key(kind, sources)
    if folder.is_dir():
        try:
            return {
                p.stem: np.load(p, mmap_mode="r", allow_pickle=False)
                for p in sorted(folder.glob("*.npy"))
            }
        except (OSError, ValueError, EOFError):  # corrupt: rebuilt, and replaced below
            shutil.rmtree(folder, ignore_errors=True)
    arrays = build()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass
    return arrays
