"""Time and season helpers: what a series' frequency and times imply.

Owns the labels of the rows to forecast, the seasonal period the naive baseline uses, the row
at or after a given time, and the calendar inputs (hour, day of week, …) as sine/cosine pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast.errors import DataError, shown

if TYPE_CHECKING:
    from lstmcast.data.frame import Series


def future_labels(series: Series, horizon: int) -> pd.Index:
    """The `horizon` timestamps (or step numbers) that follow the series' last row."""
    if series.index is None:
        return pd.RangeIndex(series.rows, series.rows + horizon)
    return pd.date_range(series.index[-1], periods=horizon + 1, freq=series.freq)[1:]


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
