"""Will a run fit in this machine's memory? Estimated from the config before anything large is allocated.

A config inside every documented range can still ask for terabytes (`model.hidden_size: 8192` with
32 layers; `window.lookback: 500000` with a batch of 256). Allocating first would end in the kernel's
OOM killer — no message, a dead cron job, maybe other processes killed too. The estimate below is
deliberately rough (within a factor of about two of what torch allocates); a run is refused only when
even the estimate exceeds what the machine has, and the message names the knob that dominates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lstmcast.errors import ConfigError

FLOAT = 4  # bytes per float32


@dataclass(frozen=True)
class Need:
    what: str  # what takes the memory, in the words of the knobs that decide it
    bytes: int


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, or the cgroup's limit when that is lower."""
    available = _meminfo("MemAvailable") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_room()
    return min(available, limit) if limit is not None else available


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def training_needs(
    *, parameters: int, members: int, rows: int, columns: int, batch: int, steps: int, hidden: int, layers: int
) -> list[Need]:
    """The large allocations of a training run, each with the knobs that size it."""
    return [
        # weights, gradients, two AdamW moments and the best-so-far copy, for every ensemble member kept
        Need(
            "model.hidden_size × model.num_layers (the weights and optimiser state)", 5 * FLOAT * parameters * members
        ),
        Need("the data (rows × columns, scaled)", FLOAT * rows * columns),
        # oneDNN keeps per step and layer the gates (4H) and states (c, h) for the backward pass, twice over
        Need(
            "train.batch_size × window.lookback / model.patch × model.hidden_size × model.num_layers (activations)",
            2 * FLOAT * batch * steps * layers * 6 * hidden,
        ),
    ]


def check(needs: list[Need], available: int | None = None) -> None:
    """Refuse (exit 2) when the estimate exceeds what the machine has."""
    room = available_bytes() if available is None else available
    total = sum(n.bytes for n in needs)
    if total <= room:
        return
    largest = max(needs, key=lambda n: n.bytes)
    raise ConfigError(
        f"this run needs about {_size(total)} of memory and the machine has {_size(room)} available; "
        f"most of it ({_size(largest.bytes)}) is {largest.what} — make that smaller"
    )


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"
