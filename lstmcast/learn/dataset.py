"""A panel of validated series → one scaled tensor, its windows, and which origins belong to which part.

All series are scaled with their own statistics and kept one after another; calendar columns are
appended (unscaled: they already lie in [-1, 1]). Origins are row indices into the rows, taken per
series, so no window ever mixes two series. Everything here works on whole arrays across series:
the cost of a catalogue is in its rows, not in its number of series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstmcast.data.calendar import features_at
from lstmcast.data.panel import Panel, ranges
from lstmcast.errors import DataError, shown
from lstmcast.learn import scaling
from lstmcast.learn.split import Runs, Split
from lstmcast.learn.split import parts as split_parts
from lstmcast.learn.windows import WindowSet


@dataclass
class Dataset:
    data: WindowSet
    values: np.ndarray  # (rows, columns) original units, series after series like `data.rows`
    offsets: np.ndarray  # (series + 1,) first row of each series
    ids: list[str | None]
    parts: dict[str, Runs]  # origins of each split part (empty without splits)
    mean: np.ndarray  # (series, columns): the statistics each series was scaled with
    std: np.ndarray
    unseen: list[str]  # series the scaler did not know, scaled by their own history

    def series_of(self, rows: np.ndarray) -> np.ndarray:
        """The series index of each row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1


def fit_scaler(panel: Panel, splits: list[Split], kind: str) -> scaling.Scaler:
    """Per-series statistics of each series' training rows only."""
    train = np.array([s.train for s in splits], dtype=np.int64)
    rows = ranges(panel.offsets[:-1], train)
    mean, std = _fitted(panel, panel.values[rows], np.concatenate([[0], np.cumsum(train)]), kind, np.arange(len(panel)))
    return scaling.combine(kind, list(panel.ids), mean, std)


def _fitted(
    panel: Panel, values: np.ndarray, offsets: np.ndarray, kind: str, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of series `which` of the panel from their `values` rows; a spread beyond float64 names the series."""
    try:
        return scaling.fit_many(values, offsets, kind)
    except FloatingPointError:
        for k in range(len(offsets) - 1):
            try:
                scaling.fit(values[offsets[k] : offsets[k + 1]], kind)
            except FloatingPointError:
                sid = panel.ids[int(which[k])]
                prefix = "" if sid is None else f"series {shown(sid)}: "
                raise DataError(
                    f"{prefix}values too large to scale (their spread overflows 64-bit floats) — "
                    "check the data for extreme values"
                ) from None
        raise


def assemble(
    panel: Panel,
    scaler: scaling.Scaler,
    *,
    lookback: int,
    horizon: int,
    calendar: list[str],
    n_future_features: int = 0,
    splits: list[Split] | None = None,
    stride: int = 1,
    device: torch.device | str = "cpu",
    series_codes: list[int] | np.ndarray | None = None,
    keep_last: int | None = None,
) -> Dataset:
    """Scale every series with its own statistics, append calendar columns, and window.

    `series_codes` gives each series' embedding index (its position in training) when the model has one.
    A series the scaler never saw is scaled by its own history. With `keep_last`, only each series' last
    `keep_last` rows are scaled and kept (a forecast from the end reads no more).
    """
    mean, std, unseen = scaler.lookup(list(panel.ids))
    if unseen.any():
        which = np.flatnonzero(unseen)
        rows = ranges(panel.offsets[which], panel.lengths[which])
        offsets = np.concatenate([[0], np.cumsum(panel.lengths[which])])
        mean[which], std[which] = _fitted(panel, panel.values[rows], offsets, scaler.kind, which)
    if keep_last is not None:
        panel = panel.tail(keep_last)
    block = _scaled(panel, mean, std)
    if calendar:
        block = np.concatenate([block, features_at(panel.row_times(), panel, calendar)], axis=1)
    rows = torch.from_numpy(block).to(device)
    parts = split_parts(splits or [], panel.offsets, lookback, horizon, stride)
    series_of_row = None
    if series_codes is not None:
        counts = torch.as_tensor(panel.lengths, device=device)
        series_of_row = torch.repeat_interleave(torch.as_tensor(np.asarray(series_codes), device=device), counts)
    n_future = n_future_features + 2 * len(calendar)  # the last columns: future features, then calendar
    data = WindowSet(rows, lookback, horizon, panel.n_targets, n_future, series_of_row)
    names = [str(panel.ids[k]) for k in np.flatnonzero(unseen).tolist()]
    return Dataset(data, panel.values, panel.offsets, list(panel.ids), parts, mean, std, names)


def _scaled(panel: Panel, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Every row scaled by its series' statistics, as float32; a value beyond float32 names its series."""
    series = panel.series_of_rows()
    try:
        with np.errstate(over="raise", invalid="raise"):
            return scaling.transform_rows(panel.values, mean, std, series)
    except FloatingPointError:
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (panel.values - mean[series]) / std[series]
        bad = ~np.isfinite(scaled.astype(np.float32)).all(axis=1)
        sid = panel.ids[int(series[np.flatnonzero(bad)[0]])] if bad.any() else panel.ids[0]
        which = "" if sid is None else f"series {shown(sid)}: "
        raise DataError(
            f"{which}values too large for 32-bit floats after scaling (beyond ±3.4e38) — "
            "check the data for extreme values"
        ) from None
