"""One writer per output folder: an OS lock that dies with its process.

The lock is `fcntl.flock` on the folder itself (an open descriptor of it), so deleting or
replacing the `.lstmcast.lock` file while a run holds the folder cannot let a second writer in.
`.lstmcast.lock` says who holds the folder (pid and start time, for the "another run holds"
message) and is flocked as well, which also keeps out an older lstmcast that locks only that file.
On a filesystem that cannot lock folders the file lock alone guards the folder.

The kernel releases both locks when the holder exits for any reason, `kill -9` included, so a
stale lock never blocks the next run; the file itself is left in place (deleting it would race
with a waiting process).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lstmcast.atomic import advice, kind_of
from lstmcast.errors import ConfigError, LockedError, OutputError

LOCK_NAME = ".lstmcast.lock"
POLL_SECONDS = 0.2


def check_wait(wait: float | None, option: str = "--wait") -> float:
    """Seconds to wait for the lock: a finite number ≥ 0 (None: do not wait)."""
    if wait is None:
        return 0.0
    if not math.isfinite(wait) or wait < 0:
        raise ConfigError(f"{option} {wait:g} is not a number of seconds ≥ 0 — give e.g. {option} 600")
    return float(wait)


@contextlib.contextmanager
def hold(folder: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the folder's lock for the block; wait up to `wait` seconds for it, or fail at once."""
    folder = Path(folder)
    deadline = time.monotonic() + check_wait(wait)
    folder_fd = _lock_folder(folder, deadline, wait)
    try:
        info_fd = _lock_info(folder, deadline, wait)
        try:
            _record_holder(info_fd, folder / LOCK_NAME)
            yield
        finally:
            os.close(info_fd)
    finally:
        if folder_fd is not None:
            os.close(folder_fd)  # closing releases the flock


def _lock_folder(folder: Path, deadline: float, wait: float | None) -> int | None:
    """The folder's descriptor, flocked; None where the filesystem cannot lock folders."""
    while True:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(
                f"cannot open the output folder {folder} to lock it: {exc.strerror} — {advice(exc)}"
            ) from None
        try:
            _acquire(fd, folder, deadline, wait)
        except OSError:  # e.g. a network filesystem refusing to flock a folder
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, folder, follow=True):
            return fd
        os.close(fd)  # the folder was replaced between open and lock: lock the one now at that path


def _lock_info(folder: Path, deadline: float, wait: float | None) -> int:
    """`.lstmcast.lock`, opened and flocked; reopened if it was replaced before the lock was taken."""
    path = folder / LOCK_NAME
    while True:
        fd = _open_info(path)
        try:
            _acquire(fd, folder, deadline, wait)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)


def _open_info(path: Path) -> int:
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):  # never open a device, FIFO or link someone left there
        what = "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode)
        raise OutputError(f"the lock file {path} is {what}, not a regular file — remove it (lstmcast makes its own)")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"the lock file {path} is a symbolic link — remove it (lstmcast makes its own)") from None
        raise OutputError(f"cannot create the lock file {path}: {exc.strerror} — {advice(exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"the lock file {path} is not a regular file — remove it (lstmcast makes its own)")
    return fd


def _acquire(fd: int, folder: Path, deadline: float, wait: float | None) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g}s" if wait else ""
                raise LockedError(
                    f"another lstmcast run holds {folder} ({_holder(folder / LOCK_NAME)}){waited} — let it finish, "
                    "pass --wait SECONDS, or write to another folder"
                ) from None
            time.sleep(POLL_SECONDS)


def _same_file(fd: int, path: Path, *, follow: bool = False) -> bool:
    """Whether `path` still names what `fd` holds (`follow`: through a symbolic link, as for a linked folder)."""
    try:
        now = os.stat(path, follow_symlinks=follow)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _holder(path: Path) -> str:
    """What the holder wrote in the lock file ('pid 4242 since …'), best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "unknown process"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "unknown process"
        text = os.pread(fd, 200, 0).decode(errors="replace")
    except OSError:
        return "unknown process"
    finally:
        os.close(fd)
    return " ".join(text.split()) or "unknown process"


def _record_holder(fd: int, path: Path) -> None:
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {since}".encode(), 0)
    except OSError as exc:
        raise OutputError(f"cannot write the lock file {path}: {exc.strerror} — {advice(exc)}") from None
