"""Where lstmcast's time goes, each figure measured side by side with its bare baseline in one run.

    python benchmarks/perf.py [--windows 200000] [--rows 1000000]

1. Training overhead: one epoch of lstmcast's loop (WindowSet gathering, loss, clipping, AdamW,
   progress callbacks) against a bare loop over pre-built tensors doing nn.LSTM forward +
   backward + AdamW only; same shapes (lookback 168, hidden 64, 2 layers, batch 256, patch 1).
2. Start-up: `lstmcast --help` against `python -c "import typer"`.
4. CSV load: lstmcast's validated load against plain `pandas.read_csv` of the same file.
5. Batch inference: lstmcast's batched forecasting of 10,000 windows against a bare batched
   nn.LSTM forward over the same windows.
6. Threads: the training epoch with 1 thread against 2.
(3, peak memory on 10 million rows, is not measured yet.)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.config import TrainConfig
from lstmcast.frame import load_series
from lstmcast.model import StackedLSTM
from lstmcast.train import Trainer, predict_windows
from lstmcast.windows import WindowSet

LOOKBACK, HORIZON, HIDDEN, LAYERS, BATCH = 168, 24, 64, 2, 256


class Bare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN, LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


class Progress:
    def on_batch(self, epoch: int, done: int, total: int) -> None: ...

    def on_validation(self, point: object, epochs: int) -> None: ...


def epoch_lstmcast(n_windows: int) -> float:
    torch.manual_seed(0)
    rows = torch.randn(n_windows + LOOKBACK + HORIZON, 1)
    data = WindowSet(rows, LOOKBACK, HORIZON, 1)
    model = StackedLSTM(1, 1, LOOKBACK, HORIZON, hidden_size=HIDDEN, num_layers=LAYERS, dropout=0.0, norm="none")
    cfg = TrainConfig(epochs=1, batch_size=BATCH, patience=0)
    trainer = Trainer(model, data, torch.arange(n_windows), torch.arange(0), cfg=cfg, progress=Progress())
    started = time.perf_counter()
    trainer.run()
    return time.perf_counter() - started


def epoch_bare(n_windows: int) -> float:
    torch.manual_seed(0)
    x_all = torch.randn(n_windows, LOOKBACK, 1)  # pre-built: the bare loop does no gathering at all
    y_all = torch.randn(n_windows, HORIZON)
    model = Bare()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.randperm(n_windows)
    started = time.perf_counter()
    for b in range(0, n_windows, BATCH):
        idx = order[b : b + BATCH]
        loss = F.mse_loss(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def wall(cmd: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"perf — {date.today()} — {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []

    torch.set_num_threads(2)
    ours, bare = epoch_lstmcast(args.windows), epoch_bare(args.windows)
    rows.append((f"1. one training epoch, {args.windows:,} windows", ours, bare, "bare nn.LSTM loop", 1.10))
    torch.set_num_threads(1)
    one_thread = epoch_lstmcast(args.windows)
    torch.set_num_threads(2)
    rows.append(("6. training epoch, 2 threads vs 1", ours, one_thread, "1 thread", None))

    help_s = wall([sys.executable, "-m", "lstmcast", "--help"])
    typer_s = wall([sys.executable, "-c", "import typer"])
    rows.append(("2. lstmcast --help", help_s, typer_s, "python -c 'import typer'", 1.5))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        stamps = pd.date_range("2000-01-01", periods=args.rows, freq="min")
        rng = np.random.default_rng(0)
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "y": rng.random(args.rows).round(4)}).to_csv(
            path, index=False
        )
        pd.read_csv(path)  # warm the page cache for both
        started = time.perf_counter()
        load_series(path, timestamp="timestamp", target=["y"], features=[])
        ours_load = time.perf_counter() - started
        started = time.perf_counter()
        pd.read_csv(path)
        plain = time.perf_counter() - started
    rows.append((f"4. CSV load, {args.rows:,} rows", ours_load, plain, "pandas.read_csv (C engine)", 1.2))

    n = 10_000
    series = torch.randn(n + LOOKBACK + HORIZON, 1)
    model = StackedLSTM(1, 1, LOOKBACK, HORIZON, hidden_size=HIDDEN, num_layers=LAYERS, norm="none").eval()
    data = WindowSet(series, LOOKBACK, HORIZON, 1)
    predict_windows(model, data, torch.arange(100))
    started = time.perf_counter()
    predict_windows(model, data, torch.arange(n))
    ours_inf = time.perf_counter() - started
    x = data.windows[:n, :, :LOOKBACK].transpose(1, 2).contiguous()
    with torch.no_grad():
        started = time.perf_counter()
        for chunk in x.split(8192):
            model.lstm(chunk)
        bare_inf = time.perf_counter() - started
    rows.append(("5. forecasts for 10,000 windows", ours_inf, bare_inf, "bare batched nn.LSTM forward", 1.2))

    print("| figure | lstmcast | baseline | ratio | bar |")
    print("|---|---|---|---|---|")
    for name, a, b, base, bar in rows:
        verdict = "" if bar is None else (f"≤ {bar} met" if a / b <= bar else f"≤ {bar} MISSED")
        print(f"| {name} | {a:.3f} s | {b:.3f} s ({base}) | {a / b:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
