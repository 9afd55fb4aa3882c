"""Replay a forecasting job day by day through ETTh1's test period, through the real CLI, as cron would run it.

    python benchmarks/replay.py [--data ../shared/data/ett/ETTh1.csv] [--days 120] [--out benchmarks/results/replay]

Day 0 is the start of the Informer test part (row 11520, 2017-10-24 00:00). A first model is
trained on the rows before it (configs/ett.yaml, the protocol's split) and promoted into serving/.
Then, for each simulated day d (data up to d 00:00 only, written to a file as the day's feed):

  nightly   lstmcast predict serving/model.pt --data feed.csv --archive archive.db   (horizon 24: day d)
  daily     lstmcast score --archive archive.db --actuals feed.csv --since 7d --fail-if worse-than=seasonal_naive
  weekly    lstmcast train … --init-from serving/model.pt --out staging     (every 7th day; the feed, last 30
            days held out as the test part, 15% before it for validation)
            lstmcast promote staging/model.pt --to serving --data feed.csv

At the end, one score over the whole replay (by week, with a plot) against the full file. Prints
and writes (JSON) realised accuracy over time against seasonal naive and naive, the promotions
accepted and refused, the daily alerts, and the wall time per simulated day and per retrain.
Nothing is tuned here: the configs are the committed ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TEST_START = 11520  # the Informer protocol's first test row of ETTh1
RETRAIN = ["--set", "data.end=null", "--set", "data.split.test=720", "--set", "data.split.val=0.15"]


def lstmcast(*args: object) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lstmcast", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started


def must(result: tuple[int, str, str, float], what: str) -> tuple[int, str, str, float]:
    if result[0] != 0:
        sys.exit(f"{what} failed ({result[0]}): {result[2].strip()[-400:]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ett" / "ETTh1.csv")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay")
    args = parser.parse_args()
    results = args.out.resolve()
    out = results / "work"  # the job's files (feed, archive, serving/, staging/): rebuilt each run, not kept
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    frame = pd.read_csv(args.data)
    feed, archive, serving = out / "feed.csv", out / "archive.db", out / "serving"
    config = ROOT / "configs" / "ett.yaml"

    frame.iloc[:TEST_START].to_csv(feed, index=False)
    first = must(lstmcast("train", config, "--data", feed, "--out", out / "staging", "--set", "data.end=null",
                          "--quiet"), "first training")  # fmt: skip
    must(lstmcast("promote", out / "staging" / "model.pt", "--to", serving, "--quiet"), "first promote")
    days, decisions, alerts = [], [], []
    for d in range(args.days):
        end = TEST_START + 24 * d
        frame.iloc[:end].to_csv(feed, index=False)
        day: dict[str, object] = {"day": d, "date": frame["date"].iloc[end]}
        if d and d % 7 == 0:
            trained = must(lstmcast("train", config, "--data", feed, "--out", out / "staging", "--init-from",
                                    serving / "model.pt", *RETRAIN, "--quiet"), f"retrain on day {d}")  # fmt: skip
            promoted = must(lstmcast("promote", out / "staging" / "model.pt", "--to", serving, "--data", feed,
                                     "--json"), f"promote on day {d}")  # fmt: skip
            record = json.loads(promoted[1])
            decisions.append({"day": d, **{k: record.get(k) for k in ("action", "reason", "windows")}})
            day["retrain_seconds"], day["promote_seconds"] = trained[3], promoted[3]
            print(f"day {d}: retrained in {trained[3]:.0f} s; {record['action']}: {record['reason']}", flush=True)
        predicted = must(lstmcast("predict", serving / "model.pt", "--data", feed, "--out", out / "forecast.csv",
                                  "--archive", archive, "--quiet"), f"predict on day {d}")  # fmt: skip
        day["predict_seconds"] = predicted[3]
        if d:
            code, _out, stderr, seconds = lstmcast("score", "--archive", archive, "--actuals", feed, "--since", "7d",
                                                     "--fail-if", "worse-than=seasonal_naive", "--json")  # fmt: skip
            if code not in (0, 3):
                sys.exit(f"score on day {d} failed ({code}): {stderr.strip()[-400:]}")
            day["score_seconds"], day["alert"] = seconds, code == 3
            if code == 3:
                alerts.append(d)
        days.append(day)

    final = frame.iloc[: TEST_START + 24 * args.days]
    final.to_csv(feed, index=False)
    report = must(lstmcast("score", "--archive", archive, "--actuals", feed, "--by", "week", "--by", "step",
                           "--plot", results / "replay.png", "--json"), "final score")  # fmt: skip
    summary = summarize(json.loads(report[1]), days, decisions, alerts, first[3])
    (results / "replay.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_summary(summary)


def summarize(report: dict, days: list[dict], decisions: list[dict], alerts: list[int], first: float) -> dict:
    daily = [d["predict_seconds"] + d.get("score_seconds", 0.0) for d in days]
    retrains = [d["retrain_seconds"] + d["promote_seconds"] for d in days if "retrain_seconds" in d]
    return {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "days": len(days),
        "first_training_seconds": round(first, 1),
        "overall": report["overall"],
        "relative_skill": report["relative_skill"],
        "by_week": [
            {"week": w["week"], "n": w["n"], **{k: w[k]["mase"] for k in ("served", "seasonal_naive", "naive")}}
            for w in report["by"]["week"]
        ],
        "promotions": decisions,
        "promoted": sum(d["action"] == "promoted" for d in decisions),
        "kept": sum(d["action"] == "kept" for d in decisions),
        "alert_days": alerts,
        "seconds_per_day": {"mean": sum(daily) / len(daily), "max": max(daily)},
        "seconds_per_retrain_and_promote": {"mean": sum(retrains) / max(len(retrains), 1), "max": max(retrains or [0])},
    }


def print_summary(s: dict) -> None:
    o = s["overall"]
    print(f"\nETTh1 OT replay, {s['days']} days, {s['machine']}")
    print("forecaster       MAE      RMSE     sMAPE    MASE")
    for name in ("served", "seasonal_naive", "naive"):
        m = o[name]
        print(f"{name:15s} {m['mae']:.4f}  {m['rmse']:.4f}  {m['smape']:.3f}  {m['mase']:.4f}")
    print(f"relative skill {s['relative_skill']:.3f}")
    print("week        served  s.naive  naive")
    for w in s["by_week"]:
        print(f"{w['week']}  {w['served']:.3f}   {w['seasonal_naive']:.3f}    {w['naive']:.3f}")
    print(f"promotions: {s['promoted']} promoted, {s['kept']} kept; alert days: {len(s['alert_days'])}")
    per_day, retrain = s["seconds_per_day"], s["seconds_per_retrain_and_promote"]
    print(f"wall per simulated day (predict + score): {per_day['mean']:.1f} s mean, {per_day['max']:.1f} s max")
    print(f"wall per weekly retrain + promote: {retrain['mean']:.1f} s mean, {retrain['max']:.1f} s max")


if __name__ == "__main__":
    main()
