"""Error measures and naive baselines on arrays in original units (numpy only)."""

from __future__ import annotations

import numpy as np


def horizon_rows(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Row indices (N, horizon) of the forecast rows of each origin."""
    return origins[:, None] + np.arange(horizon)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season before each origin: ŷ[t+h] = y[t + (h mod m) − m]; (N, horizon, columns).

    With season 1 this is the naive forecast (repeat the last value).
    """
    back = np.minimum(season, origins)[:, None]  # never read before row 0
    rows = origins[:, None] - back + (np.arange(horizon)[None, :] % back)
    return values[rows]


def mae(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(forecast - actual)))


def rmse(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forecast - actual) ** 2)))
