"""Raw CSV frame → validated, regular, gap-filled series as numpy arrays (`Series`; many in a `Panel`).

Owns what is checked and repaired once `readers` has read the file: series ids, sorting,
duplicate times, the data.start/data.end range, the frequency and its grid (`Grid`), the rows
that give the known future, and filling gaps and empty cells. Every problem becomes a `DataError`
naming the file (and series), column and row (1-based line numbers as an editor shows them,
the header being line 1).
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

from lstmcast.errors import DataError
from lstmcast.readers import Lines, numeric_values, parse_times, read_csv, return_freed_memory


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


@dataclass
class Series:
    """One validated series: rows on a regular grid, no missing values.

    `values` holds the target columns first, then the feature columns.
    `index` gives the rows' times — a Grid when they lie a fixed time step apart (then nothing
    is stored per row), else a DatetimeIndex — or is None when rows are plain steps 0, 1, 2, ….
    """

    values: np.ndarray  # (rows, columns) float64
    columns: list[str]
    n_targets: int
    index: Grid | pd.DatetimeIndex | None
    freq: str | None
    filled_rows: int = 0
    filled_cells: int = 0
    future: np.ndarray | None = None  # (horizon, future features): values given for the rows to forecast

    @property
    def rows(self) -> int:
        return len(self.values)

    def label(self, row: int) -> str:
        """How a row is named in messages and checkpoints."""
        return str(row) if self.index is None else self.index[row].isoformat()

    def times(self) -> pd.DatetimeIndex | None:
        """Every row's time (materialised: 8 bytes a row)."""
        return self.index.materialize() if isinstance(self.index, Grid) else self.index


Panel = list[tuple[str | None, Series]]


def load_series(path: str | Path, **options: Any) -> Series:
    """Read, validate, sort, regularise and gap-fill one series from a CSV (`load_panel` options)."""
    return load_panel(path, series_id=None, **options)[0][1]


def load_panel(
    path: str | Path,
    *,
    series_id: str | None,
    timestamp: str | None,
    target: list[str],
    features: list[str],
    future_features: list[str] = (),
    future_rows: int = 0,
    freq: str = "auto",
    missing: str = "interpolate",
    start: str | None = None,
    end: str | None = None,
) -> Panel:
    """Every series of a CSV (long format when `series_id` names a column), each validated on its own.

    Series come sorted by id; all share one frequency. Errors name the series. With `future_rows`
    (predict with known-future covariates), each series' rows after its last target value hold the
    `future_features` of the rows to forecast; they are split off into `Series.future`.
    """
    path = Path(path)
    value_cols = list(target) + list(features) + list(future_features)
    wanted = [c for c in (series_id, timestamp) if c] + value_cols
    frame = read_csv(path, wanted, value_cols, timestamp)
    # The file line of each row, for messages: rows in file order need no array (4 bytes a row) for it.
    lines: Lines = range(2, len(frame) + 2)
    if series_id is not None:  # rows are grouped by series, so each needs its own line number
        lines = np.arange(2, len(frame) + 2, dtype=np.int32 if len(frame) < 2**31 - 2 else np.int64)
    values = numeric_values(frame, value_cols, lines, path)
    if series_id is None:
        groups: list[tuple[str | None, np.ndarray | slice]] = [(None, slice(None))]  # views, not copies
    else:
        ids = frame[series_id]
        if ids.isna().any():
            row = int(np.flatnonzero(ids.isna().to_numpy())[0])
            raise DataError(f"{path}: line {lines[row]}: empty {series_id!r} — every row needs a series id")
        codes, names = pd.factorize(ids, sort=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        groups = [(str(n), order[bounds[i] : bounds[i + 1]]) for i, n in enumerate(names)]
    # Parsed once for the whole file: per series, format inference would cost more than the parsing.
    stamps = None
    if timestamp is not None:
        column = frame[timestamp]
        already = column.dtype.kind == "M"  # the fast path parsed them chunk by chunk
        stamps = pd.DatetimeIndex(column) if already else parse_times(column, lines, path, timestamp)
    if stamps is not None and freq == "auto" and len(groups) > 1:
        # One grid for all: inferred from the longest series, then checked on every series.
        longest = max(groups, key=lambda g: len(g[1]))
        where = f"{path}: series {longest[0]!r}"
        freq = _resolve_freq(stamps[longest[1]].sort_values(), "auto", where, timestamp)
    panel: Panel = []
    for sid, rows in groups:
        where = str(path) if sid is None else f"{path}: series {sid!r}"
        times = (stamps if sid is None else stamps[rows]) if stamps is not None else None
        spec = (value_cols, len(target), len(future_features), future_rows)
        panel.append((sid, _series(where, times, values[rows], lines[rows], spec, freq, missing, start, end)))
    if len(values) >= 1_000_000:
        frame = stamps = times = column = None  # the parse's own arrays go first
        return_freed_memory()
    return panel


def _series(
    where: str,
    times: pd.DatetimeIndex | None,
    values: np.ndarray,
    lines: Lines,
    spec: tuple[list[str], int, int, int],
    freq: str,
    missing: str,
    start: str | None,
    end: str | None,
) -> Series:
    value_cols, n_targets, n_future, future_rows = spec
    regular = False
    if times is None:
        index, step_freq = None, None
    else:
        col, index = str(times.name), times
        step = _fixed_step(index.asi8)
        if step is None or step <= 0:  # unsorted, duplicated or irregular: the full check, 8 bytes a row
            steps = np.diff(index.asi8)  # in numpy: pandas' index engine would cost another copy of the times
            if (steps < 0).any():  # sorting only when needed: argsort costs 8 bytes a row
                order = np.argsort(index.asi8, kind="stable")
                index, values, lines = index[order], values[order], np.asarray(lines)[order]
                steps = np.diff(index.asi8)
            _check_duplicates(index, steps, lines, where, col)
            del steps
        step_freq = _regular_freq(index, step, freq)
        regular = step_freq is not None
        step_freq = step_freq or _resolve_freq(index, freq, where, col)
        keep = _in_range(index, start, end, where)
        if keep is not None:
            index, values, lines = index[keep], values[keep], np.asarray(lines)[keep]
        if len(index) == 0:
            raise DataError(f"{where}: no rows between data.start and data.end — widen the range")

    filled_rows = 0
    if index is not None and len(index) > 1 and not regular:
        full = pd.date_range(index[0], index[-1], freq=step_freq)
        if len(full) != len(index):
            positions = full.get_indexer(index)
            if (positions < 0).any():
                bad = int(np.flatnonzero(positions < 0)[0])
                raise DataError(
                    f"{where}: line {lines[bad]}: timestamp {index[bad]} is off the {step_freq} grid — "
                    "fix the time or set data.freq to the data's true frequency"
                )
            if missing == "error":
                gap = full[np.setdiff1d(np.arange(len(full)), positions)[0]]
                raise DataError(
                    f"{where}: no row for {gap} (a gap in the {step_freq} series) — add it, "
                    "or set data.missing to interpolate or ffill"
                )
            grown = np.full((len(full), values.shape[1]), np.nan)
            grown[positions] = values
            filled_rows = len(full) - len(index)
            values, index = grown, full

    future = None
    if future_rows:
        values, index, future = _split_future(where, values, index, value_cols, n_targets, n_future, future_rows)
    if index is not None and len(index) and isinstance(to_offset(step_freq), offsets.Tick):
        # regular by now (checked, or gaps filled from a date_range): keep two numbers, not a time per row
        index = Grid(index[0], pd.Timedelta(to_offset(step_freq)), len(index), index.name)
    for j, col in enumerate(value_cols):
        if np.isnan(values[:, j]).all():
            raise DataError(f"{where}: column {col!r} has no numeric values — check the column or the file")
    values, filled_cells = _fill(values, value_cols, missing, where, lines)
    return Series(
        values=values,
        columns=value_cols,
        n_targets=n_targets,
        index=index,
        freq=step_freq,
        filled_rows=filled_rows,
        filled_cells=filled_cells - filled_rows * len(value_cols),
        future=future,
    )


def _split_future(
    where: str,
    values: np.ndarray,
    index: pd.DatetimeIndex | None,
    value_cols: list[str],
    n_targets: int,
    n_future: int,
    horizon: int,
) -> tuple[np.ndarray, pd.DatetimeIndex | None, np.ndarray]:
    """Split the rows after the last target value off as the known future of the forecast rows."""
    observed = np.flatnonzero(~np.isnan(values[:, :n_targets]).all(axis=1))
    end = int(observed[-1]) + 1 if len(observed) else 0
    future = values[end : end + horizon, len(value_cols) - n_future :]
    names = ", ".join(value_cols[len(value_cols) - n_future :])
    if len(future) < horizon:
        raise DataError(
            f"{where}: data.future_features ({names}) must be given for the {horizon} rows after the last "
            f"{value_cols[0]!r} value; found {len(future)} — append the future rows with the target left empty"
        )
    if np.isnan(future).any():
        row, col = map(int, np.argwhere(np.isnan(future))[0])
        when = index[end + row] if index is not None else end + row
        raise DataError(f"{where}: future row {when} lacks {value_cols[len(value_cols) - n_future + col]!r} — fill it")
    return values[:end], (index[:end] if index is not None else None), future


def _check_duplicates(index: pd.DatetimeIndex, steps: np.ndarray, lines: Lines, path: Path, col: str) -> None:
    dup = steps == 0  # sorted: duplicates are neighbours
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        first = int(np.flatnonzero(index == index[row])[0])
        raise DataError(
            f"{path}: duplicate timestamp {index[row]} in column {col!r} (lines {lines[first]} and {lines[row]}) — "
            "keep one row per time"
        )


def _in_range(index: pd.DatetimeIndex, start: str | None, end: str | None, path: Path) -> np.ndarray | None:
    if start is None and end is None:
        return None
    keep = np.ones(len(index), dtype=bool)
    for name, bound, cmp in (("start", start, np.greater_equal), ("end", end, np.less_equal)):
        if bound is None:
            continue
        try:
            stamp = pd.Timestamp(bound)
        except ValueError:
            raise DataError(f"data.{name} = {bound!r} is not a time — write e.g. 2024-01-31 13:00") from None
        if index.tz is not None and stamp.tz is None:
            stamp = stamp.tz_localize(index.tz)
        elif index.tz is None and stamp.tz is not None:
            raise DataError(
                f"data.{name} = {bound!r} has a time zone but the times in {path} have none — drop the offset"
            )
        keep &= cmp(index, stamp)
    return keep


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


def _resolve_freq(index: pd.DatetimeIndex, freq: str, path: Path, col: str) -> str:
    if freq != "auto":
        try:
            return to_offset(freq).freqstr
        except ValueError:
            raise DataError(f"data.freq = {freq!r} is not a pandas frequency — use e.g. h, 15min, D, W, MS") from None
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
        f"{path}: the times in column {col!r} are irregular (most are {step} apart, but not all are multiples of it) — "
        "set data.freq (e.g. h, D, MS) and fix the off-grid rows"
    )


def _fill(values: np.ndarray, columns: list[str], missing: str, path: Path, lines: Lines) -> tuple[np.ndarray, int]:
    holes = np.isnan(values)
    count = int(holes.sum())
    if not count:
        return values, 0
    if missing == "error":
        row, col = map(int, np.argwhere(holes)[0])
        where = f"line {lines[row]}" if row < len(lines) and len(lines) == len(values) else f"row {row + 1}"
        raise DataError(
            f"{path}: {where}, column {columns[col]!r} is empty — fill it or set data.missing to interpolate or ffill"
        )
    frame = pd.DataFrame(values)
    if missing == "interpolate":
        frame = frame.interpolate(method="linear", limit_direction="both")
    else:
        frame = frame.ffill().bfill()
    return frame.to_numpy(dtype=np.float64), count
