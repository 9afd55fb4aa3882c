"""Scaling fitted on the training rows only, per series, stored as plain lists in the checkpoint.

A `Scaler` holds one row of statistics per series, in training order, and finds a series' row
by its id in constant time. `kind: none` keeps raw values (mean 0, std 1): for window
normalisation by scale, as on M4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.data.panel import by_length

# A constant column would divide by zero; scaling it by 1 keeps it as an offset.
_MIN_STD = 1e-8


@dataclass(frozen=True)
class Stats:
    """One series' per-column statistics."""

    mean: np.ndarray  # (columns,) float64
    std: np.ndarray


@dataclass(frozen=True)
class Scaler:
    """Per-series statistics; `ids[k]` (None for an unnamed single series) owns `mean[k]`, `std[k]`."""

    kind: str
    ids: list[str | None]
    mean: list[list[float]]
    std: list[list[float]]
    _row: dict[str | None, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", {sid: k for k, sid in enumerate(self.ids)})

    @property
    def columns(self) -> int:
        return len(self.mean[0]) if self.mean else 0

    def lookup(self, ids: list[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(series, columns) means and stds of `ids`, and a mask of the ids the scaler never saw (their rows 0)."""
        where = pd.Index(self.ids).get_indexer(list(ids)) if self.ids else np.full(len(ids), -1)
        unseen = where < 0
        mean = np.zeros((len(ids), self.columns))
        std = np.ones((len(ids), self.columns))
        if (~unseen).any():
            mean[~unseen] = np.asarray(self.mean, dtype=np.float64)[where[~unseen]]
            std[~unseen] = np.asarray(self.std, dtype=np.float64)[where[~unseen]]
        return mean, std, unseen

    def stats(self, sid: str | None) -> Stats | None:
        """The statistics of series `sid`, or None when the scaler never saw it."""
        k = self._row.get(sid)
        if k is None:
            return None
        return Stats(np.asarray(self.mean[k], dtype=np.float64), np.asarray(self.std[k], dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": list(self.ids), "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scaler:
        return cls(raw["kind"], list(raw["ids"]), [list(m) for m in raw["mean"]], [list(s) for s in raw["std"]])


def fit(values: np.ndarray, kind: str = "standard") -> Stats:
    """Per-column statistics of one series' training rows (rows, columns)."""
    if kind == "none":
        return Stats(np.zeros(values.shape[1]), np.ones(values.shape[1]))
    with np.errstate(over="raise", invalid="raise"):  # FloatingPointError: values beyond float64's reach
        mean = values.mean(axis=0)
        std = values.std(axis=0)
    return Stats(mean, np.where(std < _MIN_STD, 1.0, std))


def fit_many(values: np.ndarray, offsets: np.ndarray, kind: str = "standard") -> tuple[np.ndarray, np.ndarray]:
    """(series, columns) statistics of each series' rows (series k: rows offsets[k]:offsets[k + 1]), as `fit` gives
    them one by one. FloatingPointError: some series' values are beyond float64's reach."""
    n, columns = len(offsets) - 1, values.shape[1]
    if kind == "none":
        return np.zeros((n, columns)), np.ones((n, columns))
    with np.errstate(over="raise", invalid="raise"):
        mean = by_length(offsets, values, lambda block: block.mean(axis=1))
        std = by_length(offsets, values, lambda block: block.std(axis=1))
    return mean, np.where(std < _MIN_STD, 1.0, std)


def combine(kind: str, ids: list[str | None], mean: np.ndarray, std: np.ndarray) -> Scaler:
    """One scaler for many series, in the order of `ids`."""
    return Scaler(kind, list(ids), mean.tolist(), std.tolist())


_CHUNK = 1 << 16  # rows scaled at a time: small temporaries, reused from one chunk to the next


def transform(values: np.ndarray, stats: Stats) -> np.ndarray:
    """Scale one series' `values` (…, columns) to float32.

    Chunk by chunk: the arithmetic is elementwise, so the numbers are the same, but the float64
    temporaries are one chunk's instead of two copies of a long series.
    """
    if stats.mean.shape != (values.shape[-1],):
        raise ValueError(f"scaler holds {stats.mean.shape[-1]} columns, data has {values.shape[-1]}")
    out = np.empty(values.shape, dtype=np.float32)
    for begin in range(0, len(values), _CHUNK):
        out[begin : begin + _CHUNK] = (values[begin : begin + _CHUNK] - stats.mean) / stats.std
    return out


def transform_rows(values: np.ndarray, mean: np.ndarray, std: np.ndarray, series: np.ndarray) -> np.ndarray:
    """Scale every row (rows, columns) by its series' statistics (`series`: each row's row of `mean`/`std`) to
    float32, chunk by chunk; the arithmetic of `transform`, for all series at once."""
    out = np.empty(values.shape, dtype=np.float32)
    for begin in range(0, len(values), _CHUNK):
        rows = series[begin : begin + _CHUNK]
        out[begin : begin + _CHUNK] = (values[begin : begin + _CHUNK] - mean[rows]) / std[rows]
    return out


def inverse_rows(
    values: np.ndarray, mean: np.ndarray, std: np.ndarray, series: np.ndarray, columns: slice
) -> np.ndarray:
    """Undo scaling of (N, …, k) forecasts whose origins belong to `series` (N,): rows of the (S, C) tables."""
    shape = (len(series),) + (1,) * (values.ndim - 2) + (-1,)
    return values.astype(np.float64) * std[series][:, columns].reshape(shape) + mean[series][:, columns].reshape(shape)
