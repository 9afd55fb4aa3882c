"""M4 Hourly (414 series, horizon 48) through the real CLI, scored with the official M4 measures.

    python benchmarks/m4_hourly.py [--data-dir ../shared/data/m4] [--config configs/m4_hourly.yaml] [--set K=V]...

1. Converts the wide M4 files into lstmcast's long format (hourly timestamps from a fixed,
   arbitrary start: the data has none).
2. `lstmcast train` on the training file only (its last 48 values per series are the validation
   part for early stopping; the test file is never seen), then `lstmcast predict` for all series.
3. Scores sMAPE, MASE (in-sample seasonal naive, m = 24) and OWA (relative to Naive2) — after
   checking that this scorer reproduces the official seasonal-naive and Naive2 results.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HORIZON, SEASON = 48, 24
OFFICIAL = {"seasonal naive": (13.912, 1.193), "naive2": (18.383, 2.395)}
REFERENCES = [
    ("seasonal naive (official)", 13.912, 1.193, 0.627),
    ("M4 RNN benchmark", 14.698, 3.048, 1.036),
    ("NeuralForecast LSTM, measured on a 2-core machine (508 s)", 13.96, 1.331, 0.658),
    ("M4 winner, Smyl ES-LSTM hybrid", 9.328, 0.893, 0.440),
    ("best hourly entry", 8.913, 0.801, 0.410),
]


def read_wide(path: Path) -> dict[str, np.ndarray]:
    wide = pd.read_csv(path)
    ids = wide.iloc[:, 0].astype(str)
    return {sid: row[~np.isnan(row)] for sid, row in zip(ids, wide.iloc[:, 1:].to_numpy(dtype=float), strict=True)}


def to_long(series: dict[str, np.ndarray], path: Path) -> None:
    start = pd.Timestamp("2000-01-01")
    parts = [
        pd.DataFrame({"series": sid, "timestamp": pd.date_range(start, periods=len(v), freq="h"), "value": v})
        for sid, v in series.items()
    ]
    pd.concat(parts).to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------- the M4 scorer


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(forecast - actual) / (np.abs(forecast) + np.abs(actual))))


def mase(insample: np.ndarray, forecast: np.ndarray, actual: np.ndarray, m: int = SEASON) -> float:
    scale = np.mean(np.abs(insample[m:] - insample[:-m]))
    return float(np.mean(np.abs(forecast - actual)) / scale)


def seasonal_naive(insample: np.ndarray, h: int = HORIZON, m: int = SEASON) -> np.ndarray:
    return np.resize(insample[-m:], h)


def _acf(x: np.ndarray, lags: int) -> np.ndarray:
    d = x - x.mean()
    denom = np.sum(d * d)
    return np.array([np.sum(d[k:] * d[:-k]) / denom for k in range(1, lags + 1)])


def is_seasonal(x: np.ndarray, m: int = SEASON) -> bool:
    """The M4 test: autocorrelation at lag m beyond the 90% limit given the lower lags."""
    if len(x) < 3 * m:
        return False
    r = _acf(x, m)
    limit = 1.645 / np.sqrt(len(x)) * np.sqrt(1 + 2 * np.sum(r[: m - 1] ** 2))
    return bool(abs(r[m - 1]) > limit)


def seasonal_indices(x: np.ndarray, m: int = SEASON) -> np.ndarray:
    """Classical multiplicative decomposition (centred 2×m moving average), one index per position."""
    weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
    trend = np.convolve(x, weights, mode="valid")  # trend[i] belongs to x[i + m/2]
    ratio = np.full(len(x), np.nan)
    ratio[m // 2 : m // 2 + len(trend)] = x[m // 2 : m // 2 + len(trend)] / trend
    figure = np.array([np.nanmean(ratio[p::m]) for p in range(m)])
    return figure / figure.mean()


def naive2(insample: np.ndarray, h: int = HORIZON, m: int = SEASON) -> np.ndarray:
    if not is_seasonal(insample, m):
        return np.full(h, insample[-1])
    figure = seasonal_indices(insample, m)
    season_in = figure[np.arange(len(insample)) % m]
    season_out = figure[(len(insample) + np.arange(h)) % m]
    return (insample[-1] / season_in[-1]) * season_out


def score(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], forecasts: dict[str, np.ndarray]
) -> tuple[float, float]:
    s = [smape(forecasts[k], test[k]) for k in test]
    m = [mase(train[k], forecasts[k], test[k]) for k in test]
    return float(np.mean(s)), float(np.mean(m))


def owa(s: float, m: float, naive2_scores: tuple[float, float]) -> float:
    return 0.5 * (s / naive2_scores[0] + m / naive2_scores[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "m4")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "m4_hourly.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    train = read_wide(args.data_dir / "Hourly-train.csv")
    test = read_wide(args.data_dir / "Hourly-test.csv")
    assert len(train) == len(test) == 414

    baselines = {
        "seasonal naive": score(train, test, {k: seasonal_naive(v) for k, v in train.items()}),
        "naive2": score(train, test, {k: naive2(v) for k, v in train.items()}),
    }
    for name, (s, m) in baselines.items():
        want = OFFICIAL[name]
        ok = abs(s - want[0]) <= 0.01 and abs(m - want[1]) <= 0.01
        print(
            f"scorer check, {name}: sMAPE {s:.3f} (official {want[0]}), MASE {m:.3f} (official {want[1]}) — {'ok' if ok else 'MISMATCH'}"
        )
        if not ok:
            raise SystemExit("the scorer does not reproduce the official M4 numbers")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        to_long(train, tmp / "train.csv")
        cmd = [sys.executable, "-m", "lstmcast"]
        sets = [x for item in args.set for x in ("--set", item)]
        started = time.perf_counter()
        subprocess.run(
            [
                *cmd,
                "train",
                str(args.config),
                "--data",
                str(tmp / "train.csv"),
                "--out",
                str(tmp / "run"),
                "--quiet",
                *sets,
            ],
            check=True,
        )
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([*cmd, "predict", str(tmp / "run" / "model.pt"), "--data", str(tmp / "train.csv"), "--out", str(tmp / "f.csv"), "--quiet"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        predict_seconds = time.perf_counter() - started
        # The same model serving every series itself (train.select: model), to measure what selection changes.
        subprocess.run([*cmd, "predict", str(tmp / "run" / "model.pt"), "--data", str(tmp / "train.csv"), "--out", str(tmp / "fm.csv"), "--quiet", "--select", "model"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        # A nightly job's file: a tenth of the series cut to 80 rows (< lookback), five renamed (new to the model).
        ragged = {
            (f"new-{k}" if i < 5 else k): (v[-80:] if i % 10 == 9 else v) for i, (k, v) in enumerate(train.items())
        }
        to_long(ragged, tmp / "ragged.csv")
        subprocess.run([*cmd, "predict", str(tmp / "run" / "model.pt"), "--data", str(tmp / "ragged.csv"), "--out", str(tmp / "r.csv"), "--quiet"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        ragged_forecast = pd.read_csv(tmp / "r.csv")
        metrics = json.loads((tmp / "run" / "metrics.json").read_text())
        forecast = pd.read_csv(tmp / "f.csv")
        model_forecast = pd.read_csv(tmp / "fm.csv")
        # Validation score: forecast the last 48 training values (held out by the config) from the rest.
        head = {k: v[:-HORIZON] for k, v in train.items()}
        tail = {k: v[-HORIZON:] for k, v in train.items()}
        to_long(head, tmp / "head.csv")
        # The model alone: the selection was made on these very values, so the selected score would flatter it.
        subprocess.run([*cmd, "predict", str(tmp / "run" / "model.pt"), "--data", str(tmp / "head.csv"), "--out", str(tmp / "v.csv"), "--quiet", "--select", "model"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        val_forecast = pd.read_csv(tmp / "v.csv")
    forecasts = {str(sid): g["value"].to_numpy() for sid, g in forecast.groupby("series", sort=False)}
    s, m = score(train, test, forecasts)
    naive2_scores = baselines["naive2"]
    model_only = {str(sid): g["value"].to_numpy() for sid, g in model_forecast.groupby("series", sort=False)}
    ms, mm = score(train, test, model_only)
    served = forecast.groupby("series", sort=False)["forecaster"].first().value_counts().to_dict()
    val_forecasts = {str(sid): g["value"].to_numpy() for sid, g in val_forecast.groupby("series", sort=False)}
    vs, vm = score(head, tail, val_forecasts)
    vn2 = score(head, tail, {k: naive2(v) for k, v in head.items()})
    vsn = score(head, tail, {k: seasonal_naive(v) for k, v in head.items()})
    print(
        f"validation (last 48 training values, used for tuning and selection): the model alone: sMAPE {vs:.3f} MASE {vm:.3f} "
        f"OWA {owa(vs, vm, vn2):.3f}; seasonal naive OWA {owa(*vsn, vn2):.3f}"
    )
    print(f"\nM4 Hourly — {date.today()} — {platform.machine()}, {args.config.name} {' '.join(args.set)}")
    print(
        f"training {train_seconds:.0f} s wall ({metrics['train_seconds']:.0f} s in the loop, {metrics['epochs_run']} epochs, best {metrics['best_epoch']}); predict {predict_seconds:.1f} s"
    )
    print("| forecaster | sMAPE | MASE | OWA |")
    print("|---|---|---|---|")
    per_series = ragged_forecast.groupby("series")
    print(
        f"one predict on {len(ragged)} series ({sum(1 for v in ragged.values() if len(v) == 80)} cut to 80 rows, "
        f"5 renamed): {per_series.ngroups} series forecast, {set(per_series.size())} rows each; "
        f"served: {per_series['forecaster'].first().value_counts().to_dict()}"
    )
    mode = metrics.get("selection", {}).get("mode", "model")
    print(f"| **lstmcast** (train.select: {mode}; series served: {served}) | **{s:.3f}** | **{m:.3f}** | **{owa(s, m, naive2_scores):.3f}** |")  # fmt: skip
    print(f"| lstmcast, the model for every series (--select model) | {ms:.3f} | {mm:.3f} | {owa(ms, mm, naive2_scores):.3f} |")  # fmt: skip
    for name, (bs, bm) in baselines.items():
        print(f"| {name} (this scorer) | {bs:.3f} | {bm:.3f} | {owa(bs, bm, naive2_scores):.3f} |")
    for name, rs, rm, ro in REFERENCES:
        print(f"| {name} | {rs} | {rm} | {ro} |")


if __name__ == "__main__":
    main()
