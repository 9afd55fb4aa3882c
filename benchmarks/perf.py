"""Where lstmcast's time goes, each figure measured side by side with its bare baseline in one run.

    python benchmarks/perf.py [--windows 200000] [--rows 1000000] [--source-rows 10000000] [--figures 1,2,…,7]

1. Training overhead: one epoch of lstmcast's loop (WindowSet gathering, loss, clipping, AdamW,
   progress callbacks) against a bare loop over pre-built tensors doing nn.LSTM forward +
   backward + AdamW only; same shapes (lookback 168, hidden 64, 2 layers, batch 256, patch 1).
2. Start-up: `lstmcast --help` against `python -c "import typer"`, and `lstmcast predict` of an
   M4-Hourly-shaped checkpoint (414 series, the real M4 training file when ../shared has it)
   against `python -c "import torch, pandas"`.
3. Memory: peak RSS of a complete `lstmcast train` run on one series of --memory-rows rows
   (timestamp + value, lookback 336, one epoch over every 100th window), against
   3 × rows × columns × 4 bytes + the peak RSS of `python -c "import torch, pandas"`.
4. CSV load: lstmcast's validated load against plain `pandas.read_csv` of the same file, with the
   fastest engine installed (pyarrow when it is importable, else the C parser).
5. Batch inference: lstmcast's batched forecasting of 10,000 windows against a bare batched
   nn.LSTM forward over the same windows.
6. Threads: the training epoch with 1 thread against 2.
7. Sources: the validated load of the same --source-rows rows (timestamp, value) from a CSV, a
   Parquet file (typed times, row groups of 1,000,000) and a SQLite table (times as text, as SQLite
   keeps them), each in its own process: seconds, rows/s and peak RSS side by side, against the
   peak RSS of importing lstmcast.data.frame (pandas, and pyarrow when installed) alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.config import TrainConfig
from lstmcast.data.frame import load_series
from lstmcast.learn.loop import Trainer
from lstmcast.learn.windows import WindowSet, predict_windows
from lstmcast.model.lstm import ModelSpec, StackedLSTM

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
    model = StackedLSTM(
        ModelSpec(1, 1, LOOKBACK, HORIZON, hidden_size=HIDDEN, num_layers=LAYERS, dropout=0.0, norm="none")
    )
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


def alternate(ours: Callable[[], object], bare: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    """Median seconds of each, run in turns (single timings of allocation-heavy work vary by ±30% here)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((ours, times[0]), (bare, times[1])):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def wall(cmd: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_of(cmd: list[str]) -> float:
    """Peak RSS (MiB) of a short command (its own, not its parent's)."""
    probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    probe += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True).stdout
    return int(out) / 1024


def write_long_series(path: Path, rows: int, freq: str = "min") -> None:
    stamps = pd.date_range("2000-01-01", periods=rows, freq=freq)
    rng = np.random.default_rng(0)
    values = (np.sin(np.arange(rows) * 2 * np.pi / 1440) + rng.normal(0, 0.1, rows)).round(4)
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "y": values}).to_csv(path, index=False)


def training_peak_rss(folder: Path, rows: int) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of a complete `lstmcast train` run on one long series.

    Load, windows, one epoch over every 100th training window (the data, its tensor and its
    windows are those of all rows; only the step count is cut), scoring of every part, writing.
    """
    csv = folder / "long.csv"
    write_long_series(csv, rows)
    config = folder / "memory.yaml"
    config.write_text(
        "data: {path: long.csv, timestamp: timestamp, target: y, calendar: none, split: {val: 2000, test: 2000}}\n"
        "window: {lookback: 336, horizon: 24, stride: 100}\n"
        "model: {hidden_size: 64, num_layers: 2, patch: 24}\n"
        "train: {epochs: 1, batch_size: 256}\n"
    )
    started = time.perf_counter()
    peak = peak_rss_of([sys.executable, "-m", "lstmcast", "train", str(config), "--out", str(folder / "run")])
    return peak, time.perf_counter() - started


def predict_startup(folder: Path, m4_dir: Path) -> tuple[float, str]:
    """Wall time of `lstmcast predict` for 414 series with an M4-Hourly-shaped checkpoint."""
    sys.path.insert(0, str(Path(__file__).parent))
    from m4_hourly import read_wide, to_long

    source = m4_dir / "Hourly-train.csv"
    if source.exists():
        series, what = read_wide(source), "the M4 Hourly training file"
    else:
        rng = np.random.default_rng(0)
        t = np.arange(700)
        series = {f"H{i}": 100 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, 700) for i in range(414)}
        what = "414 generated series of 700 rows (../shared absent)"
    to_long(series, folder / "m4.csv")
    root = Path(__file__).resolve().parents[1]
    # Same architecture and data as configs/m4_hourly.yaml; one epoch over every 24th window is enough to
    # write the checkpoint whose loading and forecasting this measures.
    subprocess.run(
        [sys.executable, "-m", "lstmcast", "train", str(root / "configs" / "m4_hourly.yaml"), "--data",
         str(folder / "m4.csv"), "--out", str(folder / "m4run"), "--quiet", "--set", "train.epochs=1",
         "--set", "window.stride=24"],
        check=True, capture_output=True,
    )  # fmt: skip
    cmd = [sys.executable, "-m", "lstmcast", "predict", str(folder / "m4run" / "model.pt"), "--data"]
    return wall([*cmd, str(folder / "m4.csv"), "--out", str(folder / "f.csv")], repeats=3), what


def write_sources(folder: Path, rows: int) -> dict[str, tuple[str, str | None]]:
    """The same rows as a CSV, a Parquet file and a SQLite table: name → (location, query)."""
    import sqlite3

    csv = folder / "rows.csv"
    write_long_series(csv, rows)
    parquet, db = folder / "rows.parquet", folder / "rows.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE rows (timestamp TEXT, y REAL)")
        for chunk in pd.read_csv(csv, chunksize=1_000_000):
            con.executemany("INSERT INTO rows VALUES (?, ?)", chunk.itertuples(index=False, name=None))
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for chunk in pd.read_csv(csv, chunksize=1_000_000, parse_dates=["timestamp"]):
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(parquet, table.schema)
        writer.write_table(table)
    writer.close()
    return {"CSV": (str(csv), None), "Parquet": (str(parquet), None), "SQLite": (f"sqlite:///{db}", "rows")}


def source_loads(folder: Path, rows: int) -> list[tuple[str, float, float]]:
    """(source, seconds, peak RSS MiB) of loading each source in a fresh process; first the import alone."""
    probe = (
        "import sys, time; from lstmcast.data.frame import load_series; from lstmcast.data.sources import Source; "
        "t = time.perf_counter(); "
        "s = load_series(Source(sys.argv[1], sys.argv[2] or None), timestamp='timestamp', target=['y'], features=[]); "
        "assert s.rows == int(sys.argv[3]); print(time.perf_counter() - t, file=sys.stderr)"
    )
    results = [("import lstmcast.data.frame", 0.0, peak_rss_of([sys.executable, "-c", "import lstmcast.data.frame"]))]
    for name, (location, query) in write_sources(folder, rows).items():
        cmd = [sys.executable, "-c", probe, location, query or "", str(rows)]
        subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
        timed = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append((name, float(timed.stderr.strip().splitlines()[-1]), peak_rss_of(cmd)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--source-rows", type=int, default=10_000_000)
    parser.add_argument("--figures", default="1,2,3,4,5,6,7", help="which figures to measure, e.g. 7")
    parser.add_argument("--m4-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "m4")
    args = parser.parse_args()
    print(f"perf — {date.today()} — {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    figures = {int(f) for f in args.figures.split(",")}
    if 7 in figures:
        with tempfile.TemporaryDirectory() as tmp:
            loads = source_loads(Path(tmp), args.source_rows)
        print(f"7. loading {args.source_rows:,} rows (timestamp, value), each source in its own process:")
        print("| source | seconds | rows/s | peak RSS | above the import |")
        print("|---|---|---|---|---|")
        for name, seconds, rss in loads:
            speed = f"{args.source_rows / seconds:,.0f}" if seconds else "–"
            print(f"| {name} | {seconds:.2f} | {speed} | {rss:,.0f} MiB | {rss - loads[0][2]:,.0f} MiB |")
    if figures <= {7}:
        return
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
    imports_s = wall([sys.executable, "-c", "import torch, pandas"])
    with tempfile.TemporaryDirectory() as tmp:
        predict_s, what = predict_startup(Path(tmp), args.m4_dir)
    rows.append((f"2. lstmcast predict, 414 series ({what})", predict_s, imports_s, "import torch, pandas", 1.5))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        stamps = pd.date_range("2000-01-01", periods=args.rows, freq="min")
        rng = np.random.default_rng(0)
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "y": rng.random(args.rows).round(4)}).to_csv(
            path, index=False
        )
        engine = "pyarrow" if importlib.util.find_spec("pyarrow") else "c"
        pd.read_csv(path, engine=engine)  # warm the page cache for both
        ours_load, plain = alternate(
            lambda: load_series(path, timestamp="timestamp", target=["y"], features=[]),
            lambda: pd.read_csv(path, engine=engine),
        )
    rows.append((f"4. CSV load, {args.rows:,} rows", ours_load, plain, f"pandas.read_csv, {engine} engine", 1.2))

    n = 10_000
    series = torch.randn(n + LOOKBACK + HORIZON, 1)
    model = StackedLSTM(ModelSpec(1, 1, LOOKBACK, HORIZON, hidden_size=HIDDEN, num_layers=LAYERS, norm="none")).eval()
    data = WindowSet(series, LOOKBACK, HORIZON, 1)
    predict_windows(model, data, torch.arange(100))
    x = data.windows[:n, :, :LOOKBACK].transpose(1, 2).contiguous()

    def bare_forward() -> None:
        with torch.no_grad():
            for chunk in x.split(8192):
                model.lstm(chunk)

    ours_inf, bare_inf = alternate(lambda: predict_windows(model, data, torch.arange(n)), bare_forward)
    rows.append(("5. forecasts for 10,000 windows", ours_inf, bare_inf, "bare batched nn.LSTM forward", 1.2))

    import_rss = peak_rss_of([sys.executable, "-c", "import torch, pandas"])
    with tempfile.TemporaryDirectory() as tmp:
        train_rss, reached = training_peak_rss(Path(tmp), args.memory_rows)
    allowance = 3 * args.memory_rows * 2 * 4 / 2**20 + import_rss
    print(
        f"3. peak RSS of a whole training run on {args.memory_rows:,} rows × 2 columns (lookback 336, "
        f"{reached:.0f} s): {train_rss:,.0f} MiB; allowance 3 × rows × columns × 4 B + import RSS {import_rss:,.0f} MiB "
        f"= {allowance:,.0f} MiB → ratio {train_rss / allowance:.2f} ({'met' if train_rss <= allowance else 'MISSED'})"
    )
    print("| figure | lstmcast | baseline | ratio | bar |")
    print("|---|---|---|---|---|")
    for name, a, b, base, bar in rows:
        verdict = "" if bar is None else (f"≤ {bar} met" if a / b <= bar else f"≤ {bar} MISSED")
        print(f"| {name} | {a:.3f} s | {b:.3f} s ({base}) | {a / b:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
