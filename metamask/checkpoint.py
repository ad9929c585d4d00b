"""Atomic files: checkpoints that never execute code and never exist half-written.

Every file metamask writes goes through :func:`atomic_write`: a temporary file in the same
folder, flushed and fsync-ed, then renamed over the target, with the permissions of any new
file (:func:`new_file_mode`: 0644 under the usual umask). A crash or a full disk leaves the
previous file intact. Checkpoints hold only tensors and plain Python data, and are read back
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from metamask.errors import CheckpointError, OutputError


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(file)`` atomically (temp file + fsync + rename).

    Raises:
        OutputError: the folder or file cannot be written (disk full, file too large, no
            permission); ``path`` then still holds its previous content, if any, and no
            temporary file is left behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, new_file_mode())  # mkstemp's 0600 -> the mode of any new file
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise OutputError(f"{path}: could not write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def new_file_mode() -> int:
    """The permissions of every file a run writes: those of any new file, 0666 less the
    process's umask (0644 under the usual umask 022; 0600 under 077, for private runs).
    ``metrics.jsonl``, opened normally, gets the same."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    text = json.dumps(data, indent=2, default=json_default) + "\n"

    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode())

    atomic_write(path, write)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (tensors and plain data only).

    The state is serialised in memory first, so that a full disk surfaces as an OSError of
    the file write (an :class:`OutputError`), not as an error inside torch's zip writer.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing code; CheckpointError if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        # torch's own advice (load with weights_only=False) is the wrong one for a bad file
        reason = first if first and "weights_only" not in first and len(first) < 160 else ""
        reason = reason or type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable metamask checkpoint ({reason}); expected a checkpoint.pt "
            "that metamask wrote"
        ) from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path}: not a metamask checkpoint (no 'format' entry)")
    return state


def json_default(value: Any) -> Any:
    """JSON for what ``json.dumps`` cannot write itself: numpy scalars, paths, tensors."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if torch.is_tensor(value):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
