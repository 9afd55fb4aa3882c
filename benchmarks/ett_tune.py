"""ETTh1 OT from a minimal config: `lstmcast tune` per horizon (validation rows only), then the winner scored
on the Informer protocol's test rows exactly as benchmarks/ett.py scores the hand-tuned configs/ett.yaml.

    python benchmarks/ett_tune.py [--data ../shared/data/ett/ETTh1.csv] [--horizons 96 336 720] [--budget 5m]

The minimal config names the data, the target, the horizon and the protocol (rows up to 2018-02-20
23:00, split 12/4/4 months); everything else is the defaults and tune's default space. The test
rows are scored only after the search, by retraining best.yaml (same seed) through ett.py's scorer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ett", ROOT / "benchmarks" / "ett.py")
assert _spec is not None and _spec.loader is not None
ett = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ett)


def minimal(data: Path, horizon: int) -> dict:
    return {
        "data": {"path": str(data), "timestamp": "date", "target": "OT", "end": "2018-02-20 23:00:00",
                 "split": {"val": 0.2, "test": 0.2}},
        "window": {"horizon": horizon},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ett" / "ETTh1.csv")
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 336, 720])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ett_tune")
    args = parser.parse_args()
    out = args.out.resolve()
    rows = {}
    for h in args.horizons:
        work = out / "work" / f"h{h}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "minimal.yaml").write_text(yaml.safe_dump(minimal(args.data.resolve(), h), sort_keys=False))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lstmcast", "tune", str(work / "minimal.yaml"), "--budget", args.budget,
                        "--out", str(work / "tune"), "--quiet"], check=True)  # fmt: skip
        seconds = time.perf_counter() - started
        report = json.loads((work / "tune" / "report.json").read_text())
        tuned = ett.run_horizon(work / "tune" / "best.yaml", args.data, h, [])
        hand = ett.run_horizon(ROOT / "configs" / "ett.yaml", args.data, h, [])
        rows[h] = {
            "tune_seconds": round(seconds, 1),
            "trials": report["trials"],
            "complete": report["complete"],
            "pruned": report["pruned"],
            "best": report.get("best"),
            "tuned_mse": tuned["lstmcast mse"],
            "tuned_mae": tuned["lstmcast mae"],
            "hand_tuned_mse": hand["lstmcast mse"],
            "repeat_last_mse": tuned["repeat last mse"],
            "published": {k: v.get(h) for k, v in ett.PUBLISHED.items() if h in v},
        }
        print(json.dumps({h: rows[h]}, indent=2), flush=True)
    (out / "ett_tune.json").write_text(json.dumps({"date": date.today().isoformat(), "budget": args.budget,
                                                   "horizons": rows}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
