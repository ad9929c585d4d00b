"""One writer per run folder: a second process that would train into a busy folder is refused.

Two runs writing one folder interleave their metrics rows and overwrite each other's
checkpoints, and nothing in the files shows it afterwards. :func:`run_folder_lock` holds an
advisory ``flock`` on ``DIR/.lock`` for the whole run: the kernel releases it when the
process ends, however it ends (SIGKILL included), so a lock is never stale.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metamask.errors import OutputError

LOCK_NAME = ".lock"


@contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock (creating the folder) for the block; OutputError when it is held.

    A folder this call created and nothing was written into is removed again at the end.

    Raises:
        OutputError: another process holds the folder (its pid is named when it wrote it).
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _acquire(folder, path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: the next run starts a fresh file
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a run that failed before writing leaves no empty folder
        os.close(fd)


def _acquire(folder: Path, path: Path) -> int:
    """An open descriptor of ``path`` holding its lock, the file still at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(
                f"{folder} is being written by another metamask process (pid {holder}, "
                f"holding {path}); wait for it to finish, or choose another --out"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder we waited on removed this file as it finished: retry
