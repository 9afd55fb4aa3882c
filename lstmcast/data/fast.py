"""Validation's fast path: every clean series of a frame checked and laid out at once, in arrays.

A series is clean when, sorted by time, its rows lie exactly one step of the frequency apart and
no cell is empty (with future features: its last `horizon` rows have no target and every future
feature). For such a series the per-series path (`frame._series`) would only sort it, cut it to
data.start … data.end and keep its first time and step: the same is done here for all of them
with a handful of numpy operations over the whole frame. Every other series — gaps, empty cells,
duplicates, a different step, a single row — is left to the per-series path, which repairs it or
names its problem exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast.data.grid import Rules, range_bounds
from lstmcast.data.panel import Panel, Spec, in_unit, ranges
from lstmcast.errors import DataError

_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


@dataclass
class Made:
    """Which series are clean, and where their rows are: sorted rows `order`, series k's kept rows are
    order[first[k] : first[k] + kept[k]], followed by its future rows (predict with future features)."""

    clean: np.ndarray  # (series,) bool
    order: np.ndarray  # (rows,) the frame's rows sorted by series, then time
    first: np.ndarray  # (series,) first kept row of each series, in `order`
    kept: np.ndarray  # (series,) rows kept (observed rows, without the future ones)
    times: np.ndarray | None  # (rows,) int64 times in `order`
    step: int | None  # the step in the times' unit
    freq: str | None


def step_of(freq: str, stamps: pd.DatetimeIndex) -> int | None:
    """The fixed step of `freq` in the times' unit: for fixed-length frequencies (h, 15min; D without a zone)."""
    offset = to_offset(freq)
    if isinstance(offset, offsets.Tick):
        ns = int(offset.nanos)
    elif isinstance(offset, offsets.Day) and stamps.tz is None:
        ns = offset.n * 86_400 * 10**9
    else:
        return None
    per = _NS_PER.get(stamps.unit)
    return ns // per if per and ns % per == 0 and ns > 0 else None


def clean_series(
    codes: np.ndarray, n_series: int, stamps: pd.DatetimeIndex | None, values: np.ndarray, spec: Spec, rules: Rules
) -> Made | None:
    """The clean series (None when the fast path cannot judge this frame: its frequency or range needs the
    per-series path for every series)."""
    step, times = None, None
    if stamps is not None:
        step = step_of(rules.freq, stamps)
        if step is None or (spec.future_rows and (rules.start or rules.end)):
            return None
        t = stamps.asi8
        order = _sorted_order(codes, t)
        times = t[order]
    else:
        order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.searchsorted(sorted_codes, np.arange(n_series + 1))
    lengths = np.diff(bounds)
    clean = lengths >= 2 + spec.future_rows
    if times is not None:
        same = sorted_codes[1:] == sorted_codes[:-1]
        off_step = same & (np.diff(times) != step)
        clean[np.unique(sorted_codes[1:][off_step])] = False
        first, kept = _in_range(stamps, times, bounds, rules)
        if first is None:
            return None
        clean &= kept > 0
    else:
        first, kept = bounds[:-1].copy(), lengths.copy()
    kept = np.where(clean, kept - spec.future_rows, kept)
    clean &= _complete(values, order, first, kept, clean, spec)
    freq = None if stamps is None else to_offset(rules.freq).freqstr
    return Made(clean, order, first, kept, times, step, freq)


def _sorted_order(codes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The rows sorted by series, then time: a data set already in that order (the usual lake layout) is not sorted again."""
    if len(codes) > 1:
        step = np.diff(codes)
        if (step >= 0).all() and ((step > 0) | (np.diff(t) > 0)).all():
            return np.arange(len(codes))
    return np.lexsort((t, codes))


def _in_range(
    stamps: pd.DatetimeIndex, times: np.ndarray, bounds: np.ndarray, rules: Rules
) -> tuple[np.ndarray | None, np.ndarray]:
    """Each series' first row and row count in data.start … data.end (a sorted series' rows in range are a run)."""
    lengths = np.diff(bounds)
    try:
        found = range_bounds(stamps.tz, rules.start, rules.end, "")
    except DataError:  # a bound that is no time, or of another zone: the per-series path names the series
        return None, lengths
    if found is None or not len(times):
        return bounds[:-1].copy(), lengths
    low, high = (None if b is None else in_unit(b, stamps.unit) for b in found)
    before = times < low if low is not None else np.zeros(len(times), bool)
    inside = ~before & (times <= high if high is not None else True)
    return bounds[:-1] + np.add.reduceat(before.astype(np.int64), bounds[:-1]), np.add.reduceat(
        inside.astype(np.int64), bounds[:-1]
    )


def _complete(
    values: np.ndarray, order: np.ndarray, first: np.ndarray, kept: np.ndarray, clean: np.ndarray, spec: Spec
) -> np.ndarray:
    """(series,) whether each candidate's kept rows have every cell (and its future rows what they need)."""
    ok = clean.copy()
    rows = order[ranges(first[ok], kept[ok])]
    empty = np.isnan(values[rows]).any(axis=1)
    per_series = (
        np.add.reduceat(empty.astype(np.int64), np.concatenate([[0], np.cumsum(kept[ok])[:-1]]))
        if len(rows)
        else np.zeros(0)
    )
    ok[np.flatnonzero(ok)[per_series > 0]] = False
    if spec.future_rows:
        future = order[ranges(first[ok] + kept[ok], np.full(int(ok.sum()), spec.future_rows))]
        block = values[future].reshape(-1, spec.future_rows, values.shape[1])
        nt, nf = spec.n_targets, spec.n_future
        fine = np.isnan(block[..., :nt]).all(axis=(1, 2)) & ~np.isnan(block[..., values.shape[1] - nf :]).any(
            axis=(1, 2)
        )
        ok[np.flatnonzero(ok)[~fine]] = False
    return ok


def panel(names: list[Any], values: np.ndarray, stamps: pd.DatetimeIndex | None, made: Made, spec: Spec) -> Panel:
    """The panel of the clean series of `made` (all of them, when every series is clean)."""
    which = np.flatnonzero(made.clean)
    first, kept = made.first[which], made.kept[which]
    rows = made.order[ranges(first, kept)]
    future = None
    if spec.future_rows:
        ahead = made.order[ranges(first + kept, np.full(len(which), spec.future_rows))]
        future = values[ahead][:, values.shape[1] - spec.n_future :].reshape(
            len(which), spec.future_rows, spec.n_future
        )
    return Panel(
        ids=[names[k] for k in which.tolist()],
        values=values[rows],
        offsets=np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
        columns=spec.value_cols,
        n_targets=spec.n_targets,
        freq=made.freq,
        starts=None if made.times is None else made.times[first],
        step=made.step,
        tz=None if stamps is None else stamps.tz,
        unit="ns" if stamps is None else stamps.unit,
        name=None if stamps is None else stamps.name,
        future=future,
    )


def merge(names: list[Any], fast: Panel, slow: Panel, clean: np.ndarray) -> Panel:
    """One panel in id order from the clean series (`fast`) and the repaired ones (`slow`)."""
    lengths = np.zeros(len(names), np.int64)
    lengths[clean] = fast.lengths
    lengths[~clean] = slow.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.empty((int(offsets[-1]), fast.values.shape[1] if len(fast) else slow.values.shape[1]))
    values[ranges(offsets[:-1][clean], lengths[clean])] = fast.values
    values[ranges(offsets[:-1][~clean], lengths[~clean])] = slow.values
    starts, times = _merged_times(fast, slow, clean, offsets, lengths)
    future = None
    if fast.future is not None or slow.future is not None:
        part = fast.future if fast.future is not None else slow.future
        future = np.empty((len(names), *part.shape[1:]))  # type: ignore[union-attr]
        future[clean], future[~clean] = fast.future, slow.future
    filled = {n: np.zeros(len(names), np.int64) for n in ("filled_rows", "filled_cells")}
    for n, array in filled.items():
        array[~clean] = getattr(slow, n)
    return Panel(
        ids=list(names), values=values, offsets=offsets, columns=slow.columns, n_targets=slow.n_targets,
        freq=slow.freq, starts=starts, step=fast.step if starts is not None else None, times=times,
        tz=slow.tz, unit=fast.unit if fast.timed else slow.unit, name=slow.name, future=future, **filled,
    )  # fmt: skip


def _merged_times(
    fast: Panel, slow: Panel, clean: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Starts (a fixed step for all) when the repaired series lie on the same step, else every row's time."""
    if not fast.timed:
        return None, None
    slow_times = slow.row_times()
    assert slow_times is not None and fast.starts is not None
    if slow.unit != fast.unit:
        slow_times = (slow_times * _NS_PER[slow.unit]) // _NS_PER[fast.unit]
    starts_slow = slow_times[slow.offsets[:-1]]
    expected = (
        np.repeat(starts_slow, slow.lengths)
        + (np.arange(len(slow_times)) - np.repeat(slow.offsets[:-1], slow.lengths)) * fast.step
    )
    if np.array_equal(expected, slow_times):
        starts = np.empty(len(clean), np.int64)
        starts[clean], starts[~clean] = fast.starts, starts_slow
        return starts, None
    times = np.empty(int(offsets[-1]), np.int64)
    times[ranges(offsets[:-1][clean], lengths[clean])] = fast.row_times()
    times[ranges(offsets[:-1][~clean], lengths[~clean])] = slow_times
    return None, times
