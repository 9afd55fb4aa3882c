"""Error measures and naive baselines on arrays in original units (numpy only).

Arrays of forecasts and actuals are shaped (origins, horizon, targets); quantile forecasts add a
last axis of quantile levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast import vocabulary


def horizon_rows(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Row indices (N, horizon) of the forecast rows of each origin."""
    return origins[:, None] + np.arange(horizon)


def seasonal_naive(
    values: np.ndarray, origins: np.ndarray, horizon: int, season: int, starts: np.ndarray | int = 0
) -> np.ndarray:
    """Repeat the last full season before each origin: ŷ[t+h] = y[t + (h mod m) − m]; (N, horizon, columns).

    With season 1 this is the naive forecast (repeat the last value). `starts` is the first row of
    each origin's series: the season shrinks rather than read another series' rows.
    """
    back = np.minimum(season, origins - starts)[:, None]
    rows = origins[:, None] - back + (np.arange(horizon)[None, :] % back)
    return values[rows]


def smape_terms(forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """200·|F − A| / (|F| + |A|) elementwise, 0 where both are 0 (the M4 definition)."""
    denom = np.abs(forecast) + np.abs(actual)
    return np.divide(200.0 * np.abs(forecast - actual), denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def mase_scale(history: np.ndarray, season: int) -> np.ndarray:
    """Per column: mean |y_t − y_{t−m}| over the history (in-sample seasonal naive); NaN where undefined."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return np.full(history.shape[1], np.nan)
    total = np.zeros(history.shape[1])
    for begin in range(m, len(history), _BLOCK):  # blocks: the history may be millions of rows
        block = history[begin : begin + _BLOCK]
        total += np.abs(block - history[begin - m : begin - m + len(block)]).sum(axis=0)
    scale = total / (len(history) - m)
    return np.where(scale > 0, scale, np.nan)


_BLOCK = 1 << 16


def mase_scales(block: np.ndarray, season: int) -> np.ndarray:
    """`mase_scale` of each series of a (series, rows, columns) block of equal-length series: (series, columns)."""
    n, rows, columns = block.shape
    m = season if rows > season else 1
    if rows <= m:
        return np.full((n, columns), np.nan)
    total = np.zeros((n, columns))
    for begin in range(m, rows, _BLOCK):
        part = block[:, begin : begin + _BLOCK]
        total += np.abs(part - block[:, begin - m : begin - m + part.shape[1]]).sum(axis=1)
    scale = total / (rows - m)
    return np.where(scale > 0, scale, np.nan)


@dataclass(frozen=True)
class Metric:
    """One error measure: elementwise terms, averaged, then `finish`ed (RMSE takes the root of the mean)."""

    label: str  # as people read it, in tables and summaries
    terms: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (forecast, actual, MASE scale) → errors
    finish: Callable[[Any], Any] = lambda mean: mean


_DEFINED = {
    "mae": Metric("MAE", lambda f, a, s: np.abs(f - a)),
    "rmse": Metric("RMSE", lambda f, a, s: (f - a) ** 2, np.sqrt),
    "smape": Metric("sMAPE", lambda f, a, s: smape_terms(f, a)),
    "mase": Metric("MASE", lambda f, a, s: np.abs(f - a) / s),  # the scale broadcasts over the target axis
}
# The registry every report reads (evaluate, metrics.json, the CLI's table, the training summary), in the order
# and under the names `vocabulary.METRICS` gives; a name without a definition fails at import.
METRICS: dict[str, Metric] = {name: _DEFINED[name] for name in vocabulary.METRICS}


def errors(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
    """Every registered measure overall and per horizon step (lists), for (N, horizon, targets) arrays."""
    overall, per_step = {}, {}
    for key, metric in METRICS.items():
        terms = metric.terms(forecast, actual, scale)
        overall[key] = _num(float(metric.finish(terms.mean())))
        per_step[key] = [_num(x) for x in metric.finish(terms.mean(axis=(0, 2)))]
    return {"overall": overall, "per_step": per_step}


def pinball(quantiles: np.ndarray, actual: np.ndarray, levels: list[float]) -> float:
    """Mean quantile (pinball) loss of (…, Q) forecasts against (…) actuals."""
    q = np.asarray(levels)
    error = actual[..., None] - quantiles
    return float(np.maximum(q * error, (q - 1) * error).mean())


def coverage(quantiles: np.ndarray, actual: np.ndarray, levels: list[float]) -> dict[str, float]:
    """Share of actuals inside each central interval [q, 1 − q] the levels define, keyed like '80% (q10–q90)'."""
    out = {}
    for i, low in enumerate(levels):
        high = round(1 - low, 10)
        if low < 0.5 and high in levels:
            j = levels.index(high)
            inside = (actual >= quantiles[..., i]) & (actual <= quantiles[..., j])
            out[f"{round(100 * (high - low), 6):g}% ({quantile_name(low)}–{quantile_name(high)})"] = float(
                inside.mean()
            )
    return out


def quantile_name(level: float) -> str:
    """0.1 → 'q10', 0.025 → 'q2.5': the column suffix for a quantile level."""
    return f"q{round(100 * level, 6):g}"


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
