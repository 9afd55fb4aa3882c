"""M4 Hourly from a minimal config: `lstmcast tune` on the training file's validation values, then the winner
trained with three seeds (and their median as an ensemble), scored on the test file with the official measures.

    python benchmarks/m4_tune.py [--data-dir ../shared/data/m4] [--budget 40m] [--seeds 0 1 2] [--out benchmarks/results/m4_tune]

The minimal config names only the data (long format, converted as benchmarks/m4_hourly.py does),
the target, the series column, the horizon (48) and the protocol's validation part (the last 48
training values of each series; no test part: the test file is separate). Everything else is the
defaults and `tune`'s default space, derived from the data. The test file is read only after the
search and the three trainings, to score them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("m4_hourly", ROOT / "benchmarks" / "m4_hourly.py")
assert _spec is not None and _spec.loader is not None
m4 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(m4)

MINIMAL = {
    "data": {"path": "train.csv", "series_id": "series", "timestamp": "timestamp", "target": "value",
             "split": {"val": 48, "test": 0}},
    "window": {"horizon": 48},
}  # fmt: skip


def lstmcast(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lstmcast", *map(str, args)], check=True, capture_output=True, text=True
    )


def forecasts_of(path: Path) -> dict[str, np.ndarray]:
    frame = pd.read_csv(path)
    return {str(sid): g["value"].to_numpy() for sid, g in frame.groupby("series", sort=False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "m4")
    parser.add_argument("--budget", default="40m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "m4_tune")
    parser.add_argument("--skip-tune", action="store_true", help="reuse the study in --out (train and score only)")
    parser.add_argument("--config", type=Path, help="train and score this config instead of tune's best.yaml")
    args = parser.parse_args()
    out = args.out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    train = m4.read_wide(args.data_dir / "Hourly-train.csv")
    m4.to_long(train, work / "train.csv")
    (work / "minimal.yaml").write_text(yaml.safe_dump(MINIMAL, sort_keys=False))

    started = time.perf_counter()
    if not args.skip_tune and args.config is None:
        lstmcast("tune", work / "minimal.yaml", "--budget", args.budget, "--out", work / "tune", "--plot",
                 out / "m4_tune.png", "--quiet")  # fmt: skip
    tune_seconds = time.perf_counter() - started
    report = json.loads((work / "tune" / "report.json").read_text()) if args.config is None else {}
    config = args.config.resolve() if args.config is not None else work / "tune" / "best.yaml"
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        lstmcast("train", config, "--data", work / "train.csv", "--out", work / f"seed{seed}", "--set",
                 f"train.seed={seed}", "--quiet")  # fmt: skip
        seconds = time.perf_counter() - t0
        for mode in ("best", "model"):
            lstmcast("predict", work / f"seed{seed}" / "model.pt", "--data", work / "train.csv", "--out",
                     work / f"f{seed}-{mode}.csv", "--select", mode, "--quiet")  # fmt: skip
        runs.append({"seed": seed, "train_seconds": round(seconds, 1)})

    test = m4.read_wide(args.data_dir / "Hourly-test.csv")  # read now, after every choice was made
    naive2 = m4.score(train, test, {k: m4.naive2(v) for k, v in train.items()})
    for run in runs:
        for mode in ("best", "model"):
            s, m = m4.score(train, test, forecasts_of(work / f"f{run['seed']}-{mode}.csv"))
            run[mode] = {"smape": s, "mase": m, "owa": m4.owa(s, m, naive2)}
    members = [forecasts_of(work / f"f{r['seed']}-best.csv") for r in runs]
    ensembles = {}
    for size in sorted({min(3, len(members)), len(members)}):  # the first three seeds, and all of them
        median = {k: np.median([f[k] for f in members[:size]], axis=0) for k in members[0]}
        es, em = m4.score(train, test, median)
        train_total = sum(r["train_seconds"] for r in runs[:size])
        ensembles[size] = {"smape": es, "mase": em, "owa": m4.owa(es, em, naive2), "train_seconds": train_total}
    owas = [r["best"]["owa"] for r in runs[:3]]  # the figure: the mean over three seeds
    summary = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "config": str(config),
        "budget": None if args.config is not None else args.budget,
        "tune_seconds": round(tune_seconds, 1),
        "tune": {k: report.get(k) for k in ("trials", "complete", "pruned", "best", "importance", "space")},
        "runs": runs,
        "owa_mean": float(np.mean(owas)),
        "owa_spread": [float(min(owas)), float(max(owas))],
        "owa_all_seeds": [r["best"]["owa"] for r in runs],
        "ensembles": {f"median of {k}": v for k, v in ensembles.items()},
    }
    (out / "m4_tune.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
