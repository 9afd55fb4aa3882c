"""Forecast a partition of whole series with a trained checkpoint: the one path every served forecast takes.

series (a Panel) ──serve.plan──▶ who serves each series ──the model (the checkpoint's scaler,
calendar and series vectors) over each series' last window──▶ forecasts in original units
──serve.served_table──▶ baselines for the other series, a non-finite model forecast moved to the fallback

`read_like_training` reads data the way the checkpoint's training read it; `dataset_for` scales
and windows a panel for the model (evaluate and inspect use it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lstmcast.config import quantile_levels
from lstmcast.data import calendar, frame
from lstmcast.data.frame import read_data, report_filled
from lstmcast.errors import DataError, shown
from lstmcast.forecast import metrics, serve
from lstmcast.learn import scaling
from lstmcast.learn.dataset import Dataset, assemble
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.model.lstm import Forecaster, ModelSpec
from lstmcast.report import Reporter


@dataclass
class Forecast:
    """What one partition's forecast is: per series its horizon's labels, the value columns, the table, who served."""

    labels: list[Any]  # per series: the horizon's timestamps (DatetimeIndex) or step numbers (RangeIndex)
    columns: list[str]
    table: np.ndarray  # (series, horizon, columns) in original units
    plan: serve.Plan


def read_like_training(
    ckpt: Checkpoint,
    source: Any,
    reporter: Reporter,
    only: list[str] | None = None,
    *,
    future_rows: int = 0,
    start: str | None = None,
    end: str | None = None,
) -> frame.Panel:
    """Read data the way the checkpoint's training data was read: same columns, frequency and gap policy.

    `future_rows`: predict with known-future covariates, whose values for the forecast rows follow each series.
    """
    d = ckpt.config.data
    panel = read_data(
        d,
        source,
        future_rows=future_rows if d.future_features else 0,
        freq=ckpt.freq or "auto",
        start=start,
        end=end,
        freq_from="the model's frequency",
        last_observed=future_rows > 0,  # predict: forecasts start after each series' last row
    )
    if only:
        known = {sid for sid, _ in panel}
        absent = [sid for sid in only if sid not in known]
        if absent:
            examples = ", ".join(shown(sid, 40) for sid in sorted(known)[:3])
            raise DataError(f"{source}: no series {shown(absent[0])} — it has {len(known)} series, e.g. {examples}")
        wanted = set(only)
        panel = [(sid, series) for sid, series in panel if sid in wanted]
    report_filled(panel, reporter, d.missing)
    return panel


def dataset_for(ckpt: Checkpoint, spec: ModelSpec, panel: frame.Panel, reporter: Reporter) -> Dataset:
    """Scale and window data for a trained model: its scaler, calendar and series embedding."""
    codes = None
    if spec.embeds:
        position = {sid: k for k, sid in enumerate(ckpt.series or [None])}
        unknown = [sid for sid, _ in panel if sid not in position]
        if unknown:
            raise DataError(
                f"series {shown(unknown[0])} was not in the training data and the model learned one vector per series "
                "(model.series_embedding) — retrain including it"
            )
        codes = [position[sid] for sid, _ in panel]
    ds = assemble(
        panel,
        ckpt.scaler,
        lookback=spec.lookback,
        horizon=spec.horizon,
        calendar=ckpt.calendar,
        n_future_features=len(ckpt.config.data.future_features),
        series_codes=codes,
    )
    if ds.unseen:
        reporter.warning(
            f"{len(ds.unseen)} series not seen in training (e.g. {shown(ds.unseen[0])}) are scaled by their own history"
        )
    return ds


def forecast(
    ckpt: Checkpoint,
    model: Forecaster,
    panel: frame.Panel,
    reporter: Reporter,
    *,
    fallback: str,
    select: str,
    source: Any,
) -> Forecast:
    """The horizon after each series' last row, by the forecaster `serve` chooses for it.

    `fallback` (predict.fallback, not yet resolved) and `select` (train.select) come from the
    checkpoint or the command line. With fallback `error`, a series the model cannot serve ends the run.
    """
    spec = model.spec
    fallback = serve.fallback_for(ckpt, fallback)
    plan = serve.plan(ckpt, spec, panel, fallback, select)
    if fallback == "error":
        serve.refuse(plan, panel, spec, source)
    labels = [calendar.future_labels(series, spec.horizon) for _, series in panel]

    def model_rows(positions: list[int]) -> np.ndarray:
        sub = [panel[i] for i in positions]
        with reporter.timed("windows"):
            ds = dataset_for(ckpt, spec, sub, reporter)
        return _model_table(ckpt, model, sub, ds, [labels[i] for i in positions])

    with reporter.timed("forecast"):
        table = serve.served_table(ckpt, spec, panel, plan, fallback, model_rows, source)
    for reason, line in serve.describe(plan, panel):  # a model that fails on its inputs is worth a warning
        (reporter.warning if reason == "not_finite" else reporter.info)(line)
    if any(len(where) > 3 for where in plan.why.values()):  # those lines named only three
        for _, line in serve.describe(plan, panel, most=None):
            reporter.detail(line)
    return Forecast(labels, columns(ckpt), table, plan)


def columns(ckpt: Checkpoint) -> list[str]:
    """The forecast's value columns: one per target, then one per target and quantile level."""
    names = list(ckpt.targets)
    for level in quantile_levels(ckpt.config.train):
        names += [f"{t}_{metrics.quantile_name(level)}" for t in ckpt.targets]
    return names


def _model_table(ckpt: Checkpoint, model: Forecaster, panel: frame.Panel, ds: Dataset, labels: list[Any]) -> np.ndarray:
    """(series, horizon, columns) model forecasts from each series' last window, in original units."""
    spec = model.spec
    ends = ds.offsets[1:]  # one past each series' last row
    future = _future_inputs(ckpt, panel, ds, labels) if spec.n_future else None
    x = ds.data.rows[torch.as_tensor((ends - spec.lookback)[:, None] + np.arange(spec.lookback))]  # (S, lookback, C)
    series_codes = ds.data.series_of_row[torch.as_tensor(ends - 1)] if ds.data.series_of_row is not None else None
    with torch.no_grad():
        raw = model(x, future, series_codes).numpy()  # (S, horizon, nt[, Q])
    nt, series_index = spec.n_targets, np.arange(len(panel))
    if not spec.quantiles:
        return scaling.inverse_rows(raw, ds.mean, ds.std, series_index, slice(0, nt))
    per_level = scaling.inverse_rows(np.moveaxis(raw, -1, 1), ds.mean, ds.std, series_index, slice(0, nt))
    return np.concatenate([per_level[:, spec.median], *[per_level[:, q] for q in range(len(spec.quantiles))]], axis=-1)


def _future_inputs(ckpt: Checkpoint, panel: frame.Panel, ds: Dataset, labels: list[Any]) -> torch.Tensor:
    """(series, horizon, n_future): the given future features, scaled like training, then the calendar."""
    n_ff = len(ckpt.config.data.future_features)
    blocks = []
    for i, ((_, series), idx) in enumerate(zip(panel, labels, strict=True)):
        parts = []
        if n_ff:
            cols = slice(series.values.shape[1] - n_ff, series.values.shape[1])
            parts.append(((series.future - ds.mean[i, cols]) / ds.std[i, cols]).astype(np.float32))
        if ckpt.calendar:
            parts.append(calendar.calendar_features(idx, ckpt.calendar))
        blocks.append(np.concatenate(parts, axis=1))
    return torch.from_numpy(np.stack(blocks))
