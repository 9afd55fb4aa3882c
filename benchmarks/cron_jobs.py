"""Several cron jobs starting in the same minute: the wall time of the slowest of N concurrent trainings.

    python benchmarks/cron_jobs.py                      # 1, 2 and 4 jobs, each setting below
    python benchmarks/cron_jobs.py --jobs 4 --epochs 5

Each job is `lstmcast train configs/demo.yaml --set train.epochs=E` in its own output folder, started
together through the real CLI without a terminal. Settings compared side by side in one run:
- `default`: lstmcast as installed (its own thread and OpenMP defaults);
- `passive`: OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep at once);
- `spinning`: OMP_WAIT_POLICY=ACTIVE (idle OpenMP threads spin);
- `short spin`: GOMP_SPINCOUNT=20000 (idle threads spin briefly, then sleep);
- `one thread`: train.threads=1 and OMP_NUM_THREADS=1, the manual workaround.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "default": ({}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "spinning": ({"OMP_WAIT_POLICY": "ACTIVE"}, []),
    "short spin": ({"GOMP_SPINCOUNT": "20000"}, []),
    "one thread": ({"OMP_NUM_THREADS": "1"}, ["--set", "train.threads=1"]),
}


def run_jobs(jobs: int, epochs: int, env_extra: dict[str, str], args_extra: list[str]) -> float:
    """Start `jobs` trainings at once; the wall time until the last one ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "LSTMCAST_"))} | env_extra
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lstmcast",
                    "train",
                    str(ROOT / "configs" / "demo.yaml"),
                    "--quiet",
                    "--out",
                    str(Path(tmp) / f"job{k}"),
                    "--set",
                    f"train.epochs={epochs}",
                    "--set",
                    "train.patience=0",
                    *args_extra,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for k in range(jobs)
        ]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"a job failed ({proc.returncode}): {err.decode()[-500:]}")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    print(
        f"concurrent jobs — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, demo × {args.epochs} epochs"
    )
    print("| jobs at once | setting | wall of the slowest |")
    print("|---|---|---|")
    for jobs in args.jobs:
        for name in args.settings:
            env_extra, args_extra = SETTINGS[name]
            print(f"| {jobs} | {name} | {run_jobs(jobs, args.epochs, env_extra, args_extra):.1f} s |", flush=True)


if __name__ == "__main__":
    main()
