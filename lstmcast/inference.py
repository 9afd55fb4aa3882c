"""The commands that use a trained checkpoint: predict, evaluate (rolling-origin backtest), inspect.

model.pt + data ──read as in training──▶ series ──the checkpoint's scaler──▶ windows ──model──▶
forecasts in original units ──▶ CSV (predict) · scores next to naive baselines (evaluate)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmcast import archive, baselines, calendar, checkpoint, db, evaluate, frame, metrics, scaling, serve, sinks
from lstmcast.atomic import check_targets, render_path, write_text
from lstmcast.checkpoint import Checkpoint
from lstmcast.config import quantile_levels
from lstmcast.dataset import Dataset, assemble
from lstmcast.errors import ConfigError, DataError, OutputError, shown
from lstmcast.model import Ensemble, Forecaster, StackedLSTM, parameter_count
from lstmcast.pipeline import read_data, report_filled, use_threads
from lstmcast.report import Reporter
from lstmcast.split import check_length, origins

MAX_PLOTTED_SERIES = 6  # panels in one predict --plot


@dataclass
class PredictOutcome:
    path: Path
    rows: int
    first: str
    last: str
    series: int = 1
    written: dict[str, Path] = field(default_factory=dict)  # every file written, by what it holds
    served: dict[str, Any] = field(default_factory=dict)  # series per forecaster, and why baselines serve some


@dataclass
class EvaluateOutcome:
    report: dict[str, Any]  # plain data: what --json and --report write
    backtest: evaluate.Backtest  # the arrays behind it, for plots and benchmarks
    dataset: Dataset
    written: dict[str, Path] = field(default_factory=dict)
    origin_times: dict[str | None, np.ndarray] = field(default_factory=dict)  # per series: scored origins' times


def load_model(ckpt: Checkpoint, cell: str | None = None) -> Forecaster:
    """The checkpoint's model, optionally with the other cell (fused ↔ reference: same weights).

    `Checkpoint.check` has compared every tensor's shape with the spec, so loading cannot fail.
    """
    spec = ckpt.spec(cell)
    members = []
    for weights in ckpt.members:
        model = StackedLSTM(spec)
        model.load_state_dict(weights)
        members.append(model)
    return (members[0] if len(members) == 1 else Ensemble(members)).eval()


def _load_for(
    ckpt: Checkpoint,
    data_path: Path,
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
        data_path,
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
            raise DataError(f"{data_path}: no series {shown(absent[0])} — it has {len(known)} series, e.g. {examples}")
        wanted = set(only)
        panel = [(sid, series) for sid, series in panel if sid in wanted]
    report_filled(panel, reporter, d.missing)
    return panel


def _dataset_for(ckpt: Checkpoint, model: Forecaster, panel: frame.Panel, reporter: Reporter) -> Dataset:
    """Scale and window data for a trained model: its scaler, calendar and series embedding."""
    codes = None
    if model.spec.embeds:
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
        lookback=model.spec.lookback,
        horizon=model.spec.horizon,
        calendar=ckpt.calendar,
        n_future_features=len(ckpt.config.data.future_features),
        series_codes=codes,
    )
    if ds.unseen:
        reporter.warning(
            f"{len(ds.unseen)} series not seen in training (e.g. {shown(ds.unseen[0])}) are scaled by their own history"
        )
    return ds


# ---------------------------------------------------------------------------- predict


def predict(
    ckpt_path: Path,
    data_path: Path,
    out_path: Path | None,
    reporter: Reporter,
    only: list[str] | None = None,
    plot: Path | None = None,
    *,
    fallback: str | None = None,
    select: str | None = None,
    archive: str | None = None,
    no_archive: bool = False,
) -> PredictOutcome:
    """Forecast the horizon after each series' last row; write the CSV (and the plot when asked).

    Every series gets a forecast: from the model, or from the baseline `serve.plan` chooses
    (`fallback`/`select` override the checkpoint's predict.fallback/train.select). The run is
    recorded in the `archive` (a URL or SQLite path; default the checkpoint's archive.url) unless
    `no_archive`.
    """
    check_targets(out_path if out_path is not None else Path(ckpt_path).parent / "forecast.csv", plot)  # before work
    with reporter.timed("load"):
        ckpt = checkpoint.load(ckpt_path)
        model = load_model(ckpt)
        store = _archive_for(ckpt, archive, no_archive)
        panel = _load_for(ckpt, data_path, reporter, only, future_rows=model.spec.horizon)
    use_threads(ckpt.config.train)
    fallback = serve.fallback_for(ckpt, fallback or ckpt.config.predict.fallback)
    plan = serve.plan(ckpt, model.spec, panel, fallback, select or ckpt.config.train.select)
    if fallback == "error":
        serve.refuse(plan, panel, model.spec, data_path)
    labels = [calendar.future_labels(series, model.spec.horizon) for _, series in panel]
    with reporter.timed("forecast"):
        columns, table = _served_table(ckpt, model, panel, labels, plan, fallback, data_path, reporter)
    for reason, line in serve.describe(plan, panel):  # a model that fails on its inputs is worth a warning
        (reporter.warning if reason == "not_finite" else reporter.info)(line)
    if any(len(where) > 3 for where in plan.why.values()):  # those lines named only three
        for _, line in serve.describe(plan, panel, most=None):
            reporter.detail(line)
    out = (
        render_path(out_path, origin=labels[0][0]) if out_path is not None else Path(ckpt_path).parent / "forecast.csv"
    )
    d = ckpt.config.data
    series_col = d.series_id if ckpt.series or len(panel) > 1 else None
    ids = [sid for sid, _ in panel]
    with reporter.timed("write"):
        sinks.write_forecast(out, labels, columns, table, d.timestamp or "step", ids, series_col, plan.names)
    written: dict[str, Any] = {"forecast": out}
    if store is not None:
        with reporter.timed("archive"):
            rows = _archive_run(store, ckpt, ckpt_path, panel, labels, table, plan.names, out)
        reporter.info(f"archived {rows} forecast rows in {store}")
        written["archive"] = db.redacted(store.url)
    if plot is not None:
        _plot_forecast(plot, ckpt, panel, labels, columns, table, reporter)
        written["plot"] = plot
    last = max(lab[-1] for lab in labels)
    served = {"forecasters": plan.counts(), "not_model": serve.examples(plan, panel)}
    return PredictOutcome(out, model.spec.horizon, str(labels[0][0]), str(last), len(panel), written, served)


def _archive_for(ckpt: Checkpoint, given: str | None, off: bool) -> archive.Archive | None:
    """The archive this run records into (--archive, LSTMCAST_ARCHIVE or archive.url), checked before any work."""
    url = None if off else (given or ckpt.config.archive.url)
    if url is None:
        return None
    if ckpt.freq is None:
        raise ConfigError(
            "--archive needs data with timestamps (data.timestamp): forecasts are matched to actuals by time — "
            "drop --archive (or unset LSTMCAST_ARCHIVE / archive.url)"
        )
    store = archive.Archive(archive.url_of(url))
    store.require()
    return store


def _archive_run(
    store: archive.Archive,
    ckpt: Checkpoint,
    ckpt_path: Path,
    panel: frame.Panel,
    labels: list[Any],
    table: np.ndarray,
    forecasters: list[str],
    out: Any,
) -> int:
    """Record this run's forecasts; a failure says the forecast itself was written."""
    d, nt = ckpt.config.data, len(ckpt.targets)
    levels = {}
    if ckpt.scaler.kind == "standard":
        for sid, _ in panel:
            stats = ckpt.scaler.stats(sid)
            if stats is not None:
                levels["" if sid is None else str(sid)] = [stats.mean[:nt].tolist(), stats.std[:nt].tolist()]
    times = [lab.tz_convert("UTC").tz_localize(None) if lab.tz is not None else lab for lab in labels]
    run = archive.Issued(
        model_id=sinks.model_id(ckpt_path),
        checkpoint=str(Path(ckpt_path).resolve()),
        freq=str(ckpt.freq),
        season=calendar.season_length(ckpt.freq),
        horizon=table.shape[1],
        timestamp_col=str(d.timestamp),
        series_col=d.series_id,
        targets=list(ckpt.targets),
        quantiles=list(quantile_levels(ckpt.config.train)),
        levels=levels,
        ids=["" if sid is None else str(sid) for sid, _ in panel],
        times=times,
        values=table,
        forecasters=forecasters,
    )
    try:
        return store.record(run)
    except OutputError as exc:
        raise OutputError(f"the forecast was written to {out}, but {exc}") from None


def _served_table(
    ckpt: Checkpoint,
    model: Forecaster,
    panel: frame.Panel,
    labels: list[Any],
    plan: serve.Plan,
    fallback: str,
    data_path: Path,
    reporter: Reporter,
) -> tuple[list[str], np.ndarray]:
    """(series, horizon, columns) forecasts: the model's for the series it serves, the baselines' for the rest.

    A model forecast that is not finite falls back (or, with fallback error, refuses the run).
    """
    spec = model.spec
    mine = [i for i, name in enumerate(plan.names) if name == "model"]
    table = None
    if mine:
        sub = [panel[i] for i in mine]
        with reporter.timed("windows"):
            ds = _dataset_for(ckpt, model, sub, reporter)
        own = _forecast_table(ckpt, model, sub, ds, [labels[i] for i in mine])
        if fallback == "error":
            _check_finite(own, [sid for sid, _ in sub], data_path)
        table = np.full((len(panel), *own.shape[1:]), np.nan)
        table[mine] = own
        for i in np.array(mine)[~np.isfinite(own.reshape(len(mine), -1)).all(axis=1)]:
            plan.move(int(i), fallback, "not_finite")
    if any(name != "model" for name in plan.names):
        rows = serve.baseline_table(ckpt, panel, plan, list(spec.quantiles), spec.median)
        if table is None:
            table = np.full((len(panel), *rows.shape[1:]), np.nan)
        table[[i for i, name in enumerate(plan.names) if name != "model"]] = rows
    assert table is not None
    _check_finite(table, [sid for sid, _ in panel], data_path)
    return _columns(ckpt), table


def _columns(ckpt: Checkpoint) -> list[str]:
    """The forecast's value columns: one per target, then one per target and quantile level."""
    columns = list(ckpt.targets)
    for level in quantile_levels(ckpt.config.train):
        columns += [f"{t}_{metrics.quantile_name(level)}" for t in ckpt.targets]
    return columns


def _forecast_table(
    ckpt: Checkpoint, model: Forecaster, panel: frame.Panel, ds: Dataset, labels: list[Any]
) -> np.ndarray:
    """(series, horizon, columns) forecasts in original units, columns as `_columns` names them."""
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


def _check_finite(forecasts: np.ndarray, ids: list[str | None], data_path: Path) -> None:
    """A forecast holding NaN or infinity is never written: (series, …) forecasts, one row per series."""
    finite = np.isfinite(forecasts.reshape(len(ids), -1)).all(axis=1)
    if not finite.all():
        bad = [ids[i] for i in np.flatnonzero(~finite)]
        which = "the series" if bad[0] is None else f"series {shown(bad[0])}"
        if len(bad) > 1:
            which += f" and {len(bad) - 1} more"
        raise DataError(
            f"the forecast for {which} of {data_path} is not finite (NaN or infinity) — check those rows for "
            "extreme values; nothing was written"
        )


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


def _plot_forecast(
    path: Path,
    ckpt: Checkpoint,
    panel: frame.Panel,
    labels: list[Any],
    columns: list[str],
    table: np.ndarray,
    reporter: Reporter,
) -> None:
    """The recent history and the forecast of the first series (or those chosen with --series), named."""
    from lstmcast.plots import ForecastPanel, plot_forecast

    if len(panel) > MAX_PLOTTED_SERIES:
        reporter.warning(
            f"--plot draws the first {MAX_PLOTTED_SERIES} of {len(panel)} series; choose others with --series"
        )
    nt, horizon = len(ckpt.targets), ckpt.config.window.horizon
    panels = []
    for i, (sid, series) in enumerate(panel[: MAX_PLOTTED_SERIES if len(panel) > 1 else 1]):
        recent = slice(max(0, series.rows - 3 * horizon), series.rows)
        history_x = series.index[recent] if series.index is not None else np.arange(series.rows)[recent]
        title = "" if sid is None else f"series {sid}"
        columns_i = dict(zip(columns, table[i].T, strict=True))
        panels.append(ForecastPanel(title, history_x, series.values[recent, :nt], labels[i], columns_i, ckpt.targets))
    plot_forecast(path, panels)


# ---------------------------------------------------------------------------- evaluate


def evaluate_checkpoint(
    ckpt_path: Path,
    data_path: Path,
    reporter: Reporter,
    *,
    start: str | None = None,
    end: str | None = None,
    stride: int = 1,
    season: int | None = None,
    report_path: Path | None = None,
    plot: Path | None = None,
    select: str | None = None,
    at: dict[str | None, np.ndarray] | None = None,
) -> EvaluateOutcome:
    """Rolling-origin backtest of a checkpoint, by default over its own test period (each series' own).

    Without --end the data is cut where training cut it (data.end), so the default test period is
    exactly the one training held out. The forecasts predict would serve (train.select, or
    `select`) are scored as "selected" next to the pure model when they differ. With `at` (per
    series, the first forecast times as int64 nanoseconds, as `origin_times` gives them), exactly
    those origins are scored, from the whole data.
    """
    check_targets(report_path, plot)  # before any work: a FIFO or folder there is refused now, not at the end
    with reporter.timed("load"):
        ckpt = checkpoint.load(ckpt_path)
        model = load_model(ckpt)
        default = ckpt.config.data  # the rows training saw, unless the period is chosen
        period = {"start": default.start if start is None else None, "end": default.end if end is None else None}
        if at is not None:
            period = {"start": None, "end": None}
        panel = _load_for(ckpt, data_path, reporter, **period)
    use_threads(ckpt.config.train)
    with reporter.timed("windows"):
        ds = _dataset_for(ckpt, model, panel, reporter)
    if at is None:
        chosen = _origins(ckpt, ckpt_path, panel, ds, data_path, start, end, stride, reporter)
    else:
        chosen = _origins_at(ckpt, ckpt_path, panel, ds, at, data_path)
    with reporter.timed("forecast"):
        bt = evaluate.run(model, ds, chosen)
    _check_finite(bt.forecast, [ds.ids[int(k)] for k in bt.series], data_path)
    mode = select or ckpt.config.train.select
    choice = _choice(ckpt, ds, mode)
    with reporter.timed("score"):
        result = evaluate.score(bt, ds, season or calendar.season_length(ckpt.freq), choice)
    if choice is not None:
        scored = set(bt.series.tolist())
        mix = [name for k, name in enumerate(choice) if k in scored]
        result["selection"] = {"mode": mode, "mix": {n: mix.count(n) for n in baselines.FORECASTERS}}
    first = panel[int(bt.series[0])][1].label(int(bt.origins[0] - ds.offsets[bt.series[0]]))
    last = panel[int(bt.series[-1])][1].label(int(bt.origins[-1] - ds.offsets[bt.series[-1]]))
    result.update(
        checkpoint=str(ckpt_path),
        data=str(data_path),
        stride=stride,
        horizon=model.spec.horizon,
        targets=ckpt.targets,
        first_origin=first,
        last_origin=last,
    )
    written: dict[str, Path] = {}
    if report_path is not None:
        write_text(report_path, json.dumps(result, indent=2) + "\n")
        written["report"] = report_path
    if plot is not None:
        from lstmcast.plots import plot_evaluation

        plot_evaluation(plot, result, bt, ds)
        written["plot"] = plot
    return EvaluateOutcome(result, bt, ds, written, origin_times(bt, ds, panel))


def origin_times(bt: evaluate.Backtest, ds: Dataset, panel: frame.Panel) -> dict[str | None, np.ndarray]:
    """Per series id, the first forecast time (int64 ns; the row for step-indexed data) of each scored origin."""
    out = {}
    for s in np.unique(bt.series):
        sid, series = panel[int(s)]
        rows = bt.origins[bt.series == s] - ds.offsets[s]
        out[sid] = rows.astype(np.int64) if series.index is None else _row_times(series, rows)
    return out


def _row_times(series: frame.Series, rows: np.ndarray) -> np.ndarray:
    assert series.index is not None
    index = series.index[rows]
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").asi8


def _origins_at(
    ckpt: Checkpoint,
    source: Path,
    panel: frame.Panel,
    ds: Dataset,
    at: dict[str | None, np.ndarray],
    data_path: Path,
) -> np.ndarray:
    """The dataset rows whose first forecast times are those of `at`, where this model can forecast them."""
    spec, chosen = ckpt.spec(), []
    for i, (sid, series) in enumerate(panel):
        if sid not in at:
            continue
        local = np.arange(spec.lookback, series.rows - spec.horizon + 1)
        stamps = local if series.index is None else _row_times(series, local)
        chosen.append(local[np.isin(stamps, at[sid])] + ds.offsets[i])
    every = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    if not len(every):
        raise DataError(f"{data_path}: {source} can forecast none of the compared origins (its lookback is longer?)")
    return every


def _choice(ckpt: Checkpoint, ds: Dataset, mode: str) -> list[str] | None:
    """The forecaster predict serves each series of `ds` with, or None when that is the model everywhere."""
    sel = ckpt.selection
    if sel is None or mode == "model":
        return None
    return [sel.choice(sid, mode) or sel.overall(mode) for sid in ds.ids]


def _origins(
    ckpt: Checkpoint,
    source: Path,
    panel: frame.Panel,
    ds: Dataset,
    data_path: Path,
    start: str | None,
    end: str | None,
    stride: int,
    reporter: Reporter,
) -> np.ndarray:
    """The forecast origins (rows of the dataset) in the chosen period, every `stride`-th.

    In the test period, a series too short for its own split is skipped (and named), as in training.
    """
    spec, split = ckpt.spec(), ckpt.config.data.split
    use_test_part = start is None and ckpt.test_start is None
    if use_test_part and split.test == 0:
        raise DataError(f"{source} was trained without a test part — pass --start to choose the origins")
    chosen, skipped = [], []
    for i, (sid, series) in enumerate(panel):
        if use_test_part:  # each series' own test part, split as in training
            where = f"{data_path}" + (f": series {shown(sid)}" if sid is not None else "")
            try:
                parts = check_length(series.rows, spec.lookback, spec.horizon, split.val, split.test, where)
            except DataError:
                if len(panel) == 1:
                    raise
                skipped.append(str(sid))
                continue
            local = origins(parts, spec.lookback, spec.horizon)["test"].array()
        else:
            local = np.arange(spec.lookback, series.rows - spec.horizon + 1)
            local = local[local >= _row_at(series, start if start is not None else ckpt.test_start, "--start")]
        if end is not None:
            local = local[local + spec.horizon - 1 <= _row_at(series, end, "--end")]
        chosen.append(local[::stride] + ds.offsets[i])
    if skipped:
        reporter.info(
            f"skipped {len(skipped)} of {len(panel)} series too short for their test part "
            f"(e.g. {', '.join(shown(s, 40) for s in skipped[:3])})"
        )
        reporter.detail(f"series skipped as too short: {', '.join(shown(s, 80) for s in skipped)}")
    every = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    if not len(every):
        raise DataError(
            f"no forecast origins in {data_path} with lookback {spec.lookback} and horizon {spec.horizon} in the "
            "chosen period — widen --start/--end or supply more rows"
        )
    return every


def _row_at(series: frame.Series, when: str | int | None, flag: str) -> int:
    """The first row at or after `when` (a time, or a row number for step-indexed data)."""
    if series.index is None:
        try:
            return int(str(when))
        except ValueError:
            raise DataError(f"{flag} {shown(when)}: this data has no timestamps, give a row number") from None
    return calendar.row_at(series, str(when), flag)


# ---------------------------------------------------------------------------- inspect


def inspect_checkpoint(ckpt_path: Path, data_path: Path | None, reporter: Reporter) -> dict[str, Any]:
    """The checkpoint's card and, with data, what its gates do on that data's windows."""
    ckpt = checkpoint.load(ckpt_path)
    model = load_model(ckpt)
    spec, cfg, m = model.spec, ckpt.config, ckpt.metrics
    card: dict[str, Any] = {
        "file": str(ckpt_path),
        "lstmcast version": ckpt.lstmcast_version,
        "format version": ckpt.format_version,
        "created": ckpt.created_at or "?",
        "model": f"{spec.num_layers} × {spec.hidden_size} LSTM ({spec.cell} cell), "
        f"patch {spec.patch}, window norm {spec.norm}, dropout {spec.dropout}",
        "parameters": f"{parameter_count(model):,}",
        "window": f"lookback {spec.lookback}, horizon {spec.horizon}, stride {cfg.window.stride}",
        "train": f"loss {cfg.train.loss}, lr {cfg.train.lr}, batch {cfg.train.batch_size}, "
        f"epochs {m.get('epochs_run', '?')} of {cfg.train.epochs} (best {m.get('best_epoch', '?')}), "
        f"{m.get('train_seconds', '?')} s",
        "targets": ", ".join(ckpt.targets),
        "features": ", ".join(cfg.data.features) or "none",
        "frequency": ckpt.freq or "steps",
        "training period": " … ".join(map(str, ckpt.train_period or ["?"])),
        "data period": " … ".join(map(str, ckpt.data_period or ["?"])),
        "series": 1 if ckpt.series is None else len(ckpt.series),
    }
    if ckpt.selection is not None:
        sel, mode = ckpt.selection, cfg.train.select
        mix = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in sel.mix(mode).items())
        mase = ", ".join(
            f"{name.replace('_', ' ')} {baselines.mean(v) or float('nan'):.4g}" for name, v in sel.scores.items()
        )
        card["served by"] = f"{mix} series (train.select: {mode}; validation MASE {mase}); new series: " + sel.overall(
            mode
        ).replace("_", " ")
    card["fallback"] = f"{cfg.predict.fallback} ({serve.fallback_for(ckpt, cfg.predict.fallback).replace('_', ' ')})"
    for key in ("mae", "rmse"):
        if m.get(f"test_{key}") is not None:
            naive = m.get("seasonal_naive", {}).get(f"test_{key}", float("nan"))
            card[f"test {metrics.METRICS[key].label}"] = f"{m[f'test_{key}']:.4g} (seasonal naive {naive:.4g})"
    report: dict[str, Any] = {"card": card}
    if data_path is not None:
        report["gates"] = _gate_report(ckpt, model, data_path, reporter)
    return report


def _gate_report(ckpt: Checkpoint, model: Forecaster, data_path: Path, reporter: Reporter) -> list[dict[str, float]]:
    """Forget/input/output gate statistics per layer over up to 1,024 windows of the data."""
    from lstmcast.reference import gate_summary

    spec = model.spec
    window = spec.lookback + spec.horizon
    panel = [(sid, s) for sid, s in _load_for(ckpt, data_path, reporter) if s.rows >= window]
    if not panel:
        raise DataError(f"{data_path}: no series has {window} rows (lookback + horizon) — supply more")
    ds = _dataset_for(ckpt, model, panel, reporter)
    valid = np.concatenate([np.arange(ds.offsets[i], ds.offsets[i + 1] - window + 1) for i in range(len(ds.ids))])
    starts = valid[np.unique(np.linspace(0, len(valid) - 1, num=min(1024, len(valid))).astype(int))]
    reference = load_model(ckpt, cell="reference")
    first = reference.first if isinstance(reference, Ensemble) else reference
    with torch.no_grad():
        x = ds.data.take(torch.as_tensor(starts))[0][0]
        steps, _ = first.lstm_inputs(x)
        _, _, gates = first.lstm(steps, record_gates=True)
    layers = gate_summary(gates)
    for layer in layers:
        layer["memory_steps"] = layer["memory_length"] * spec.patch  # LSTM steps → rows of the series
        layer["memory_longest_steps"] = layer["memory_longest"] * spec.patch
    return layers
