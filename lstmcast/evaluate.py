"""Rolling-origin backtests: every origin through the model in large batches, scored next to naive baselines.

Works on arrays (torch for the model, numpy for the scores); the pipeline supplies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lstmcast import metrics, scaling
from lstmcast.model import StackedLSTM
from lstmcast.train import predict_windows
from lstmcast.windows import window_view


@dataclass
class Backtest:
    origins: np.ndarray  # (N,) row index of each origin's first forecast row
    actual: np.ndarray  # (N, horizon, targets), original units
    forecast: np.ndarray  # (N, horizon, targets): the point forecast (the median for quantile models)
    quantiles: np.ndarray | None  # (N, horizon, targets, Q) or None
    levels: list[float]


def run(
    model: StackedLSTM, scaled: torch.Tensor, values: np.ndarray, origins: np.ndarray, scaler: dict[str, Any]
) -> Backtest:
    """Forecast from each origin's preceding `lookback` rows; `scaled` and `values` hold the same rows."""
    lookback, horizon, nt = _shape(model)
    windows = window_view(scaled, lookback + horizon)
    starts = torch.as_tensor(origins - lookback, device=scaled.device)
    raw = predict_windows(model, windows, starts, lookback, nt).cpu().numpy()
    targets = slice(0, nt)
    if model.quantiles:
        quantiles = scaling.inverse(np.moveaxis(raw, -1, 1), scaler, targets)  # (N, Q, horizon, nt)
        quantiles = np.moveaxis(quantiles, 1, -1)
        forecast = quantiles[..., model.median]
    else:
        quantiles, forecast = None, scaling.inverse(raw, scaler, targets)
    actual = values[metrics.horizon_rows(origins, horizon)][..., :nt]
    return Backtest(origins, actual, forecast, quantiles, list(model.quantiles))


def score(bt: Backtest, values: np.ndarray, season: int) -> dict[str, Any]:
    """Errors of the model and of the seasonal-naive and naive baselines on the same origins.

    MASE divides by the in-sample seasonal-naive error of the rows before the first origin.
    """
    nt = bt.actual.shape[-1]
    horizon = bt.actual.shape[1]
    scale = metrics.mase_scale(values[: bt.origins[0], :nt], season)
    forecasts = {
        "model": bt.forecast,
        "seasonal_naive": metrics.seasonal_naive(values[:, :nt], bt.origins, horizon, season),
        "naive": metrics.seasonal_naive(values[:, :nt], bt.origins, horizon, 1),
    }
    result: dict[str, Any] = {"origins": len(bt.origins), "season": season}
    per_step = {}
    overall = {}
    for name, forecast in forecasts.items():
        scores = metrics.errors(forecast, bt.actual, scale)
        overall[name], per_step[name] = scores["overall"], scores["per_step"]
    result["overall"], result["per_step"] = overall, per_step
    model_mase, naive_mase = overall["model"]["mase"], overall["seasonal_naive"]["mase"]
    result["relative_skill"] = model_mase / naive_mase if model_mase is not None and naive_mase else None
    if bt.quantiles is not None:
        result["quantiles"] = {
            "levels": bt.levels,
            "pinball": metrics.pinball(bt.quantiles, bt.actual, bt.levels),
            "coverage": metrics.coverage(bt.quantiles, bt.actual, bt.levels),
        }
    return result


def _shape(model: StackedLSTM) -> tuple[int, int, int]:
    return model.lookback, model.horizon, model.n_targets
