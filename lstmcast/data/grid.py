"""Times → a regular grid: sorting, duplicates, the data.start/data.end range, the frequency and where each row falls.

`Grid` stands for the times of a regular series without storing one per row. `regularise` sorts
and checks a series' times and finds its frequency; `onto_grid` places its rows on the full grid
(missing rows NaN), refusing gaps longer than data.max_gap and more invented rows than
data.max_filled before any grid is built. Errors name the source, series, row and time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast.config import DataConfig
from lstmcast.data.readers import Lines
from lstmcast.errors import DataError, shown


@dataclass(frozen=True)
class Grid:
    """The times of a series on a fixed step, start + i·step, without storing one per row.

    Stored, they would be the largest array after the values (8 bytes a row). A Grid answers
    what lstmcast asks of a DatetimeIndex: its length, one time, some times, where a time falls.
    """

    start: pd.Timestamp
    step: pd.Timedelta
    rows: int
    name: str | None = None

    def __len__(self) -> int:
        return self.rows

    @property
    def tz(self) -> Any:
        return self.start.tz

    def __getitem__(self, key: int | slice | np.ndarray) -> Any:
        """A Timestamp for an integer, a DatetimeIndex for a slice or an array of positions."""
        if isinstance(key, int | np.integer):
            if not -self.rows <= key < self.rows:
                raise IndexError(f"row {key} of {self.rows}")
            return self.start + (int(key) % self.rows) * self.step
        if isinstance(key, slice):
            positions = np.asarray(range(self.rows)[key], dtype=np.int64)
        else:
            key = np.asarray(key)
            positions = np.flatnonzero(key) if key.dtype == bool else np.where(key < 0, key + self.rows, key)
        offsets = pd.to_timedelta(positions * self.step.value, unit="ns")
        return pd.DatetimeIndex(self.start + offsets, name=self.name).as_unit(self.start.unit)

    def searchsorted(self, when: pd.Timestamp) -> int:
        """The first row at or after `when`."""
        ahead = (when - self.start).value
        return int(min(max(-(-ahead // self.step.value), 0), self.rows))

    def materialize(self) -> pd.DatetimeIndex:
        return self[slice(None)]


@dataclass(frozen=True)
class Rules:
    """How the series of a file are regularised: frequency (and who set it), gaps, range.

    `freq_from` names where a fixed frequency came from, for messages ("data.freq", "the model's
    frequency"); `max_gap`/`max_filled` bound what gap filling may invent (`DataConfig` explains them).
    """

    freq: str = "auto"
    freq_from: str = "data.freq"
    missing: str = "interpolate"
    start: str | None = None
    end: str | None = None
    max_gap: int = DataConfig.max_gap
    max_filled: float = DataConfig.max_filled
    last_observed: bool = False  # predict: forecasts start after the last row, so it must not be invented
    row: str = "line"  # how messages number rows: a CSV's file lines, or the rows of Parquet and queries


def regularise(
    where: str, times: pd.DatetimeIndex, values: np.ndarray, lines: Lines, rules: Rules
) -> tuple[pd.DatetimeIndex, np.ndarray, Lines, str, bool]:
    """Rows sorted by time, without duplicates, in data.start … data.end; their frequency; whether regular."""
    col, index = str(times.name), times
    step = _fixed_step(index.asi8)
    if step is None or step <= 0:  # unsorted, duplicated or irregular: the full check, 8 bytes a row
        steps = np.diff(index.asi8)  # in numpy: pandas' index engine would cost another copy of the times
        if (steps < 0).any():  # sorting only when needed: argsort costs 8 bytes a row
            order = np.argsort(index.asi8, kind="stable")
            index, values, lines = index[order], values[order], np.asarray(lines)[order]
            steps = np.diff(index.asi8)
        _check_duplicates(index, steps, lines, where, col, rules.row)
        del steps
    step_freq = _regular_freq(index, step, rules.freq)
    regular = step_freq is not None
    if not regular and rules.freq != "auto":
        step_freq = resolve_freq(index, rules.freq, where, col)
        _check_spacing(index, step, step_freq, rules, where)
    step_freq = step_freq or resolve_freq(index, rules.freq, where, col)
    keep = _in_range(index, rules.start, rules.end, where)
    if keep is not None:
        index, values, lines = index[keep], values[keep], np.asarray(lines)[keep]
    if len(index) == 0:
        raise DataError(f"{where}: no rows between data.start and data.end — widen the range")
    return index, values, lines, step_freq, regular


def _check_spacing(index: pd.DatetimeIndex, step: int | None, freq: str, rules: Rules, where: str) -> None:
    """With a frequency set (data.freq, the model's), the rows' own commonest spacing must be that frequency.

    Otherwise daily rows given to an hourly model would be filled to hourly (23 invented rows a day).
    """
    if len(index) < 2:
        return
    if step is None or step <= 0:
        spacings, counts = np.unique(np.diff(index.asi8), return_counts=True)
        step = int(spacings[np.argmax(counts)])
    lengths = _step_lengths(index[0], freq, index.unit, 25)  # a month is 28 to 31 days long: any of them fits
    if lengths.min() <= step <= lengths.max():
        return
    spacing = pd.Timedelta(step, unit=index.unit)
    days = spacing / pd.Timedelta(days=1)
    own = (f"{int(days)}D" if days != 1 else "D") if days == int(days) else to_offset(spacing).freqstr
    remedy = _FREQ_REMEDY.get(rules.freq_from, "give every series the same frequency").format(own=own)
    raise DataError(
        f"{where}: the rows are {_duration(spacing)} apart ({own}), but {rules.freq_from} is {freq} — {remedy}"
    )


_FREQ_REMEDY = {
    "data.freq": "set data.freq to {own} or auto",
    "the model's frequency": "give the model rows at its frequency, or retrain it on this data",
}


def _duration(span: pd.Timedelta) -> str:
    """A time step in words: '1 day', '15 minutes', '1 day 6 hours'."""
    units = ("day", "hour", "minute", "second", "millisecond", "microsecond", "nanosecond")
    parts = zip(span.components, units, strict=True)
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n]
    return " ".join(words) or "0 seconds"


def onto_grid(
    where: str, index: pd.DatetimeIndex, values: np.ndarray, lines: Lines, freq: str, rules: Rules
) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Rows on the full grid first … last at `freq`, missing ones NaN; the grid row of each row.

    The grid's size is known before it is built (arithmetic for fixed steps), so a mistyped year
    (9999 for 2024 in hourly data: 70 million rows) is refused, not materialised: no gap may be
    longer than `max_gap` rows and no more than `max_filled` of the rows may be missing.
    """
    positions, full = _grid_positions(where, index, lines, freq, rules)
    rows = int(positions[-1]) + 1
    if rows == len(index):
        return values, index, None
    offset = to_offset(freq)
    if rules.missing == "error":
        gap = int(np.argmax(positions != np.arange(len(positions))))  # the first grid row without a row
        when = full[gap] if full is not None else index[0] + gap * pd.Timedelta(offset)
        raise DataError(
            f"{where}: no row for {when} (a gap in the {freq} series) — add it, "
            "or set data.missing to interpolate or ffill"
        )
    sizes = np.diff(positions) - 1
    worst = int(np.argmax(sizes))
    if sizes[worst] > rules.max_gap:
        first, last = index[worst] + offset, index[worst + 1] - offset
        raise gap_error(where, int(sizes[worst]), first, last, lines[worst + 1], rules)
    if rows - len(index) > rules.max_filled * rows:
        raise share_error(where, rows - len(index), rows, rules)
    full = pd.date_range(index[0], periods=rows, freq=freq) if full is None else full
    grown = np.full((rows, values.shape[1]), np.nan)
    grown[positions] = values
    return grown, full, positions


def _grid_positions(
    where: str, index: pd.DatetimeIndex, lines: Lines, freq: str, rules: Rules
) -> tuple[np.ndarray, pd.DatetimeIndex | None]:
    """The grid row of each row, and the grid when it had to be built to know them (calendar frequencies).

    Fixed steps (h, 15min) need no grid: a row's position is its distance from the first row. For
    calendar frequencies (D, W, MS, B) the grid's size is estimated from the mean step first, and a
    grid far beyond what max_gap and max_filled allow is refused before it is built.
    """
    offset, asi8 = to_offset(freq), index.asi8
    if isinstance(offset, offsets.Tick):
        step = max(offset.nanos // _NS_PER[index.unit], 1)
        delta = asi8 - asi8[0]
        off = np.flatnonzero(delta % step)
        if off.size:
            raise _off_grid(where, lines[off[0]], index[off[0]], freq, rules.row)
        return delta // step, None
    mean = float(np.mean(_step_lengths(index[0], freq, index.unit, 400)))
    n = len(index)
    bound = 1.5 * min(n / max(1 - rules.max_filled, 1e-3), n + (n - 1) * rules.max_gap) + 100
    if (asi8[-1] - asi8[0]) / mean + 1 > bound:  # refused without building a grid that may be huge
        sizes = np.round(np.diff(asi8) / mean) - 1
        worst = int(np.argmax(sizes))
        if sizes[worst] > rules.max_gap:
            first, last = index[worst] + offset, index[worst + 1] - offset
            raise gap_error(where, int(sizes[worst]), first, last, lines[worst + 1], rules, "about ")
        total = int((asi8[-1] - asi8[0]) / mean) + 1
        raise share_error(where, total - n, total, rules, "about ")
    full = pd.date_range(index[0], index[-1], freq=freq)
    positions = full.get_indexer(index)
    off = np.flatnonzero(positions < 0)
    if off.size:
        raise _off_grid(where, lines[off[0]], index[off[0]], freq, rules.row)
    return positions, full


_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _step_lengths(start: pd.Timestamp, freq: str, unit: str, periods: int) -> np.ndarray:
    """The lengths of the `freq` steps after `start` (a month's vary), fewer near the end of the calendar."""
    for count in (periods, 25, 2):
        try:
            return np.diff(pd.date_range(start, periods=count, freq=freq).as_unit(unit).asi8)
        except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
            continue
    return np.diff(pd.date_range(end=start, periods=2, freq=freq).as_unit(unit).asi8)


def _off_grid(where: str, line: int, when: pd.Timestamp, freq: str, word: str) -> DataError:
    return DataError(
        f"{where}: {word} {line}: timestamp {when} is off the {freq} grid — "
        "fix the time or set data.freq to the data's true frequency"
    )


def gap_error(
    where: str, size: int, first: Any, last: Any, line: int, rules: Rules, about: str = "", missing: bool = True
) -> DataError:
    what, fix = (
        ("missing rows", f"fix the time on {rules.row} {line} if it is mistyped")
        if missing
        else ("rows to fill (missing, or with an empty target)", "fill in the values")
    )
    return DataError(
        f"{where}: a gap of {about}{size:,} {what} from {first} to {last}, before {rules.row} {line} — longer than "
        f"data.max_gap ({rules.max_gap:,}); {fix}, or raise data.max_gap"
    )


def share_error(where: str, count: int, rows: int, rules: Rules, about: str = "", missing: bool = True) -> DataError:
    what = "are missing" if missing else "are missing or have an empty target"
    return DataError(
        f"{where}: {about}{count:,} of {rows:,} rows ({count / rows:.1%}) {what} and would be made up by filling — "
        f"more than data.max_filled ({rules.max_filled:g}); check the times and empty cells, or raise data.max_filled"
    )


def _check_duplicates(
    index: pd.DatetimeIndex, steps: np.ndarray, lines: Lines, path: Path | str, col: str, word: str
) -> None:
    dup = steps == 0  # sorted: duplicates are neighbours
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        first = int(np.flatnonzero(index == index[row])[0])
        raise DataError(
            f"{path}: duplicate timestamp {index[row]} in column {shown(col)} ({word}s {lines[first]} and {lines[row]}) — "
            "keep one row per time"
        )


def _in_range(index: pd.DatetimeIndex, start: str | None, end: str | None, path: Path | str) -> np.ndarray | None:
    bounds = range_bounds(index.tz, start, end, path)
    if bounds is None:
        return None
    keep = np.ones(len(index), dtype=bool)
    if bounds[0] is not None:
        keep &= index >= bounds[0]
    if bounds[1] is not None:
        keep &= index <= bounds[1]
    return keep


def range_bounds(tz: Any, start: str | None, end: str | None, path: Path | str) -> tuple[Any, Any] | None:
    """data.start and data.end as Timestamps in the times' zone `tz` (None for an open end); None without either."""
    if start is None and end is None:
        return None
    out = []
    for name, bound in (("start", start), ("end", end)):
        if bound is None:
            out.append(None)
            continue
        try:
            stamp = pd.Timestamp(bound)
        except ValueError:
            raise DataError(f"data.{name} = {shown(bound)} is not a time — write e.g. 2024-01-31 13:00") from None
        if tz is not None and stamp.tz is None:
            stamp = stamp.tz_localize(tz)
        elif tz is None and stamp.tz is not None:
            raise DataError(
                f"data.{name} = {shown(bound)} has a time zone but the times in {path} have none — drop the offset"
            )
        out.append(stamp)
    return out[0], out[1]


def _fixed_step(times: np.ndarray, block: int = 1 << 20) -> int | None:
    """The step between consecutive times when it is always the same, else None (checked a block at a time)."""
    if len(times) < 2:
        return None
    step = int(times[1] - times[0])
    for begin in range(0, len(times) - 1, block):
        if (np.diff(times[begin : begin + block + 1]) != step).any():
            return None
    return step


def _regular_freq(index: pd.DatetimeIndex, step: int | None, freq: str) -> str | None:
    """The frequency when every row is `step` after the previous (the common case), else None.

    Inferred from the first rows and confirmed by the step, so a long series needs neither
    pandas' full inference nor a materialised grid to compare against.
    """
    if len(index) < 3 or step is None or step <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = pd.infer_freq(index[:1000]) if freq == "auto" else freq
    try:
        offset = to_offset(name) if name else None
    except ValueError:
        return None
    if (
        not isinstance(offset, pd.offsets.Tick)
        or pd.Timedelta(offset).value != pd.Timedelta(step, unit=index.unit).value
    ):
        return None
    return offset.freqstr


def resolve_freq(index: pd.DatetimeIndex, freq: str, path: Path, col: str) -> str:
    if freq != "auto":
        try:
            return to_offset(freq).freqstr
        except ValueError:
            raise DataError(
                f"data.freq = {shown(freq)} is not a pandas frequency — use e.g. h, 15min, D, W, MS"
            ) from None
    if len(index) < 3:
        raise DataError(f"{path}: {len(index)} rows are too few to infer the frequency — set data.freq")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inferred = pd.infer_freq(index)
    if inferred is not None:
        return to_offset(inferred).freqstr
    # Gaps defeat infer_freq; the most common spacing is the grid if every time lies on it.
    diffs = np.diff(index.asi8)
    values, counts = np.unique(diffs, return_counts=True)
    step = pd.Timedelta(int(values[np.argmax(counts)]), unit=index.unit)
    candidate = to_offset(step)
    if (diffs % int(values[np.argmax(counts)]) == 0).all():
        return candidate.freqstr
    raise DataError(
        f"{path}: the times in column {shown(col)} are irregular (most are {step} apart, but not all are multiples of it) — "
        "set data.freq (e.g. h, D, MS) and fix the off-grid rows"
    )
