"""The cores of one machine, shared fairly among the lstmcast jobs running on it at the same time.

Cron starts many jobs in the same minute. Each one taking every core oversubscribes the CPU, and
OpenMP's barriers make that far worse than linear: four 2-thread jobs on 2 cores took 16 times as
long as one (benchmarks/cron_jobs.py, RESULTS.md). So with `train.threads: 0` (auto) a job runs
`cores // jobs` threads (at least one), where `jobs` counts the lstmcast processes alive now, and
the training loop re-counts every few seconds: jobs that start later shrink it, jobs that end grow it.

Each process announces itself with an exclusively locked file in a registry folder shared by all
users (/dev/shm, else the temp folder). The kernel drops the lock when the process dies, `kill -9`
included, so a stale file is recognised (it can be locked) and removed. Anything that goes wrong
here (no shared folder, a read-only one) leaves the job alone with every core, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RECOUNT_SECONDS = 5.0


def machine_cores() -> int:
    """Cores this process may run on (respects taskset and cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _registry() -> Path | None:
    for base in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        folder = base / "lstmcast-jobs"
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o1777, exist_ok=True)
            if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
                return folder
    return None


_mine: list[tuple[int, Path]] = []  # this process's announcement, while it lasts


@contextlib.contextmanager
def presence() -> Iterator[None]:
    """Count this process among the running jobs until the block ends (or `leave()`)."""
    folder = _registry()
    if folder is not None:
        path = folder / f"{os.getpid()}-{time.monotonic_ns()}.job"
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            _mine.append((fd, path))
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield
    finally:
        leave()


def leave() -> None:
    """Stop counting this process (a launcher that only waits for its workers uses no core)."""
    while _mine:
        fd, path = _mine.pop()
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def running_jobs() -> int:
    """lstmcast processes alive on this machine now (this one included when it announced itself)."""
    folder = _registry()
    if folder is None:
        return 0
    alive = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.endswith(".job") and _alive(Path(entry.path)):
                alive += 1
    return alive


def _alive(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # its process holds the lock
    except OSError:
        return False
    else:
        with contextlib.suppress(OSError):
            path.unlink()  # stale: its process died without removing it
        return False
    finally:
        os.close(fd)


class FairShare:
    """Threads for this process: a fixed count, or its share of the cores, recounted every few seconds."""

    def __init__(self, fixed: int, processes_here: int = 1) -> None:
        self.fixed, self.processes_here = fixed, max(1, processes_here)
        self.checked = -RECOUNT_SECONDS

    def threads(self) -> int:
        if self.fixed:
            return self.fixed
        jobs = max(running_jobs(), self.processes_here, 1)
        return max(1, machine_cores() // jobs)

    def due(self) -> bool:
        """True at most every RECOUNT_SECONDS, when a fair share is recounted (never for a fixed count)."""
        now = time.monotonic()
        if self.fixed or now - self.checked < RECOUNT_SECONDS:
            return False
        self.checked = now
        return True
