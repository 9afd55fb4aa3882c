"""A panel of validated series → one scaled tensor, its windows, and which origins belong to which part.

All series are scaled with their own statistics and concatenated; calendar columns are appended
(unscaled: they already lie in [-1, 1]). Origins are row indices into the concatenation, taken per
series, so no window ever mixes two series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstmcast.data import frame
from lstmcast.data.calendar import calendar_features
from lstmcast.errors import DataError, shown
from lstmcast.learn import scaling
from lstmcast.learn.split import Runs, Split, origins
from lstmcast.learn.windows import WindowSet


@dataclass
class Dataset:
    data: WindowSet
    values: np.ndarray  # (rows, columns) original units, concatenated like `data.rows`
    offsets: np.ndarray  # (series + 1,) first row of each series
    ids: list[str | None]
    parts: dict[str, Runs]  # origins of each split part (empty without splits)
    mean: np.ndarray  # (series, columns): the statistics each series was scaled with
    std: np.ndarray
    unseen: list[str]  # series the scaler did not know, scaled by their own history

    def series_of(self, rows: np.ndarray) -> np.ndarray:
        """The series index of each row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1


def fit_scaler(panel: frame.Panel, splits: list[Split], kind: str) -> scaling.Scaler:
    """Per-series statistics of each series' training rows only."""
    stats = []
    for (sid, series), split in zip(panel, splits, strict=True):
        try:
            stats.append(scaling.fit(series.values[: split.train], kind))
        except FloatingPointError:
            which = "" if sid is None else f"series {shown(sid)}: "
            raise DataError(
                f"{which}values too large to scale (their spread overflows 64-bit floats) — "
                "check the data for extreme values"
            ) from None
    return scaling.combine(kind, [sid for sid, _ in panel], stats)


def assemble(
    panel: frame.Panel,
    scaler: scaling.Scaler,
    *,
    lookback: int,
    horizon: int,
    calendar: list[str],
    n_future_features: int = 0,
    splits: list[Split] | None = None,
    stride: int = 1,
    device: torch.device | str = "cpu",
    series_codes: list[int] | None = None,
) -> Dataset:
    """Scale every series with its own statistics, append calendar columns, concatenate, and window.

    `series_codes` gives each series' embedding index (its position in training) when the model has one.
    """
    blocks, lengths, states, unseen = [], [], [], []
    for sid, series in panel:
        try:
            stats = scaler.stats(sid)
            if stats is None:  # unseen in training: scaled by its own history
                stats = scaling.fit(series.values, scaler.kind)
                unseen.append(str(sid))
            with np.errstate(over="raise", invalid="raise"):
                block = scaling.transform(series.values, stats)
        except FloatingPointError:
            which = "" if sid is None else f"series {shown(sid)}: "
            raise DataError(
                f"{which}values too large for 32-bit floats after scaling (beyond ±3.4e38) — "
                "check the data for extreme values"
            ) from None
        states.append(stats)
        if calendar:
            block = np.concatenate([block, calendar_features(series.times(), calendar)], axis=1)
        blocks.append(block)
        lengths.append(series.rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    single = len(panel) == 1
    rows = torch.from_numpy(blocks[0] if single else np.concatenate(blocks)).to(device)
    values = panel[0][1].values if single else np.concatenate([s.values for _, s in panel])
    per_series = [origins(split, lookback, horizon, stride) for split in splits or []]
    parts = {k: Runs.join([o[k] for o in per_series], offsets[: len(per_series)]) for k in ("train", "val", "test")}
    series_of_row = None
    if series_codes is not None:
        counts = torch.as_tensor(lengths, device=device)
        series_of_row = torch.repeat_interleave(torch.as_tensor(series_codes, device=device), counts)
    n_future = n_future_features + 2 * len(calendar)  # the last columns: future features, then calendar
    data = WindowSet(rows, lookback, horizon, panel[0][1].n_targets, n_future, series_of_row)
    mean = np.array([st.mean for st in states], dtype=np.float64)
    std = np.array([st.std for st in states], dtype=np.float64)
    return Dataset(data, values, offsets, [sid for sid, _ in panel], parts, mean, std, unseen)
