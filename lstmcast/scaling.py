"""Scaling fitted on the training rows only, per series, stored as plain lists in the checkpoint.

A state holds one row of statistics per series: `{"kind", "mean": [[…]], "std": [[…]], "ids": […]}`.
Single-series states keep the flat format of checkpoint format 1 (`"mean": […]`), which still loads.
`kind: none` keeps raw values (mean 0, std 1): for window normalisation by scale, as on M4.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A constant column would divide by zero; scaling it by 1 keeps it as an offset.
_MIN_STD = 1e-8


def fit(values: np.ndarray, kind: str = "standard") -> dict[str, Any]:
    """Per-column statistics of one series' training rows (rows, columns)."""
    if kind == "none":
        return {"kind": "none", "mean": [0.0] * values.shape[1], "std": [1.0] * values.shape[1]}
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std < _MIN_STD, 1.0, std)
    return {"kind": "standard", "mean": mean.tolist(), "std": std.tolist()}


def combine(ids: list[str], states: list[dict[str, Any]]) -> dict[str, Any]:
    """One state for many series, in the order of `ids`."""
    return {
        "kind": states[0]["kind"],
        "ids": list(ids),
        "mean": [s["mean"] for s in states],
        "std": [s["std"] for s in states],
    }


def for_series(state: dict[str, Any], sid: str | None) -> dict[str, Any] | None:
    """The flat state of one series, or None if the state does not know it."""
    if "ids" not in state:
        return state
    if sid not in state["ids"]:
        return None
    i = state["ids"].index(sid)
    return {"kind": state["kind"], "mean": state["mean"][i], "std": state["std"][i]}


_CHUNK = 1 << 16  # rows scaled at a time: small temporaries, reused from one chunk to the next


def transform(values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Scale one series' `values` (…, columns) to float32 with a flat state.

    Chunk by chunk: the arithmetic is elementwise, so the numbers are the same, but the float64
    temporaries are one chunk's instead of two copies of a long series.
    """
    mean, std = _stats(state, values.shape[-1])
    out = np.empty(values.shape, dtype=np.float32)
    for begin in range(0, len(values), _CHUNK):
        out[begin : begin + _CHUNK] = (values[begin : begin + _CHUNK] - mean) / std
    return out


def inverse_rows(
    values: np.ndarray, mean: np.ndarray, std: np.ndarray, series: np.ndarray, columns: slice
) -> np.ndarray:
    """Undo scaling of (N, …, k) forecasts whose origins belong to `series` (N,): rows of the (S, C) tables."""
    shape = (len(series),) + (1,) * (values.ndim - 2) + (-1,)
    return values.astype(np.float64) * std[series][:, columns].reshape(shape) + mean[series][:, columns].reshape(shape)


def _stats(state: dict[str, Any], width: int) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(state["mean"]), np.asarray(state["std"])
    if mean.shape != (width,):
        raise ValueError(f"scaler holds {mean.shape[-1]} columns, data has {width}")
    return mean, std
