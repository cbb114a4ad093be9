"""One writer at a time: an advisory lock file beside the database.

flock(2) locks belong to the open file: when a holder dies, even by SIGKILL, the
kernel releases its lock, so a lock left by a dead process is simply taken over.
The file keeps the holder's pid for the message the next caller sees.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import LockHeld


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}.lock")


@contextmanager
def run_lock(db_path: str | Path, *, what: str = "veille run") -> Iterator[Path]:
    """Hold the database's run lock for the block; raise LockHeld at once if it is taken."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise LockHeld(
                f"another veille process ({holder}) is writing {db_path}; "
                f"{what} not started (lock file {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {what}".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
