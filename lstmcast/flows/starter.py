"""`lstmcast init`: a starting config from the data alone — frequency-aware settings a user can train as is.

The data is read as training reads it (frequency inferred, gaps checked); from its frequency, the
seasonal period, the series' lengths and the horizon come the window (whole seasons of lookback
that leave the median series enough training windows; patches of a season), the split (counts of
horizons for short series, shares for long ones), the calendar and epochs by the data's size.
`lstmcast tune` searches around the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lstmcast.config import Config, DataConfig, config_from_dict
from lstmcast.data import calendar
from lstmcast.errors import ConfigError, DataError, shown

TARGET_STEPS = 6000  # optimiser steps a starting config trains for (batch 256): minutes on 2 cores for most data
# Model size and learning rate by the number of training windows. Below LARGE_DATA windows (ETTh1: ~8,000), 2 × 64
# at lr 0.001 is the hand-tuned ETT setting; above (M4 Hourly: ~160,000 windows of 414 series), 2 × 128 at
# lr 0.005, M4's hand-tuned setting (validation OWA 0.509 at lr 0.001, 0.476 at 0.005; benchmarks/RESULTS.md).
LARGE_DATA = 100_000


@dataclass(frozen=True)
class DataFacts:
    """What a starting config (init) and a default search space (tune) are derived from: the data's shape."""

    freq: str | None
    season: int
    series: int
    shortest: int  # rows of the shortest series
    median: int  # rows of the median series
    rows: int = 0  # all series together
    filled: int = 0  # missing rows gap filling adds


def data_facts(d: DataConfig) -> DataFacts:
    """Frequency, season, series count and lengths of `d`'s data, read as training reads it (the one reader)."""
    import numpy as np

    from lstmcast.data.frame import read_data
    from lstmcast.data.sources import source_of, within

    if d.path is None:
        raise ConfigError("data.path is not set — add it to the config")
    panel = read_data(d, within(source_of(d.path, d.query), d), freq=d.freq, start=d.start, end=d.end)
    lengths = panel.lengths
    freq = panel.freq
    return DataFacts(
        freq=freq,
        season=calendar.season_length(freq),
        series=len(panel),
        shortest=int(lengths.min()),
        median=int(np.median(lengths)),
        rows=int(lengths.sum()),
        filled=int(panel.filled_rows.sum()),
    )


def _short(facts: DataFacts, horizon: int) -> bool:
    """A series so short that a share of it would leave validation less than a horizon."""
    return facts.median < 20 * horizon


def _held(facts: DataFacts, horizon: int) -> int:
    """Rows of the median series held out for validation and test: a horizon each when short, else 15 % each."""
    return 2 * horizon if _short(facts, horizon) else int(0.3 * facts.median)


def season_unit(facts: DataFacts, horizon: int) -> int:
    """The step lookbacks and patches are counted in: a season, or half a horizon for data without one."""
    return facts.season if facts.season > 1 else max(1, horizon // 2)


def lookbacks(facts: DataFacts, horizon: int) -> list[int]:
    """The lookbacks worth trying (the one rule init and tune share): whole seasons (1, 2, 4, 7 and 14 of them;
    half-horizons without a season) that leave the median series at least as many training windows as they are long."""
    unit = season_unit(facts, horizon)
    room = facts.median - _held(facts, horizon) - horizon  # rows before validation in the median series
    fits = [unit * k for k in (1, 2, 4, 7, 14) if unit * k <= max(unit, room // 2)]
    return fits or [unit]


def training_windows(facts: DataFacts, lookback: int, horizon: int) -> int:
    """About how many training windows an epoch has (the median series' count, times the series)."""
    room = facts.median - _held(facts, horizon) - horizon
    return max(1, facts.series * max(1, room - lookback + 1))


def suggest(facts: DataFacts, horizon: int) -> dict[str, dict[str, Any]]:
    """The starting settings (section → key → value) for data with these facts and this horizon."""
    short = _short(facts, horizon)
    split = {"val": horizon, "test": horizon} if short else {"val": 0.15, "test": 0.15}
    unit = season_unit(facts, horizon)
    lookback = max(lb for lb in lookbacks(facts, horizon) if lb <= 7 * unit)  # up to a week of hourly data
    patch = unit if unit >= 4 and lookback // unit >= 4 else 1
    windows = training_windows(facts, lookback, horizon)
    per_epoch = max(1, math.ceil(windows / 256))
    epochs = int(min(100, max(2, round(TARGET_STEPS / per_epoch))))
    large = windows >= LARGE_DATA
    return {
        "data": {"split": split},
        "window": {"lookback": lookback, "horizon": horizon, "norm": "last"},
        "model": {"hidden_size": 128 if large else 64, "num_layers": 2, "dropout": 0.0, "patch": patch},
        "train": {
            "epochs": epochs,
            "lr": 0.005 if large else 0.001,
            "lr_schedule": "cosine",
            "loss": "mae",
            "patience": 5,
            "val_every": max(1, per_epoch // 2) if epochs <= 10 else 0,
        },
    }


def write(
    path: str,
    target: list[str],
    horizon: int,
    series_id: str | None,
    timestamp: str | None,
    query: str | None,
    out: Path,
) -> tuple[Config, dict[str, Any]]:
    """The starting config, validated, written (with comments) to `out`; with the data's facts."""
    facts = data_facts(DataConfig(path=path, query=query, series_id=series_id, timestamp=timestamp, target=target))
    check_horizon(horizon, facts)
    settings = suggest(facts, horizon)
    data: dict[str, Any] = {"path": path, "series_id": series_id, "timestamp": timestamp, "target": target}
    if query:
        data["query"] = query
    data.update(freq=facts.freq or "auto", calendar="auto", split=settings["data"]["split"])
    raw = {**settings, "data": data, "output": {"dir": f"runs/{out.stem}"}}
    cfg = config_from_dict(raw, source=str(out))
    from lstmcast.atomic import write_text

    write_text(out, _commented(raw, facts, horizon))
    return cfg, facts


def _commented(raw: dict[str, Any], facts: dict[str, Any], horizon: int) -> str:
    lines = [
        "# Written by lstmcast init from the data itself: a starting point that trains as is.",
        f"# Found: {facts.series} series, {facts.rows} rows, frequency {facts.freq or 'none (rows numbered)'}"
        f", seasonal period {facts.season}, series length {facts.shortest} (shortest) / {facts.median} (median)"
        + (f", {facts.filled} missing rows to fill" if facts.filled else "")
        + ".",
        f"# window.lookback: whole seasons that leave the median series training windows; model.patch: one season"
        f" per LSTM step when the lookback holds at least four. Epochs: about {TARGET_STEPS} optimiser steps.",
        f"# model and lr: 2 x 128 at lr 0.005 from {LARGE_DATA:,} training windows on, 2 x 64 at lr 0.001 below.",
        "# Better settings for this data: lstmcast tune THIS_FILE --budget 30m (validation rows only).",
        "# Every key and its default: docs/config.md. Paths are relative to this file's folder.",
    ]
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ConfigError(f"{out} exists — choose another --out, or pass --force to replace it")
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--out {shown(str(out))} should end in .yaml")


def check_horizon(horizon: int, facts: dict[str, Any]) -> None:
    if facts.median < 4 * horizon:
        raise DataError(
            f"the median series has {facts.median} rows, too few for horizon {horizon} (it needs at least "
            f"{4 * horizon}: training, validation and test windows) — forecast fewer steps or supply more history"
        )
