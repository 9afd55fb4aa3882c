"""Training throughput with 1 and 2 DDP processes on this machine, through the real CLI.

    python benchmarks/ddp.py [--rows 60000] [--epochs 2] [--nproc 2]

Trains the same config on the same generated series (lookback 168, patch 24, 2 × 64, batch
256) three ways, one after the other: one process (all cores as intra-op threads), N processes
with `batch_size` per rank (effective batch N × 256, the default), and N processes with
`train.batch_size_per_rank: false` (effective batch 256, as in one process). Samples/second =
training windows × epochs / the training loop's seconds from metrics.json (start-up excluded,
printed separately as wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CONFIG = {
    "data": {"path": "series.csv", "timestamp": "timestamp", "target": "load", "split": {"val": 0.02, "test": 0.02}},
    "window": {"lookback": 168, "horizon": 24},
    "model": {"hidden_size": 64, "num_layers": 2, "patch": 24},
    "train": {"batch_size": 256, "lr": 0.001, "patience": 0, "seed": 0},
}


def make_series(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    load = 10 + 3 * np.sin(2 * np.pi * t / 24) + np.sin(2 * np.pi * t / 168) + rng.normal(0, 0.3, rows)
    stamps = pd.date_range("2020-01-01", periods=rows, freq="h")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "load": load.round(4)}).to_csv(path, index=False)


def train(folder: Path, name: str, nproc: int, epochs: int, *sets: str) -> dict[str, float]:
    out = folder / name
    command = [sys.executable, "-m", "lstmcast", "train", str(folder / "config.yaml"), "--out", str(out), "--quiet"]
    command += ["--nproc", str(nproc), "--set", f"train.epochs={epochs}"]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    samples = metrics["windows"]["train"] * metrics["epochs_run"]
    return {"sps": samples / metrics["train_seconds"], "loop": metrics["train_seconds"], "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_series(folder / "series.csv", args.rows)
        (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
        n = args.nproc
        runs = {
            "1 process": train(folder, "one", 1, args.epochs),
            f"{n} processes, batch 256 per rank": train(folder, "per_rank", n, args.epochs),
            f"{n} processes, batch 256 in all": train(
                folder, "split", n, args.epochs, "train.batch_size_per_rank=false"
            ),
        }
    base = runs["1 process"]["sps"]
    print(
        f"DDP on CPU — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, {args.rows} rows, {args.epochs} epochs"
    )
    print("| run | samples/s | vs 1 process | scaling efficiency | training loop | wall |")
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        procs = 1 if name == "1 process" else n
        speedup = r["sps"] / base
        print(
            f"| {name} | {r['sps']:,.0f} | {speedup:.2f}× | {speedup / procs:.0%} | {r['loop']:.1f} s | {r['wall']:.1f} s |"
        )


if __name__ == "__main__":
    main()
