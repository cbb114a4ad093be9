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


def lock_path(db_path: str | Path, kind: str = "lock") -> Path:
    return Path(f"{db_path}.{kind}")


@contextmanager
def run_lock(
    db_path: str | Path, *, what: str = "veille run", kind: str = "lock"
) -> Iterator[Path]:
    """Hold one of the database's locks for the block; raise LockHeld at once if it is taken.

    ``kind`` names the lock file beside the database: ``lock`` for runs (shared by cron
    and the daemon), ``digest.lock`` for sending, ``schedule.lock`` for the daemon itself.
    """
    path = lock_path(db_path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise LockHeld(
                f"another veille process ({holder}) holds {path.name}; "
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
