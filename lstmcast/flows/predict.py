"""`lstmcast predict`: the horizon after every series' last row, written as a file, a data set or rows, and archived.

model.pt + data ──read as in training, a batch of whole series at a time (a Parquet data set streams)──▶
series ──forecast.partition──▶ forecasts in original units, a forecaster per series ──sinks──▶
CSV · Parquet · a Parquet data set (a folder) · table [──▶ the archive] [──▶ a plot]

The output appears whole or not at all: a batch that fails ends the run with nothing written.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.atomic import check_targets, render_path
from lstmcast.config import quantile_levels
from lstmcast.data import archive, calendar, db, sinks, sources
from lstmcast.data.frame import read_batches
from lstmcast.data.panel import Panel
from lstmcast.errors import ConfigError, DataError, OutputError, shown
from lstmcast.forecast import partition, serve
from lstmcast.forecast.partition import Choices, Forecast, Predictor
from lstmcast.learn.device import use_threads
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.report import Reporter

MAX_PLOTTED_SERIES = 6  # panels in one predict --plot
BATCH_ROWS = 2_000_000  # input rows read, validated and forecast at a time (whole series): bounds the memory


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
class _Run:
    """What a predict run gathers over its batches: how many series, who served them, what to archive."""

    predictor: Predictor
    source: Any
    only: list[str] | None
    keep_tables: bool  # the archive needs every forecast; otherwise only who served which series is kept
    series: int = 0  # series forecast
    seen: int = 0  # series in the data (before --series)
    examples: list[str] = field(default_factory=list)  # a few of them, for a --series that is not there
    filled: list[int] = field(default_factory=lambda: [0, 0])
    last: int | None = None
    parts: list[Forecast] = field(default_factory=list)
    found: set[str] = field(default_factory=set)  # the --series found so far
    plotted: tuple[Panel, Forecast] | None = None
    short: int = 0  # series shorter than the lookback
    short_example: tuple[str | None, int] | None = None  # the first: its id and rows

    def batches(self, batch_rows: int) -> Iterator[Forecast]:
        """Each batch of whole series, read as in training, forecast."""
        d = self.predictor.ckpt.config.data
        for panel in read_batches(d, self.source, batch_rows, **self.predictor.rules()):
            self.seen += len(panel)
            self.examples = self.examples or sorted(str(s) for s in panel.ids)[:3]
            if self.only:
                panel = panel.take(np.flatnonzero(np.isin(np.asarray(panel.ids, dtype=object), self.only)))
                self.found.update(str(s) for s in panel.ids)
                if not len(panel):
                    continue
            made = self.predictor.forecast(panel, None, self.source)
            self._count(panel, made)
            yield made

    def _count(self, panel: Panel, made: Forecast) -> None:
        self.series += len(panel)
        self.filled[0] += int(panel.filled_rows.sum())
        self.filled[1] += int(panel.filled_cells.sum())
        last = int(made.labels.values[:, -1].max())
        self.last = last if self.last is None else max(self.last, last)
        self.parts.append(made if self.keep_tables else partition.served_only(made))
        short = made.plan.why.get("short", [])
        self.short += len(short)
        if short and self.short_example is None:
            self.short_example = (made.ids[short[0]], int(panel.lengths[short[0]]))
        if self.plotted is None:
            self.plotted = (panel, made)

    def check_short(self) -> None:
        """With predict.short_history error, most series shorter than the lookback refuse the run."""
        if self.short_example is not None and self.predictor.choices.short_history == "error":
            lookback = self.predictor.spec.lookback
            serve.check_most_short(self.short, self.series, self.short_example, lookback, self.source)

    def check_found(self) -> None:
        """Every --series was in the data."""
        absent = [sid for sid in self.only or [] if sid not in self.found]
        if absent:
            examples = ", ".join(shown(sid, 40) for sid in self.examples)
            raise DataError(f"{self.source}: no series {shown(absent[0])} — it has {self.seen} series, e.g. {examples}")


def predict(
    ckpt_path: Path,
    source: Any,
    out_path: Any,
    reporter: Reporter,
    only: list[str] | None = None,
    plot: Path | None = None,
    *,
    choices: Choices | None = None,
    archive_flag: str | None = None,
    no_archive: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> PredictOutcome:
    """Forecast the horizon after each series' last row; write it (and the plot when asked); archive it.

    Every series gets a forecast: from the model, or from the baseline `serve` chooses
    (`choices` override the checkpoint's predict.fallback, train.select, predict.short_history). The run is
    recorded in the archive `archive.resolve` names unless `no_archive`.
    """
    check_targets(out_path if out_path is not None else Path(ckpt_path).parent / "forecast.csv", plot)  # before work
    with reporter.timed("load"):
        predictor = Predictor.load(ckpt_path, choices or Choices())  # its model_id: exactly the bytes loaded
        store = archive_target(predictor.ckpt, archive_flag, no_archive)
        source, out_path = _bound(predictor, source, out_path)
    use_threads(predictor.ckpt.config.train)
    run = _Run(predictor, source, only, keep_tables=store is not None)
    batches = run.batches(batch_rows)
    with reporter.timed("forecast"):
        first = next(batches, None)
    if first is None:  # only --series can leave nothing to forecast
        run.check_found()
        raise DataError(f"{source}: none of the series of --series is in the data")
    out = (
        render_path(out_path, origin=first.labels.first())
        if out_path is not None
        else Path(ckpt_path).parent / "forecast.csv"
    )
    d = predictor.ckpt.config.data
    series_col = d.series_id if predictor.ckpt.series or len(first.ids) > 1 else None
    with reporter.timed("write"), sinks.streamed(out, d.timestamp or "step", series_col) as write:
        for made in itertools.chain([first], batches):
            write(predictor.frame(made))
        run.check_short()  # before the file is swapped in: a refused run writes nothing
    run.check_found()
    merged = partition.join(run.parts)
    _report(run, merged, reporter)
    written: dict[str, Any] = {"forecast": out}
    if store is not None:
        with reporter.timed("archive"):
            rows = _archive_run(store, predictor, merged, out)
        reporter.info(f"archived {rows} forecast rows in {store}")
        written["archive"] = db.redacted(store.url)
    if plot is not None and run.plotted is not None:
        _plot_forecast(plot, predictor.ckpt, *run.plotted, reporter)
        written["plot"] = plot
    served = {"forecasters": merged.plan.counts(), "not_model": serve.examples(merged.plan, merged.ids)}
    last = first.labels.label(int(run.last or 0))
    return PredictOutcome(
        out, predictor.spec.horizon, str(first.labels.first()), str(last), run.series, written, served
    )


def _report(run: _Run, merged: Forecast, reporter: Reporter) -> None:
    """The run's log lines: filled gaps, series scaled by their own history, baselines serving some series."""
    rows, cells = run.filled
    if rows or cells:
        reporter.info(f"filled {rows} missing rows and {cells} empty cells ({run.predictor.ckpt.config.data.missing})")
    partition.describe(merged, reporter, run.series)


def archive_target(ckpt: Checkpoint, flag: str | None, off: bool) -> archive.Archive | None:
    """The archive this run records into, checked before any work; only data with timestamps can be archived."""
    store = archive.resolve(flag, off=off, configured=ckpt.config.archive.url, timeout=ckpt.config.archive.timeout)
    if store is not None and ckpt.freq is None:
        raise ConfigError(
            "--archive needs data with timestamps (data.timestamp): forecasts are matched to actuals by time — "
            "drop --archive (or unset LSTMCAST_ARCHIVE / archive.url)"
        )
    return store


def _bound(predictor: Predictor, source: Any, out: Any) -> tuple[Any, Any]:
    """The source and a forecast table waiting at most the checkpoint's data.timeout; the table's rows keyed by
    the id of the bytes loaded."""
    data = predictor.ckpt.config.data
    return sources.within(source, data), sinks.bound(out, predictor.model_id, data)


def _archive_run(store: archive.Archive, predictor: Predictor, made: Forecast, out: Any) -> int:
    """Record this run's forecasts; a failure says the forecast itself was written."""
    ckpt = predictor.ckpt
    d, nt = ckpt.config.data, len(ckpt.targets)
    levels = {}
    if ckpt.scaler.kind == "standard":
        mean, std, unseen = ckpt.scaler.lookup(made.ids)
        for k in np.flatnonzero(~unseen).tolist():
            sid = made.ids[k]
            levels["" if sid is None else str(sid)] = [mean[k, :nt].tolist(), std[k, :nt].tolist()]
    run = archive.Issued(
        model_id=predictor.model_id,
        checkpoint=str(Path(predictor.path).resolve()),
        freq=str(ckpt.freq),
        season=calendar.season_length(ckpt.freq),
        horizon=made.table.shape[1],
        timestamp_col=str(d.timestamp),
        series_col=d.series_id,
        targets=list(ckpt.targets),
        quantiles=list(quantile_levels(ckpt.config.train)),
        levels=levels,
        ids=["" if sid is None else str(sid) for sid in made.ids],
        times=made.labels.utc(),
        values=made.table,
        forecasters=made.plan.names,
        time_zone="" if made.labels.tz is None else str(made.labels.tz),
    )
    try:
        return store.record(run)
    except OutputError as exc:
        raise OutputError(f"the forecast was written to {out}, but {exc}") from None


def archive_frame(store: archive.Archive, predictor: Predictor, frame: Any, out: Any) -> int:
    """Archive a forecast read back as rows (what an engine wrote): `horizon` rows a series, in time order."""
    import pandas as pd

    d, horizon = predictor.ckpt.config.data, predictor.spec.horizon
    label = d.timestamp or "step"
    key = d.series_id if d.series_id in frame.columns else None
    frame = frame.sort_values([key, label] if key else [label], kind="stable")
    series = len(frame) // horizon
    times = pd.DatetimeIndex(frame[label])
    utc = (times.tz_convert("UTC").tz_localize(None) if times.tz is not None else times).as_unit("ns").asi8
    columns = partition.columns(predictor.ckpt)
    made = Forecast(
        ids=frame[key].astype(str).to_numpy()[::horizon].tolist() if key else [None],
        labels=calendar.Labels(utc.reshape(series, horizon), "ns"),
        columns=columns,
        table=frame[columns].to_numpy(dtype=np.float64).reshape(series, horizon, len(columns)),
        plan=serve.Plan(frame["forecaster"].astype(str).to_numpy()[::horizon].tolist()),
    )
    return _archive_run(store, predictor, made, out)


def _plot_forecast(path: Path, ckpt: Checkpoint, panel: Panel, made: Forecast, reporter: Reporter) -> None:
    """The recent history and the forecast of the first series (or those chosen with --series), named."""
    from lstmcast.forecast.plots import ForecastPanel, plot_forecast

    if len(panel) > MAX_PLOTTED_SERIES:
        reporter.warning(
            f"--plot draws the first {MAX_PLOTTED_SERIES} of {len(panel)} series; choose others with --series"
        )
    nt, horizon = len(ckpt.targets), made.table.shape[1]
    panels = []
    for i in range(MAX_PLOTTED_SERIES if len(panel) > 1 else 1):
        if i >= len(panel):
            break
        sid, series = panel[i]
        recent = slice(max(0, series.rows - 3 * horizon), series.rows)
        history_x = series.index[recent] if series.index is not None else np.arange(series.rows)[recent]
        title = "" if sid is None else f"series {sid}"
        columns_i = dict(zip(made.columns, made.table[i].T, strict=True))
        labels = made.labels.of(i)
        panels.append(ForecastPanel(title, history_x, series.values[recent, :nt], labels, columns_i, ckpt.targets))
    plot_forecast(path, panels)
