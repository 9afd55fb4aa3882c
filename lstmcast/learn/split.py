"""Chronological train/validation/test split and the forecast origins each part owns.

An origin is the index of a window's first forecast row: the window reads rows
[origin - lookback, origin) and forecasts rows [origin, origin + horizon). A validation or
test origin may read its lookback from earlier parts (standard practice), but its forecast
rows lie entirely inside its own part, so no target is ever seen in two parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lstmcast.errors import DataError


@dataclass(frozen=True)
class Split:
    train: int  # rows [0, train)
    val: int  # rows [train, train + val)
    test: int  # rows [train + val, train + val + test)

    @property
    def rows(self) -> int:
        return self.train + self.val + self.test


def split_rows(rows: int, val: float, test: float) -> Split:
    n_val, n_test = _part(rows, val), _part(rows, test)
    return Split(rows - n_val - n_test, n_val, n_test)


def _part(rows: int, size: float) -> int:
    """A fraction of the rows (size < 1) or a number of rows (size ≥ 1)."""
    return int(size) if size >= 1 else int(np.floor(rows * size + 0.5))


def rows_needed(lookback: int, horizon: int, val: float, test: float) -> int:
    """The fewest rows for which every non-empty part holds at least one window.

    Computed from the parts' sizes, then confirmed by a short scan: a part given as a fraction
    is rounded, so the bound can be a few rows low, never more.
    """
    counts = (int(val) if val >= 1 else 0) + (int(test) if test >= 1 else 0)
    parts = [size for size in (val, test) if 0 < size < 1]
    # Rounding takes at most half a row from each fractional part: train ≥ rows·(1 − Σ) − Σ 0.5.
    slack = lookback + horizon + counts - 0.5 * len(parts)
    rows = math.floor(slack / (1.0 - sum(parts)))
    for size in parts:  # round(rows · size) ≥ horizon
        rows = max(rows, math.floor((horizon - 0.5) / size))
    rows = max(lookback + horizon + counts, rows)
    for _ in range(10_000):
        if _fits(split_rows(rows, val, test), lookback, horizon, val, test):
            return rows
        rows += 1
    raise AssertionError(f"rows_needed found no size for {lookback=} {horizon=} {val=} {test=}")  # a bug


def _fits(split: Split, lookback: int, horizon: int, val: float, test: float) -> bool:
    return (
        split.train >= lookback + horizon
        and split.train > 0
        and (val == 0 or split.val >= horizon)
        and (test == 0 or split.test >= horizon)
    )


def check_length(rows: int, lookback: int, horizon: int, val: float, test: float, what: str) -> Split:
    split = split_rows(rows, val, test)
    for name, size in (("val", val), ("test", test)):
        if 1 <= size < horizon:  # no number of rows would do
            raise DataError(
                f"data.split.{name} = {size:g} rows is shorter than window.horizon ({horizon}), so that part holds "
                "no forecast window — give it at least horizon rows, a fraction, or 0"
            )
    if not _fits(split, lookback, horizon, val, test):
        need = rows_needed(lookback, horizon, val, test)
        raise DataError(
            f"{what} has {rows} rows, but lookback {lookback} + horizon {horizon} with validation {val:g} "
            f"and test {test:g} needs at least {need} — supply more rows, or shorten "
            "window.lookback / window.horizon or data.split"
        )
    return split


@dataclass(frozen=True)
class Runs:
    """Origins as arithmetic runs, one per series: run k holds first[k] + i·step for i < count[k].

    A long series has millions of training origins; as runs they cost a few numbers, and
    training turns only each batch's positions into origins (`windows.StartRuns`).
    """

    first: np.ndarray  # (runs,) int64
    count: np.ndarray  # (runs,) int64
    step: int = 1

    def __len__(self) -> int:
        return int(self.count.sum())

    def array(self) -> np.ndarray:
        """Every origin, run after run (for a validation or test part)."""
        count = np.asarray(self.count, dtype=np.int64)
        total = int(count.sum())
        if not total:
            return np.arange(0)
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        return np.repeat(np.asarray(self.first, dtype=np.int64), count) + self.step * within

    @staticmethod
    def join(runs: Sequence[Runs], offsets: Sequence[int]) -> Runs:
        """The runs of several series whose rows start at `offsets` in one concatenation."""
        step = runs[0].step if runs else 1
        first = [r.first + offset for r, offset in zip(runs, offsets, strict=True)]
        return Runs(
            np.concatenate(first) if first else np.zeros(0, np.int64),
            np.concatenate([r.count for r in runs]) if runs else np.zeros(0, np.int64),
            step,
        )


def _run(start: int, stop: int, step: int = 1) -> Runs:
    count = max(0, -(-(stop - start) // step))
    return Runs(np.array([start], np.int64), np.array([count], np.int64), step)


def origins(split: Split, lookback: int, horizon: int, stride: int = 1) -> dict[str, Runs]:
    """Forecast origins of each part; training origins are thinned by `stride`."""
    train_end, val_end = split.train, split.train + split.val
    return {
        "train": _run(lookback, train_end - horizon + 1, stride),
        "val": _run(train_end, val_end - horizon + 1) if split.val else _run(0, 0),
        "test": _run(val_end, split.rows - horizon + 1) if split.test else _run(0, 0),
    }


def parts(
    splits: Sequence[Split], offsets: np.ndarray, lookback: int, horizon: int, stride: int = 1
) -> dict[str, Runs]:
    """The origins of each part for series whose rows start at `offsets`, one `Split` each (`origins` of each,
    joined): computed once per distinct split, so a million series of a few lengths cost a few calls."""
    distinct: dict[Split, int] = {}
    codes = np.array([distinct.setdefault(split, len(distinct)) for split in splits], dtype=np.int64)
    per_split = [origins(split, lookback, horizon, stride) for split in distinct]
    out = {}
    for part in ("train", "val", "test"):
        step = per_split[0][part].step if per_split else 1
        first = np.array([o[part].first[0] for o in per_split], dtype=np.int64)
        count = np.array([o[part].count[0] for o in per_split], dtype=np.int64)
        if not len(codes):
            out[part] = Runs(np.zeros(0, np.int64), np.zeros(0, np.int64), step)
            continue
        out[part] = Runs(np.asarray(offsets[: len(codes)], dtype=np.int64) + first[codes], count[codes], step)
    return out


def by_length(lengths: np.ndarray, lookback: int, horizon: int, val: float, test: float) -> list[Split | None]:
    """Each series' split (None for one too short for every part), computed once per distinct length."""
    distinct = np.unique(lengths)
    found: dict[int, Split | None] = {}
    for rows in distinct.tolist():
        try:
            found[rows] = check_length(rows, lookback, horizon, val, test, "")
        except DataError:
            found[rows] = None
    return [found[rows] for rows in lengths.tolist()]
