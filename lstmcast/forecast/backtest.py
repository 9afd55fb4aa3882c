"""Rolling-origin backtests: every origin through the model in large batches, scored next to naive baselines.

Works on arrays (torch for the model, numpy for the scores); the pipeline supplies them. With many
series, each series is scored on its own (MASE by its own history) and the overall figures are the
means over series, as in the M4 competition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast.data.panel import ranges
from lstmcast.forecast import baselines, metrics
from lstmcast.learn import scaling
from lstmcast.learn.dataset import Dataset
from lstmcast.learn.split import Runs
from lstmcast.learn.windows import predict_windows
from lstmcast.model.lstm import Forecaster
from lstmcast.model.selection import Selection
from lstmcast.vocabulary import BASELINES


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


SELECT_WINDOWS = 1_000  # validation windows per series compared for selection (evenly spaced): bounded time


def _thinned(runs: Runs, most: int) -> np.ndarray:
    """The origins of each run, at most `most` of each, evenly spaced and including the last."""
    pieces = []
    for first, count in zip(runs.first, runs.count, strict=True):
        k = np.unique(np.linspace(0, count - 1, num=min(count, most)).round().astype(np.int64)) if count else []
        pieces.append(first + runs.step * np.asarray(k, dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


def select(model: Forecaster, ds: Dataset, season: int) -> Selection | None:
    """Every forecaster's validation MASE on every series, on the same windows (None without validation).

    At most SELECT_WINDOWS windows per series. Each series' scale is the in-sample error of its rows
    before its first validation origin, so the mean over series compares forecasters across series of
    any size. All series at once: no loop over series (the choice is `baselines.decide_many`).
    """
    origins = _thinned(ds.parts["val"], SELECT_WINDOWS)
    if not len(origins):
        return None
    bt = run(model, ds, origins)
    nt, horizon = bt.actual.shape[-1], bt.actual.shape[1]
    candidates = {
        "model": bt.forecast,
        **baselines.forecasts(ds.values[:, :nt], origins, horizon, season, ds.offsets[bt.series]),
    }
    served, begin, counts = np.unique(bt.series, return_index=True, return_counts=True)  # origins come series by series
    first = bt.origins[begin]
    before = first - ds.offsets[served]  # each series' rows before its first validation origin
    history = ranges(ds.offsets[served], before)
    scale = baselines.scale_many(ds.values[history, :nt], np.concatenate([[0], np.cumsum(before)]), season)
    scales = np.repeat(scale, counts, axis=0)  # (origins, nt)
    blocks = (bt.origins - np.repeat(first, counts)) // horizon  # non-overlapping spans of `horizon` origins
    width = int(blocks.max()) + 1
    found, block_of = np.unique(np.repeat(np.arange(len(served)), counts) * width + blocks, return_inverse=True)
    per_block = np.bincount(block_of)  # origins in each block, blocks series by series
    block_counts = np.bincount(found // width, minlength=len(served))  # blocks of each series
    scores: dict[str, list[float | None]] = {}
    means: dict[str, np.ndarray] = {}
    for name, f in candidates.items():
        loss = (np.abs(f - bt.actual) / scales[:, None, :]).mean(axis=(1, 2))
        values = np.full(len(ds.ids), None, dtype=object)
        values[served] = baselines.by_count(loss, counts, np.mean).tolist()
        scores[name] = values.tolist()
        means[name] = np.bincount(block_of, weights=loss) / per_block
    default, own = baselines.decide_many(means, block_counts)
    chosen = np.full(len(ds.ids), default, dtype=object)  # a series without validation windows follows the panel
    chosen[served] = own
    spread = {}
    if bt.quantiles is not None:
        spread = {n: baselines.residual_spread(candidates[n], bt.actual, scales, bt.levels) for n in BASELINES}
    return Selection(list(ds.ids), scores, chosen.tolist(), default, len(origins), spread)


def _pick(candidates: dict[str, np.ndarray], series: np.ndarray, choice: list[str]) -> np.ndarray:
    """Each origin's forecast from the forecaster its series' `choice` names."""
    names = np.array(choice)[series]
    out = candidates["model"].copy()
    for name, f in candidates.items():
        out[names == name] = f[names == name]
    return out


def score(bt: Backtest, ds: Dataset, season: int, choice: list[str] | None = None) -> dict[str, Any]:
    """Errors of the model and of the seasonal-naive and naive baselines on the same origins.

    MASE divides by the in-sample seasonal-naive error of each series' rows before its first origin.
    With `choice` (a forecaster per series of `ds`), the selected forecasts are scored as well.
    """
    nt, horizon = bt.actual.shape[-1], bt.actual.shape[1]
    targets = ds.values[:, :nt]
    forecasts = {
        "model": bt.forecast,
        **baselines.forecasts(targets, bt.origins, horizon, season, ds.offsets[bt.series]),
    }
    if choice is not None:
        forecasts["selected"] = _pick(forecasts, bt.series, choice)
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
