"""The cost of a catalogue: predict (and train) time and peak memory as the number of series grows.

    python benchmarks/catalogue.py [--series 30 3000 30000] [--rows 300] [--engine local ray]
                                   [--workers 1 2] [--work DIR] [--profile N]

A Parquet data set of hourly series (`--rows` rows each, 1,000 series per file, whole series per
file: the common lake layout) is generated once per size under --work; a small global model
(1 × 16 LSTM, lookback 48 in patches of 24, horizon 24) is trained once on the first 30 series;
then `lstmcast predict` runs in its own process on each data set, writing a Parquet forecast,
and reports wall seconds, series per second and peak RSS side by side. The per-series cost is the
slope between sizes; `--profile N` also profiles one predict of N series (top functions by
cumulative time) to show where that cost sits. `--engine ray` adds `--engine ray` runs with
`--workers` workers (the `lstmcast[ray]` extra, local mode).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PER_FILE = 1_000
CONFIG = {
    "data": {"path": None, "series_id": "id", "timestamp": "timestamp", "target": "load"},
    "window": {"lookback": 48, "horizon": 24},
    "model": {"hidden_size": 16, "num_layers": 1, "dropout": 0.0, "patch": 24},
    "train": {
        "epochs": 2,
        "batch_size": 256,
        "lr": 0.01,
        "seed": 0,
        "select": "model",
    },  # the model serves every series
    "output": {"dir": None},
}


def make(folder: Path, series: int, rows: int, seed: int = 0) -> Path:
    """A Parquet folder of `series` hourly series of `rows` rows, ending at the same hour, whole series per file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (folder / "_done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2026-01-01", periods=rows, freq="h").as_unit("ns")
    t = np.arange(rows)
    for first in range(0, series, PER_FILE):
        n = min(PER_FILE, series - first)
        level = rng.uniform(5, 50, (n, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        values = level + 3 * np.sin(2 * np.pi * t / 24 + phase) + rng.normal(0, 0.5, (n, rows))
        ids = np.repeat(np.array([f"s{first + k:07d}" for k in range(n)]), rows)
        table = pa.table({"id": ids, "timestamp": np.tile(stamps.to_numpy(), n), "load": values.ravel().round(4)})
        pq.write_table(table, folder / f"part-{first // PER_FILE:05d}.parquet", row_group_size=100_000)
    (folder / "_done").write_text("")
    return folder


def train(work: Path, data: Path) -> Path:
    import yaml

    run = work / "model"
    if (run / "model.pt").exists():
        return run / "model.pt"
    cfg = {**CONFIG, "data": {**CONFIG["data"], "path": str(data)}, "output": {"dir": str(run)}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    subprocess.run([sys.executable, "-m", "lstmcast", "train", str(work / "config.yaml"), "--quiet"], check=True)
    return run / "model.pt"


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `python -m lstmcast ARGS` in its own process."""
    code = (
        "import resource, runpy, sys\n"
        f"sys.argv = ['lstmcast', *{args!r}]\n"
        "try:\n    runpy.run_module('lstmcast', run_name='__main__')\n"
        "finally:\n    print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lstmcast {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    rss = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("maxrss ")]
    return seconds, int(rss[-1]) / 1024


def profile(model: Path, data: Path, out: Path, top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    from lstmcast.cli import app

    prof = cProfile.Profile()
    prof.enable()
    with contextlib.suppress(SystemExit):
        app(["predict", str(model), "--data", str(data), "--out", str(out), "--quiet"])
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, nargs="+", default=[30, 3000, 30000])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--engine", nargs="+", default=["local"], choices=["local", "ray"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "catalogue" / "work")
    parser.add_argument("--profile", type=int, default=0, help="also profile one predict of this many series")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = train(args.work, make(args.work / f"data-{30}x{args.rows}", 30, args.rows))
    print(
        f"# {date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · predict, {args.rows} rows a series"
    )
    print("| engine | series | rows | seconds | series/s | peak RSS (MiB) |\n|---|---|---|---|---|---|")
    rows = []
    for n in args.series:
        data = make(args.work / f"data-{n}x{args.rows}", n, args.rows)
        for engine in args.engine:
            for workers in args.workers if engine == "ray" else [1]:
                out = args.work / f"forecast-{engine}-{workers}-{n}"
                extra = ["--engine", "ray", "--workers", str(workers)] if engine == "ray" else []
                seconds, rss = timed(
                    ["predict", str(model), "--data", str(data), "--out", f"{out}.parquet", "--quiet", *extra]
                )
                name = engine if engine == "local" else f"ray × {workers}"
                rows.append(
                    {
                        "engine": name,
                        "series": n,
                        "rows": n * args.rows,
                        "seconds": round(seconds, 2),
                        "rss_mib": round(rss),
                    }
                )
                print(
                    f"| {name} | {n:,} | {n * args.rows:,} | {seconds:.2f} | {n / seconds:,.0f} | {rss:,.0f} |",
                    flush=True,
                )
    local = {r["series"]: r["seconds"] for r in rows if r["engine"] == "local"}
    sizes = sorted(local)
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        slope = (local[b] - local[a]) / (b - a) * 1000
        print(
            f"\n{b:,} series take {local[b] / local[a]:.2f} × the time of {a:,}; about {slope:.3f} ms per extra series"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.profile:
        data = make(args.work / f"data-{args.profile}x{args.rows}", args.profile, args.rows)
        print(f"\n## profile of predict, {args.profile:,} series\n")
        print(profile(model, data, args.work / "profiled.parquet"))


if __name__ == "__main__":
    main()
