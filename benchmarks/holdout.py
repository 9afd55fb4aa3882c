"""Train a config through the real CLI and print its held-out test errors next to naive baselines.

    python benchmarks/holdout.py configs/demo.yaml
    python benchmarks/holdout.py configs/ett.yaml --data ../shared/data/ett/ETTh1.csv

The baselines are scored by lstmcast itself on exactly the same test windows as the model.
MSE/MAE "normalised" divide by the training split's standard deviation (the scale used by
the ETT literature); the rest are in the data's own units.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "lstmcast", "train", str(args.config), "--out", out, "--quiet"]
        cmd += ["--data", str(args.data)] if args.data else []
        for item in args.set:
            cmd += ["--set", item]
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - started
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        import torch

        from lstmcast.model import checkpoint

        std = checkpoint.load(Path(out) / "model.pt").scaler.std[0][0]  # the target's, of the (first) series

    rows = [("lstmcast", metrics)] + [
        (f"{name.replace('_', ' ')} (m={metrics[name]['season']})", metrics[name])
        for name in ("seasonal_naive", "naive")
    ]
    print(f"{args.config} — {date.today()} — {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(
        f"epochs run {metrics['epochs_run']} (best {metrics['best_epoch']}), training {metrics['train_seconds']:.1f} s, wall {wall:.1f} s"
    )
    print("| forecaster | test MAE | test RMSE | MSE (normalised) | MAE (normalised) |")
    print("|---|---|---|---|---|")
    for name, m in rows:
        print(
            f"| {name} | {m['test_mae']:.3f} | {m['test_rmse']:.3f} | {(m['test_rmse'] / std) ** 2:.4f} | {m['test_mae'] / std:.4f} |"
        )
    print(f"MAE ratio lstmcast / seasonal naive: {metrics['test_mae'] / metrics['seasonal_naive']['test_mae']:.3f}")
    print(f"MAE ratio lstmcast / naive: {metrics['test_mae'] / metrics['naive']['test_mae']:.3f}")
    if "selection" in metrics:  # train.select: which forecaster predict serves, chosen on validation
        sel = metrics["selection"]
        print(f"served (train.select: {sel['mode']}): {sel['mix']}; validation MASE {sel['validation_mase']}")


if __name__ == "__main__":
    main()
