"""ETTh1 univariate (target OT), the Informer protocol, at every standard horizon.

    python benchmarks/ett.py [--data ../shared/data/ett/ETTh1.csv] [--horizons 24 48 96 168 192 336 720]

Trains configs/ett.yaml once per horizon (lookback 336; early stopping on the validation rows
8640–11520 only) and scores every test origin (rows 11520–14400, stride 1) on the z-scored scale
fitted on the training rows — with repeat-last and seasonal-naive (period 24) forecasts on the same
windows and the same scale. Published numbers are printed for context, not as a bar.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from lstmcast.config import load_config
from lstmcast.flows.evaluate import evaluate_checkpoint
from lstmcast.flows.training import TrainOptions, train
from lstmcast.forecast import metrics
from lstmcast.report import Reporter

ROOT = Path(__file__).resolve().parents[1]
# MSE at horizons 24/48/168/336/720 (Informer, AAAI 2021, Table 1) and 96/192/336/720 (PatchTST, DLinear papers).
PUBLISHED = {
    "LSTMa (Informer paper)": {24: 0.114, 48: 0.193, 168: 0.236, 336: 0.590, 720: 0.683},
    "Informer": {24: 0.098, 48: 0.158, 168: 0.183, 336: 0.222, 720: 0.269},
    "PatchTST/42": {96: 0.055, 192: 0.071, 336: 0.081, 720: 0.087},
    "DLinear": {96: 0.056, 192: 0.071, 336: 0.098, 720: 0.189},
    "NLinear": {96: 0.053, 192: 0.069, 336: 0.081, 720: 0.080},
}


def run_horizon(config: Path, data: Path, horizon: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(config, [f"window.horizon={horizon}", *extra], {"data.path": data, "output.dir": out})
        started = time.perf_counter()
        outcome = train(cfg, Reporter(quiet=True), TrainOptions())
        seconds = time.perf_counter() - started
        # Every test origin (stride 1) whose forecast ends by the protocol's last row.
        evaluation = evaluate_checkpoint(outcome.checkpoint, data, Reporter(quiet=True), end=cfg.data.end)
    bt, ds = evaluation.backtest, evaluation.dataset
    mean, std = ds.mean[0, 0], ds.std[0, 0]  # the z-score fitted on the training rows
    z = lambda a: (a - mean) / std  # noqa: E731 - the protocol's normalised scale
    actual = z(bt.actual)
    row = {"seconds": seconds, "epochs": outcome.metrics["epochs_run"], "origins": len(bt.origins)}
    served = outcome.metrics.get("selection", {}).get("mix", {"model": 1})
    row["served by"] = max(served, key=served.get)  # train.select: what predict serves, chosen on validation
    for name, forecast in (
        ("lstmcast", bt.forecast),
        ("repeat last", metrics.seasonal_naive(ds.values[:, :1], bt.origins, horizon, 1)),
        ("seasonal naive", metrics.seasonal_naive(ds.values[:, :1], bt.origins, horizon, 24)),
    ):
        row[f"{name} mse"] = float(np.mean((z(forecast) - actual) ** 2))
        row[f"{name} mae"] = float(np.mean(np.abs(z(forecast) - actual)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ett" / "ETTh1.csv")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ett.yaml")
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 48, 96, 168, 192, 336, 720])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found — pass --data path/to/ETTh1.csv")

    print(f"ETTh1 univariate OT, {args.config.name} {' '.join(args.set)} — {date.today()}, "
          f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(
        "| horizon | lstmcast MSE | MAE | repeat-last MSE | MAE | seasonal-naive MSE | MAE | MSE ratio vs best naive | train s | epochs | test origins | served by |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = {}
    for h in args.horizons:
        r = rows[h] = run_horizon(args.config, args.data, h, args.set)
        best_naive = min(r["repeat last mse"], r["seasonal naive mse"])
        print(
            f"| {h} | {r['lstmcast mse']:.4f} | {r['lstmcast mae']:.4f} | {r['repeat last mse']:.4f} | "
            f"{r['repeat last mae']:.4f} | {r['seasonal naive mse']:.4f} | {r['seasonal naive mae']:.4f} | "
            f"{r['lstmcast mse'] / best_naive:.3f} | {r['seconds']:.0f} | {r['epochs']} | {r['origins']} | {r['served by']} |",
            flush=True,
        )
    beaten = [h for h, r in rows.items() if r["lstmcast mse"] < min(r["repeat last mse"], r["seasonal naive mse"])]
    print(f"\nlower MSE than both naive baselines at {len(beaten)}/{len(rows)} horizons: {beaten}")
    print("\nPublished MSE on the same protocol (context, not a bar):")
    for name, scores in PUBLISHED.items():
        print(f"  {name}: " + ", ".join(f"h{h} {v}" for h, v in scores.items()))


if __name__ == "__main__":
    main()
