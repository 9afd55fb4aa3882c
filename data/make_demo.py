"""Generate data/demo.csv: two years of hourly electricity load with a temperature column.

Deterministic (fixed seed, plain-text formatting), so rerunning it reproduces the committed
file byte for byte:  python data/make_demo.py
Load has a trend, daily and weekly cycles, a yearly cycle, heating demand driven by
temperature, and AR(1) noise. A few rows are missing (single hours and one 6-hour outage)
and a few cells are empty, so the gap handling has something to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HOURS = 731 * 24  # 2024-01-01 00:00 … 2025-12-31 23:00
START = datetime(2024, 1, 1)


def make(seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS)
    hour, day = t % 24, (t // 24 + START.weekday()) % 7
    year_phase = 2 * np.pi * t / (365.25 * 24)

    temperature = 11 - 9 * np.cos(year_phase - 0.35) - 4 * np.cos(2 * np.pi * (hour - 15) / 24)
    temperature += np.convolve(rng.normal(0, 1.2, HOURS + 47), np.ones(48) / np.sqrt(48), "valid")

    weekend = day >= 5
    daily = (
        14 * np.exp(-((hour - 9) ** 2) / 8) + 18 * np.exp(-((hour - 19) ** 2) / 6) - 6 * np.cos(2 * np.pi * hour / 24)
    )
    daily = np.where(weekend, 0.55 * daily, daily)
    heating = 1.6 * np.clip(14 - temperature, 0, None)
    noise = np.zeros(HOURS)
    shocks = rng.normal(0, 1.8, HOURS)
    for i in range(1, HOURS):
        noise[i] = 0.85 * noise[i - 1] + shocks[i]
    load = 100 + 8 * t / HOURS + daily - 7 * weekend + heating + noise

    drop = set(rng.choice(np.arange(200, HOURS - 200), size=9, replace=False).tolist())
    outage = int(rng.integers(2000, HOURS - 2000))
    drop |= set(range(outage, outage + 6))
    empty = set(rng.choice(np.arange(200, HOURS - 200), size=4, replace=False).tolist()) - drop

    lines = ["timestamp,load,temperature"]
    for i in range(HOURS):
        if i in drop:
            continue
        stamp = (START + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
        value = "" if i in empty else f"{load[i]:.2f}"
        lines.append(f"{stamp},{value},{temperature[i]:.1f}")
    return lines


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "demo.csv"
    out.write_text("\n".join(make()) + "\n", encoding="utf-8")
    print(f"wrote {out}")
