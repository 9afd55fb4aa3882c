"""Time and season helpers: what a series' frequency and times imply.

Owns the labels of the rows to forecast, the seasonal period the naive baseline uses, the row
at or after a given time, and the calendar inputs (hour, day of week, …) as sine/cosine pairs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast.errors import DataError, shown

if TYPE_CHECKING:
    from lstmcast.data.panel import Panel, Series


def future_labels(series: Series, horizon: int) -> pd.Index:
    """The `horizon` timestamps (or step numbers) that follow the series' last row."""
    if series.index is None:
        return pd.RangeIndex(series.rows, series.rows + horizon)
    return pd.date_range(series.index[-1], periods=horizon + 1, freq=series.freq)[1:]


@dataclass(frozen=True)
class Labels:
    """The labels of the rows to forecast, every series at once: (series, horizon) times or step numbers.

    Times are int64 in `unit` (UTC for times with a zone `tz`), as a Panel keeps them.
    """

    values: np.ndarray  # (series, horizon) int64
    unit: str | None = None  # None: step numbers
    tz: Any = None
    name: str | None = None

    @property
    def timed(self) -> bool:
        return self.unit is not None

    def flat(self) -> pd.Index:
        """Every label, series after series: a DatetimeIndex (or an Index of step numbers)."""
        return self._index(self.values.ravel())

    def of(self, k: int) -> pd.Index:
        """Series k's labels."""
        return self._index(self.values[k])

    def first(self) -> Any:
        return self.of(0)[0]

    def last(self) -> Any:
        return self.label(int(self.values[:, -1].max()))

    def label(self, value: int) -> Any:
        """One label (a Timestamp, or a step number) from its int64 value."""
        return self._index(np.array([value], dtype=np.int64))[0]

    def utc(self) -> np.ndarray:
        """(series, horizon) datetime64[ns] without a zone: the times in UTC (as the archive keeps them)."""
        return self.values.astype(f"datetime64[{self.unit}]").astype("datetime64[ns]")

    def _index(self, stamps: np.ndarray) -> pd.Index:
        if self.unit is None:
            return pd.Index(stamps)
        index = pd.DatetimeIndex(stamps.astype(f"datetime64[{self.unit}]"), name=self.name)
        return index.tz_localize("UTC").tz_convert(self.tz) if self.tz is not None else index


def panel_labels(panel: Panel, horizon: int) -> Labels:
    """The `horizon` labels after each series' last row: its times at the panel's frequency, or step numbers."""
    ends = panel.offsets[1:]
    lengths = panel.lengths
    if not panel.timed:
        return Labels(lengths[:, None] + np.arange(horizon, dtype=np.int64))
    if panel.starts is not None and panel.step is not None:
        last = panel.starts + (lengths - 1) * panel.step
        return Labels(last[:, None] + panel.step * np.arange(1, horizon + 1), panel.unit, panel.tz, panel.name)
    out = np.empty((len(panel), horizon), np.int64)  # a calendar frequency (MS, W, …): series by series
    for k, last in enumerate(panel.datetimes(panel.row_times(ends - 1))):
        stamps = pd.date_range(last, periods=horizon + 1, freq=panel.freq)[1:].as_unit(panel.unit)
        out[k] = stamps.asi8
    return Labels(out, panel.unit, panel.tz, panel.name)


def features_at(stamps: np.ndarray, panel: Panel, names: list[str]) -> np.ndarray:
    """(stamps.size, 2·len(names)) calendar inputs at int64 times of `panel`'s unit and zone.

    One calendar computation per distinct time of a shared grid: the series of a catalogue mostly
    share their times, so the inputs are computed on the grid the times fall on and gathered.
    """
    flat = np.asarray(stamps, dtype=np.int64).ravel()
    if not names or not len(flat):
        return np.empty((len(flat), 2 * len(names)), np.float32)
    step = panel.step
    if step:
        low = int(flat.min())
        offset = flat - low
        if not (offset % step).any() and int(offset.max()) // step + 1 <= len(flat):
            grid = low + step * np.arange(int(offset.max()) // step + 1, dtype=np.int64)
            return calendar_features(panel.datetimes(grid), names)[offset // step]
    return calendar_features(panel.datetimes(flat), names)


def season_length(freq: str | None) -> int:
    """The seasonal period the naive baseline uses: a day of sub-daily data, a week of days, a year of months."""
    if freq is None:
        return 1
    offset = to_offset(freq)
    day = pd.Timedelta(days=1).value
    if isinstance(offset, offsets.Day):
        return 7 if offset.n == 1 else 1
    if isinstance(offset, offsets.Tick):
        return day // offset.nanos if offset.nanos < day and day % offset.nanos == 0 else 1
    if isinstance(offset, offsets.BusinessDay):
        return 5
    if isinstance(offset, offsets.Week):
        return 52
    if isinstance(offset, (offsets.MonthBegin, offsets.MonthEnd, offsets.BusinessMonthBegin, offsets.BusinessMonthEnd)):
        return 12 // offset.n if 12 % offset.n == 0 else 1
    if isinstance(offset, (offsets.QuarterBegin, offsets.QuarterEnd, offsets.BQuarterBegin, offsets.BQuarterEnd)):
        return 4
    return 1


def row_at(series: Series, when: str, flag: str) -> int:
    """Index of the first row at or after the time `when`."""
    assert series.index is not None
    try:
        stamp = pd.Timestamp(when)
    except ValueError:
        raise DataError(f"{flag} {shown(when)} is not a time — write e.g. 2024-01-31 13:00") from None
    if series.index.tz is not None and stamp.tz is None:
        stamp = stamp.tz_localize(series.index.tz)
    elif series.index.tz is None and stamp.tz is not None:
        raise DataError(f"{flag} {shown(when)} has a time zone but the data's times have none — drop the offset")
    return int(series.index.searchsorted(stamp))


def calendar_names(setting: str, freq: str | None) -> list[str]:
    """Which calendar inputs to derive: `auto` picks those that vary within the data's frequency."""
    if freq is None or setting.strip() == "none":
        return []
    if setting.strip() != "auto":
        return [c.strip() for c in setting.split(",") if c.strip()]
    offset = to_offset(freq)
    if (
        isinstance(offset, offsets.Tick)
        and not isinstance(offset, offsets.Day)
        and offset.nanos < pd.Timedelta(days=1).value
    ):
        return ["hour", "dayofweek"]
    if isinstance(offset, (offsets.Day, offsets.BusinessDay)):
        return ["dayofweek", "month"]
    if isinstance(
        offset, (offsets.Week, offsets.MonthBegin, offsets.MonthEnd, offsets.QuarterBegin, offsets.QuarterEnd)
    ):
        return ["month"]
    return []


def calendar_features(index: pd.DatetimeIndex, names: list[str]) -> np.ndarray:
    """(rows, 2·len(names)) float32: sin and cos of each calendar position as a fraction of its cycle."""
    phase = {
        "hour": lambda: (index.hour + index.minute / 60) / 24,
        "dayofweek": lambda: index.day_of_week / 7,
        "dayofmonth": lambda: (index.day - 1) / index.days_in_month,
        "month": lambda: (index.month - 1) / 12,
    }
    columns = []
    for name in names:
        angle = 2 * np.pi * np.asarray(phase[name](), dtype=np.float64)
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.empty((len(index), 0), np.float32)


def zone_name(panel: Panel) -> str | None:
    """The zone of a panel's times as a checkpoint records it: '' for times without an offset, the zone or
    offset ('UTC', 'UTC+01:00', 'Europe/Berlin') for times with one, None for rows numbered by step."""
    if not panel.timed:
        return None
    return "" if panel.tz is None else str(panel.tz)


def zone(name: str) -> Any:
    """A recorded zone name back as the tzinfo pandas uses ('UTC+01:00' is a fixed offset)."""
    fixed = re.fullmatch(r"UTC([+-])(\d\d):(\d\d)", name)
    if fixed:
        sign = 1 if fixed[1] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(fixed[2]), minutes=int(fixed[3])))
    return pd.Timestamp(0, tz=name).tz


def on_clock_of(panel: Panel, trained: str | None, calendar: list[str], source: object) -> tuple[Panel, str | None]:
    """`panel` with its times on the clock a model's calendar features were learned on: `trained` is the
    checkpoint's zone name (None: not recorded, or no times). Times with an offset, given a model trained on
    times with another one, are converted to the model's (the same instants; the note says so); times with
    an offset given a model trained on times without one (or the reverse) are refused, naming both — the
    calendar features would shift by the offset in silence. A model without calendar features reads no clock."""
    given = zone_name(panel)
    if not calendar or trained is None or given is None or given == trained:
        return panel, None
    if given and trained:
        note = f"times with offset {given} converted to the model's zone {trained} for its calendar features"
        return dataclasses.replace(panel, tz=zone(trained)), note
    if trained:
        raise DataError(
            f"{source}: the times have no UTC offset, but the model was trained on times in {trained}, and its "
            f"calendar features ({', '.join(calendar)}) would shift by the difference — give the times with their "
            "offset (e.g. 2024-01-31 13:00+01:00), as the training data had them"
        )
    raise DataError(
        f"{source}: the times are in {given}, but the model was trained on times without a UTC offset, and its "
        f"calendar features ({', '.join(calendar)}) would shift by the difference — give the times without an "
        "offset, in the local time the training data used"
    )
