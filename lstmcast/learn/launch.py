"""`lstmcast train --nproc N`: torch's own elastic launcher (what `torchrun` runs) for one machine.

The parent starts N copies of `python -m lstmcast train …` with torchrun's environment and
waits; it trains nothing itself. When a worker fails, torch terminates the others, so the job
never hangs on a dead peer; the parent exits with the first failure's exit code, so a cron job
sees the same codes as a single-process run (2 user error, 75 locked, 130/143 interrupted).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from lstmcast.errors import EXIT_BUG, EXIT_LOCKED, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USER

# Exit codes whose one-line message rank 0 has already printed.
REPORTED = (EXIT_BUG, EXIT_USER, EXIT_LOCKED, EXIT_SIGINT, EXIT_SIGTERM)


def run_processes(nproc: int, argv: list[str]) -> int:
    """Run `lstmcast <argv>` in `nproc` DDP processes on this machine; return the job's exit code."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # Each worker sets its own thread count (cores / processes); this only silences torchrun's notice.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The workers' own lines say what went wrong; torch's multi-line failure report would bury them.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = torchrun.parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", "lstmcast", *argv]
    )
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code < 0:  # killed by a signal (the OOM killer sends SIGKILL)
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            print(f"error: training process rank {rank} was killed by {name}", file=sys.stderr, flush=True)
            return 128 - code
        if code not in REPORTED:
            print(f"error: training process rank {rank} exited with code {code}", file=sys.stderr, flush=True)
        return code
    except SignalException as exc:  # the launcher itself was told to stop; torch forwarded it to the workers
        return 128 + int(exc.sigval)
    return 0
