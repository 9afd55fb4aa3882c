"""`lstmcast predict`: the horizon after every series' last row, written as a file or rows, and archived.

model.pt + data ──read as in training──▶ series ──forecast.partition──▶ forecasts in original units,
a forecaster per series ──sinks──▶ CSV · Parquet · table [──▶ the archive] [──▶ a plot]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.atomic import check_targets, render_path
from lstmcast.config import quantile_levels
from lstmcast.data import archive, calendar, db, frame, sinks, sources
from lstmcast.errors import ConfigError, OutputError
from lstmcast.forecast import partition, serve
from lstmcast.learn.device import use_threads
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.report import Reporter

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


def predict(
    ckpt_path: Path,
    source: Any,
    out_path: Any,
    reporter: Reporter,
    only: list[str] | None = None,
    plot: Path | None = None,
    *,
    fallback: str | None = None,
    select: str | None = None,
    archive_flag: str | None = None,
    no_archive: bool = False,
) -> PredictOutcome:
    """Forecast the horizon after each series' last row; write it (and the plot when asked); archive it.

    Every series gets a forecast: from the model, or from the baseline `serve` chooses
    (`fallback`/`select` override the checkpoint's predict.fallback/train.select). The run is
    recorded in the archive `archive.resolve` names unless `no_archive`.
    """
    check_targets(out_path if out_path is not None else Path(ckpt_path).parent / "forecast.csv", plot)  # before work
    with reporter.timed("load"):
        ckpt, loaded = checkpoint.load_with_id(ckpt_path)  # the id of exactly the bytes loaded keys every row
        model = ckpt.forecaster()
        store = _archive_for(ckpt, archive_flag, no_archive)
        source, out_path = sources.within(source, ckpt.config.data), sinks.bound(out_path, loaded, ckpt.config.data)
        panel = partition.read_like_training(ckpt, source, reporter, only, future_rows=model.spec.horizon)
    use_threads(ckpt.config.train)
    fallback, select = fallback or ckpt.config.predict.fallback, select or ckpt.config.train.select
    made = partition.forecast(ckpt, model, panel, reporter, fallback=fallback, select=select, source=source)
    labels, table = made.labels, made.table
    out = (
        render_path(out_path, origin=labels[0][0]) if out_path is not None else Path(ckpt_path).parent / "forecast.csv"
    )
    d = ckpt.config.data
    series_col = d.series_id if ckpt.series or len(panel) > 1 else None
    ids = [sid for sid, _ in panel]
    with reporter.timed("write"):
        sinks.write_forecast(out, labels, made.columns, table, d.timestamp or "step", ids, series_col, made.plan.names)
    written: dict[str, Any] = {"forecast": out}
    if store is not None:
        with reporter.timed("archive"):
            rows = _archive_run(store, ckpt, (ckpt_path, loaded), panel, labels, table, made.plan.names, out)
        reporter.info(f"archived {rows} forecast rows in {store}")
        written["archive"] = db.redacted(store.url)
    if plot is not None:
        _plot_forecast(plot, ckpt, panel, labels, made.columns, table, reporter)
        written["plot"] = plot
    last = max(lab[-1] for lab in labels)
    served = {"forecasters": made.plan.counts(), "not_model": serve.examples(made.plan, panel)}
    return PredictOutcome(out, model.spec.horizon, str(labels[0][0]), str(last), len(panel), written, served)


def _archive_for(ckpt: Checkpoint, flag: str | None, off: bool) -> archive.Archive | None:
    """The archive this run records into, checked before any work; only data with timestamps can be archived."""
    store = archive.resolve(flag, off=off, configured=ckpt.config.archive.url, timeout=ckpt.config.archive.timeout)
    if store is not None and ckpt.freq is None:
        raise ConfigError(
            "--archive needs data with timestamps (data.timestamp): forecasts are matched to actuals by time — "
            "drop --archive (or unset LSTMCAST_ARCHIVE / archive.url)"
        )
    return store


def _archive_run(
    store: archive.Archive,
    ckpt: Checkpoint,
    issued_by: tuple[Path, str],  # the checkpoint's path and the id of the bytes loaded from it
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
        model_id=issued_by[1],
        checkpoint=str(Path(issued_by[0]).resolve()),
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
        time_zone="" if labels[0].tz is None else str(labels[0].tz),
    )
    try:
        return store.record(run)
    except OutputError as exc:
        raise OutputError(f"the forecast was written to {out}, but {exc}") from None


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
    from lstmcast.forecast.plots import ForecastPanel, plot_forecast

    if len(panel) > MAX_PLOTTED_SERIES:
        reporter.warning(
            f"--plot draws the first {MAX_PLOTTED_SERIES} of {len(panel)} series; choose others with --series"
        )
    nt, horizon = len(ckpt.targets), len(labels[0])
    panels = []
    for i, (sid, series) in enumerate(panel[: MAX_PLOTTED_SERIES if len(panel) > 1 else 1]):
        recent = slice(max(0, series.rows - 3 * horizon), series.rows)
        history_x = series.index[recent] if series.index is not None else np.arange(series.rows)[recent]
        title = "" if sid is None else f"series {sid}"
        columns_i = dict(zip(columns, table[i].T, strict=True))
        panels.append(ForecastPanel(title, history_x, series.values[recent, :nt], labels[i], columns_i, ckpt.targets))
    plot_forecast(path, panels)
