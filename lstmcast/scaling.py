"""Standard scaling: statistics fitted on the training rows only, stored as plain lists."""

from __future__ import annotations

from typing import Any

import numpy as np

# A constant column would divide by zero; scaling it by 1 keeps it as an offset.
_MIN_STD = 1e-8


def fit(values: np.ndarray) -> dict[str, Any]:
    """Per-column mean and standard deviation of `values` (rows, columns)."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std < _MIN_STD, 1.0, std)
    return {"kind": "standard", "mean": mean.tolist(), "std": std.tolist()}


def transform(values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Scale `values` (…, columns) to float32."""
    mean, std = _stats(state, values.shape[-1])
    return ((values - mean) / std).astype(np.float32)


def inverse(values: np.ndarray, state: dict[str, Any], columns: slice = slice(None)) -> np.ndarray:
    """Undo `transform` for `values` (…, k) holding the scaler's `columns` (default: all)."""
    mean, std = (np.asarray(state["mean"])[columns], np.asarray(state["std"])[columns])
    return values.astype(np.float64) * std + mean


def _stats(state: dict[str, Any], width: int) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(state["mean"]), np.asarray(state["std"])
    if mean.shape != (width,):
        raise ValueError(f"scaler holds {mean.shape[0]} columns, data has {width}")
    return mean, std
