"""Rolling-origin backtests: every origin through the model in large batches, scored next to naive baselines.

Works on arrays (torch for the model, numpy for the scores); the pipeline supplies them. With many
series, each series is scored on its own (MASE by its own history) and the overall figures are the
means over series, as in the M4 competition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast import metrics, scaling
from lstmcast.dataset import Dataset
from lstmcast.model import Forecaster
from lstmcast.train import predict_windows


@dataclass
class Backtest:
    origins: np.ndarray  # (N,) row index (in the dataset's concatenation) of each origin's first forecast row
    series: np.ndarray  # (N,) series index of each origin
    actual: np.ndarray  # (N, horizon, targets), original units
    forecast: np.ndarray  # (N, horizon, targets): the point forecast (the median for quantile models)
    quantiles: np.ndarray | None  # (N, horizon, targets, Q) or None
    levels: list[float]


def run(model: Forecaster, ds: Dataset, origins: np.ndarray) -> Backtest:
    """Forecast from each origin's preceding `lookback` rows, in original units."""
    spec = model.spec
    raw = predict_windows(model, ds.data, ds.data.starts(origins)).cpu().numpy()
    series = ds.series_of(origins)
    targets = slice(0, spec.n_targets)
    if spec.quantiles:
        quantiles = scaling.inverse_rows(np.moveaxis(raw, -1, 1), ds.mean, ds.std, series, targets)  # (N, Q, H, nt)
        quantiles = np.moveaxis(quantiles, 1, -1)
        forecast = quantiles[..., spec.median]
    else:
        quantiles, forecast = None, scaling.inverse_rows(raw, ds.mean, ds.std, series, targets)
    actual = ds.values[metrics.horizon_rows(origins, spec.horizon)][..., : spec.n_targets]
    return Backtest(origins, series, actual, forecast, quantiles, list(spec.quantiles))


def score(bt: Backtest, ds: Dataset, season: int) -> dict[str, Any]:
    """Errors of the model and of the seasonal-naive and naive baselines on the same origins.

    MASE divides by the in-sample seasonal-naive error of each series' rows before its first origin.
    """
    nt, horizon = bt.actual.shape[-1], bt.actual.shape[1]
    targets = ds.values[:, :nt]
    series_start = ds.offsets[bt.series]
    forecasts = {
        "model": bt.forecast,
        "seasonal_naive": metrics.seasonal_naive(targets, bt.origins, horizon, season, series_start),
        "naive": metrics.seasonal_naive(targets, bt.origins, horizon, 1, series_start),
    }
    per_series = []
    for s in np.unique(bt.series):
        rows = bt.series == s
        history = targets[ds.offsets[s] : bt.origins[rows][0]]
        scale = metrics.mase_scale(history, season)
        scores = {name: metrics.errors(f[rows], bt.actual[rows], scale) for name, f in forecasts.items()}
        per_series.append((ds.ids[s], int(rows.sum()), scores))
    result: dict[str, Any] = {"origins": len(bt.origins), "season": season, "series": len(per_series)}
    result["overall"] = {name: _mean([sc[name]["overall"] for _, _, sc in per_series]) for name in forecasts}
    result["per_step"] = {
        name: {k: _mean_lists([sc[name]["per_step"][k] for _, _, sc in per_series]) for k in metrics.METRICS}
        for name in forecasts
    }
    model_mase, naive_mase = result["overall"]["model"]["mase"], result["overall"]["seasonal_naive"]["mase"]
    result["relative_skill"] = model_mase / naive_mase if model_mase is not None and naive_mase else None
    if len(per_series) > 1:
        result["per_series"] = [
            {"series": sid, "origins": n, **{name: sc[name]["overall"] for name in forecasts}}
            for sid, n, sc in per_series
        ]
    if bt.quantiles is not None:
        result["quantiles"] = {
            "levels": bt.levels,
            "pinball": metrics.pinball(bt.quantiles, bt.actual, bt.levels),
            "coverage": metrics.coverage(bt.quantiles, bt.actual, bt.levels),
        }
    return result


def _mean(dicts: list[dict[str, float | None]]) -> dict[str, float | None]:
    out = {}
    for key in dicts[0]:
        values = [d[key] for d in dicts if d[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _mean_lists(lists: list[list[float | None]]) -> list[float | None]:
    array = np.array([[np.nan if x is None else x for x in row] for row in lists], dtype=float)
    with np.errstate(all="ignore"):
        means = np.nanmean(array, axis=0) if np.isfinite(array).any() else array[0]
    return [float(x) if np.isfinite(x) else None for x in means]
