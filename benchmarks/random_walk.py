"""Selection on validation where the model should lose: random walks, and ETTh1's oil temperature by day.

    python benchmarks/random_walk.py [--seeds 0 1 2] [--ett ../shared/data/ett/ETTh1.csv]

1. A generated panel of 100 daily random walks with drift (1,000 days each; step sizes and drifts
   differ by series). Repeating the last value is the best forecast a model can hope to match.
   Trained once per seed through the real CLI with train.select: best, then scored on each
   series' test part by `evaluate` twice: as served (selected) and the model alone (--select model),
   per horizon step, next to naive (repeat-last) on the same windows.
2. A per-series blend w·model + (1 − w)·naive, w ∈ {0, ¼, ½, ¾, 1} chosen per series on the
   validation part, scored on the same test windows — measured, to decide whether to ship one.
3. ETTh1 `OT` as daily means (one series, 725 days), the same way (when the file is there).

The test part is never used to choose anything: selection and blend weights come from validation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAYS, SERIES, HORIZON, LOOKBACK = 1000, 100, 14, 56
WEIGHTS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def walks(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(1000 + seed)
    parts = []
    for k in range(SERIES):
        sigma = rng.uniform(0.5, 5.0)
        drift = rng.normal(0, 0.05) * sigma
        values = 500 + np.cumsum(drift + rng.normal(0, sigma, DAYS))
        stamps = pd.date_range("2020-01-01", periods=DAYS, freq="D").strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"id": f"w{k:03d}", "date": stamps, "value": values.round(4)}))
    pd.concat(parts).to_csv(path, index=False)
    return path


def ett_daily(source: Path, path: Path) -> Path:
    frame = pd.read_csv(source, parse_dates=["date"])
    daily = frame.set_index("date")["OT"].resample("D").mean().dropna()
    pd.DataFrame({"date": daily.index.strftime("%Y-%m-%d"), "value": daily.round(4).to_numpy()}).to_csv(
        path, index=False
    )
    return path


def config(folder: Path, data: Path, series_id: str | None, seed: int) -> Path:
    import yaml

    cfg = {
        "data": {
            "path": str(data),
            "series_id": series_id,
            "timestamp": "date",
            "target": "value",
            "freq": "D",
            "split": {"val": 0.15, "test": 0.15},
        },
        "window": {"lookback": LOOKBACK, "horizon": HORIZON, "norm": "last"},
        "model": {"hidden_size": 64, "num_layers": 2, "dropout": 0.0, "patch": 7},
        "train": {"epochs": 10, "lr": 0.003, "loss": "mae", "seed": seed, "select": "best", "lr_schedule": "cosine"},
        "output": {"dir": str(folder / "run")},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def lstmcast(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "lstmcast", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def per_step_mae(report: dict, name: str) -> np.ndarray:
    return np.array(report["per_step"][name]["mae"], dtype=float)


def blend(model_path: Path, data: Path) -> dict[str, np.ndarray]:
    """Per-step MAE on test of a per-series blend with naive whose weight was chosen on validation."""
    from lstmcast.flows.evaluate import evaluate_checkpoint
    from lstmcast.forecast import metrics
    from lstmcast.report import Reporter

    quiet = Reporter(quiet=True)
    frame = pd.read_csv(data)
    ids = frame.groupby(frame.columns[0]).size() if frame.columns[0] == "id" else None
    rows = DAYS if ids is not None else len(frame)
    n_val = n_test = int(np.floor(rows * 0.15 + 0.5))
    stamps = pd.to_datetime(frame["date"].iloc[:rows])
    val_start, val_end = stamps.iloc[rows - n_val - n_test], stamps.iloc[rows - n_test - 1]

    def backtest(start, end):
        out = evaluate_checkpoint(
            model_path, data, quiet, start=str(start.date()), end=str(end.date()) if end else None
        )
        bt, ds = out.backtest, out.dataset
        naive = metrics.seasonal_naive(ds.values[:, :1], bt.origins, HORIZON, 1, ds.offsets[bt.series])
        return bt, naive

    bt, naive = backtest(val_start, val_end)
    weight = {}
    for s in np.unique(bt.series):
        rows_s = bt.series == s
        errors = [np.abs(w * bt.forecast[rows_s] + (1 - w) * naive[rows_s] - bt.actual[rows_s]).mean() for w in WEIGHTS]
        weight[int(s)] = WEIGHTS[int(np.argmin(errors))]
    bt, naive = backtest(stamps.iloc[rows - n_test], None)
    w = np.array([weight[int(s)] for s in bt.series])[:, None, None]
    blended = w * bt.forecast + (1 - w) * naive
    return {"blend": np.abs(blended - bt.actual).mean(axis=(0, 2)), "weights": np.array(list(weight.values()))}


def run(name: str, data: Path, series_id: str | None, seed: int, tmp: Path) -> dict:
    folder = tmp / f"{name}-{seed}"
    folder.mkdir()
    lstmcast("train", config(folder, data, series_id, seed), "--quiet")
    model = folder / "run" / "model.pt"
    reports = {}
    for select in ("best", "model"):
        lstmcast("evaluate", model, "--data", data, "--select", select, "--report", folder / f"{select}.json")
        reports[select] = json.loads((folder / f"{select}.json").read_text())
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    b = blend(model, data)
    naive = per_step_mae(reports["best"], "naive")
    return {
        "naive": naive,
        "model": per_step_mae(reports["model"], "model"),
        "selected": per_step_mae(reports["best"], "selected"),
        "blend": b["blend"],
        "mix": metrics["selection"]["mix"],
        "weights": b["weights"],
    }


def show(name: str, results: list[dict]) -> None:
    print(
        f"\n{name} — {date.today()} — {len(results)} seeds; test MAE per horizon step relative to naive (1.000 = naive)"
    )
    for key in ("model", "selected", "blend"):
        ratios = np.array([r[key] / r["naive"] for r in results])  # (seeds, horizon)
        worst = ratios.max(axis=0)
        print(
            f"  {key:9s} mean over steps {ratios.mean():.4f} (seeds {', '.join(f'{x:.4f}' for x in ratios.mean(axis=1))}); "
            f"worst step, worst seed {worst.max():.4f} (step {int(worst.argmax()) + 1}); steps above 1.005: "
            f"{int((worst > 1.005).sum())} of {len(worst)}"
        )
        print(f"    per step, mean over seeds: {' '.join(f'{x:.3f}' for x in ratios.mean(axis=0))}")
    for r in results:
        print(
            f"  mix {r['mix']}; blend weights on the model: { {f'{w:g}': int(c) for w, c in zip(*np.unique(r['weights'], return_counts=True), strict=True)} }"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ett", type=Path, default=ROOT.parent / "shared" / "data" / "ett" / "ETTh1.csv")
    parser.add_argument("--only", choices=("walks", "ett"), help="run one of the two data sets")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = walks(tmp / "walks.csv", 0)
        if args.only != "ett":
            show(
                "random walks with drift (100 series × 1,000 days, horizon 14)",
                [run("walks", data, "id", s, tmp) for s in args.seeds],
            )
        if args.ett.exists() and args.only != "walks":
            ett = ett_daily(args.ett, tmp / "ett_daily.csv")
            show("ETTh1 OT, daily means (725 days, horizon 14)", [run("ett", ett, None, s, tmp) for s in args.seeds])


if __name__ == "__main__":
    main()
