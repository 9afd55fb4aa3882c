"""Validated series, many at once: one columnar `Panel` (arrays across series) and the `Series` view of one of them.

A catalogue of a million series must not cost a million Python objects, so a Panel keeps every
series in a few arrays: the values of all rows one series after another (`values`, `offsets`),
and the times as each series' first time plus one shared step (or, for calendar frequencies such
as MS, a time per row). Everything on the way to a forecast (scaling, calendar inputs, windows,
labels, the forecast table) works on these arrays. A `Series` — the rows of one series with its
index — is made only when asked for (`panel[k]`), for code that looks at a few series at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.data.grid import Grid


@dataclass(frozen=True)
class Spec:
    """What the rows of a frame hold: value columns (targets first, future features last), ids, times."""

    value_cols: list[str]
    n_targets: int
    n_future: int = 0
    future_rows: int = 0  # predict with future features: each series ends with this many rows to forecast
    series_id: str | None = None
    timestamp: str | None = None


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


@dataclass(eq=False)
class Panel(Sequence[tuple[str | None, Series]]):
    """Many validated series sharing columns and a frequency, sorted by id, in arrays.

    Times are in the unit `unit` (as pandas gives them: ns, us, ms or s) and zone `tz`: with a
    fixed `step`, series k's row r is at `starts[k] + r * step`; otherwise `times` holds every
    row's time. Without timestamps all three are None and rows are numbered from 0.
    """

    ids: list[str | None]
    values: np.ndarray  # (rows, columns) float64, series after series
    offsets: np.ndarray  # (series + 1,) int64: series k is rows offsets[k]:offsets[k + 1]
    columns: list[str]
    n_targets: int
    freq: str | None = None
    starts: np.ndarray | None = None  # (series,) int64 first time of each series (fixed step)
    step: int | None = None  # the step between rows, in `unit`
    times: np.ndarray | None = None  # (rows,) int64 time of every row (no fixed step)
    tz: Any = None
    unit: str = "ns"
    name: str | None = None  # the timestamp column's name
    future: np.ndarray | None = None  # (series, horizon, future features)
    filled_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (series,)
    filled_cells: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        for name in ("filled_rows", "filled_cells"):
            if len(getattr(self, name)) != len(self.ids):
                setattr(self, name, np.zeros(len(self.ids), np.int64))

    # ------------------------------------------------------------------ the sequence of (id, Series)
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return self.take(np.arange(len(self))[k])
        k = int(k) + (len(self) if int(k) < 0 else 0)
        return self.ids[k], self.series(k)

    def __iter__(self) -> Iterator[tuple[str | None, Series]]:
        return (self[k] for k in range(len(self)))

    def series(self, k: int) -> Series:
        """Series k as its own object (a view of the panel's rows)."""
        begin, end = int(self.offsets[k]), int(self.offsets[k + 1])
        return Series(
            values=self.values[begin:end],
            columns=self.columns,
            n_targets=self.n_targets,
            index=self._index(k, begin, end),
            freq=self.freq,
            filled_rows=int(self.filled_rows[k]),
            filled_cells=int(self.filled_cells[k]),
            future=None if self.future is None else self.future[k],
        )

    def _index(self, k: int, begin: int, end: int) -> Grid | pd.DatetimeIndex | None:
        if self.starts is not None and self.step is not None:
            start = pd.Timestamp(int(self.starts[k]), unit=self.unit, tz=self.tz)
            return Grid(start, pd.Timedelta(self.step, unit=self.unit), end - begin, self.name)
        if self.times is not None:
            return self._datetimes(self.times[begin:end])
        return None

    def _datetimes(self, stamps: np.ndarray) -> pd.DatetimeIndex:
        index = pd.DatetimeIndex(stamps.astype(f"datetime64[{self.unit}]"), name=self.name)
        return index.tz_localize("UTC").tz_convert(self.tz) if self.tz is not None else index

    # ------------------------------------------------------------------ arrays across series
    @property
    def lengths(self) -> np.ndarray:
        """(series,) rows of each series."""
        return np.diff(self.offsets)

    @property
    def timed(self) -> bool:
        return self.starts is not None or self.times is not None

    def series_of_rows(self) -> np.ndarray:
        """(rows,) the series each row belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def row_times(self, rows: np.ndarray | None = None) -> np.ndarray | None:
        """The int64 times (in `unit`) of `rows` (all rows by default); None without timestamps."""
        if self.times is not None:
            return self.times if rows is None else self.times[rows]
        if self.starts is None or self.step is None:
            return None
        rows = np.arange(len(self.values), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        series = np.searchsorted(self.offsets, rows, side="right") - 1
        return self.starts[series] + (rows - self.offsets[series]) * self.step

    def datetimes(self, stamps: np.ndarray) -> pd.DatetimeIndex:
        """int64 times of this panel (any shape, flattened) as a DatetimeIndex in its zone."""
        return self._datetimes(np.asarray(stamps).ravel())

    def take(self, positions: np.ndarray | Sequence[int]) -> Panel:
        """The series at `positions`, in that order, as a new panel (rows copied once)."""
        positions = np.asarray(positions, dtype=np.int64)
        lengths = self.lengths[positions]
        rows = ranges(self.offsets[positions], lengths)
        return Panel(
            ids=[self.ids[k] for k in positions.tolist()],
            values=self.values[rows],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            columns=self.columns,
            n_targets=self.n_targets,
            freq=self.freq,
            starts=None if self.starts is None else self.starts[positions],
            step=self.step,
            times=None if self.times is None else self.times[rows],
            tz=self.tz,
            unit=self.unit,
            name=self.name,
            future=None if self.future is None else self.future[positions],
            filled_rows=self.filled_rows[positions],
            filled_cells=self.filled_cells[positions],
        )

    def tail(self, rows: int) -> Panel:
        """Each series' last `rows` rows (all of a shorter one): what a forecast from the end reads."""
        lengths = np.minimum(self.lengths, rows)
        first = self.offsets[1:] - lengths
        kept = ranges(first, lengths)
        starts = (
            None if self.starts is None or self.step is None else self.starts + (first - self.offsets[:-1]) * self.step
        )
        return Panel(
            ids=self.ids,
            values=self.values[kept],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            columns=self.columns,
            n_targets=self.n_targets,
            freq=self.freq,
            starts=starts,
            step=self.step,
            times=None if self.times is None else self.times[kept],
            tz=self.tz,
            unit=self.unit,
            name=self.name,
            future=self.future,
            filled_rows=self.filled_rows,
            filled_cells=self.filled_cells,
        )

    def positions(self, ids: Sequence[str | None]) -> np.ndarray:
        """(len(ids),) where each id sits in this panel, −1 where it does not."""
        return pd.Index(self.ids).get_indexer(list(ids))


def by_length(offsets: np.ndarray, values: np.ndarray, reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`reduce` over each series' rows, series of one length at a time: (series, …).

    `reduce` gets a (series of that length, length, columns) block and reduces axis 1; numpy does the
    same arithmetic for each series of the block as for that series alone, so the results are the
    ones a loop over series would give, bit for bit, at the cost of one call per distinct length.
    """
    lengths = np.diff(offsets)
    out: np.ndarray | None = None
    for length in np.unique(lengths).tolist():
        which = np.flatnonzero(lengths == length)
        block = values[ranges(offsets[which], np.full(len(which), length))].reshape(len(which), length, -1)
        done = reduce(block)
        if out is None:
            out = np.empty((len(lengths), *done.shape[1:]), dtype=done.dtype)
        out[which] = done
    return out if out is not None else np.zeros((0, values.shape[1]))


def ranges(firsts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges firsts[k] … firsts[k] + lengths[k] − 1, without a Python loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    starts_out = np.cumsum(lengths) - lengths
    return np.repeat(firsts - starts_out, lengths) + np.arange(total, dtype=np.int64)


def concatenate(ids: list[str | None], parts: list[Series]) -> Panel:
    """A panel of series built one by one (the few that needed their own repair, or one series)."""
    first = parts[0]
    lengths = np.array([s.rows for s in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = parts[0].values if len(parts) == 1 else np.concatenate([s.values for s in parts])
    starts, step, times, tz, unit, name = None, None, None, None, "ns", None
    if first.index is not None:
        grids = all(isinstance(s.index, Grid) for s in parts)
        tz, name = first.index.tz, first.index.name
        unit = first.index.start.unit if isinstance(first.index, Grid) else first.index.unit
        if grids:
            starts = np.array([in_unit(s.index.start, unit) for s in parts], dtype=np.int64)  # type: ignore[union-attr]
            step = in_unit(first.index.step, unit)  # type: ignore[union-attr]
        else:
            times = np.concatenate([_stamps(s.times(), unit) for s in parts])
    future = None if first.future is None else np.stack([s.future for s in parts])  # type: ignore[misc]
    return Panel(
        ids=list(ids),
        values=values,
        offsets=offsets,
        columns=first.columns,
        n_targets=first.n_targets,
        freq=first.freq,
        starts=starts,
        step=step,
        times=times,
        tz=tz,
        unit=unit,
        name=name,
        future=future,
        filled_rows=np.array([s.filled_rows for s in parts], dtype=np.int64),
        filled_cells=np.array([s.filled_cells for s in parts], dtype=np.int64),
    )


def in_unit(moment: pd.Timestamp | pd.Timedelta, unit: str) -> int:
    """A time (UTC for one with a zone) or a duration as an integer count of `unit` (`.value` is always ns)."""
    return int(moment.as_unit(unit).asm8.astype(np.int64))


def _stamps(index: Any, unit: str) -> np.ndarray:
    """A DatetimeIndex as int64 times in `unit`."""
    return index.as_unit(unit).asi8  # for times with a zone: UTC
