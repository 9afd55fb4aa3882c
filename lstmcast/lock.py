"""One writer per output folder: an OS file lock that dies with its process.

`fcntl.flock` is released by the kernel when the holder exits for any reason, `kill -9`
included, so a stale lock file never blocks the next run; the file itself is left in place
(deleting it would race with a waiting process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lstmcast.errors import LockedError, OutputError

LOCK_NAME = ".lstmcast.lock"


@contextlib.contextmanager
def hold(folder: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the folder's lock for the block; wait up to `wait` seconds for it, or fail at once."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(
            f"cannot create the lock file {path}: {exc.strerror} — check the folder's permissions"
        ) from None
    try:
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
                    waited = f" after waiting {wait:g}s" if wait else ""
                    raise LockedError(
                        f"another lstmcast run holds {folder} ({holder}){waited} — let it finish, "
                        "pass --wait SECONDS, or write to another folder"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} since {datetime.now().astimezone().isoformat(timespec='seconds')}".encode(), 0
        )
        yield
    finally:
        os.close(fd)  # closing releases the flock
