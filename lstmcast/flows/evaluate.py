"""`lstmcast evaluate`: a rolling-origin backtest of a checkpoint, next to the naive baselines on the same origins.

model.pt + data ──read as in training──▶ series ──the checkpoint's scaler──▶ windows ──every origin
through the model in batches──▶ forecasts in original units ──▶ MAE, RMSE, sMAPE, MASE per step and
series (and as served, with the per-series selection) [──▶ report JSON] [──▶ a plot]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.atomic import check_targets, write_text
from lstmcast.data import calendar, sources
from lstmcast.data.panel import Panel, Series
from lstmcast.errors import DataError, shown
from lstmcast.forecast import backtest, partition, serve
from lstmcast.learn.dataset import Dataset
from lstmcast.learn.device import use_threads
from lstmcast.learn.split import check_length, origins
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.model.lstm import ModelSpec
from lstmcast.report import Reporter, to_json
from lstmcast.vocabulary import FORECASTERS


@dataclass
class EvaluateOutcome:
    report: dict[str, Any]  # plain data: what --json and --report write
    backtest: backtest.Backtest  # the arrays behind it, for plots and benchmarks
    dataset: Dataset
    written: dict[str, Path] = field(default_factory=dict)
    origin_times: dict[str | None, np.ndarray] = field(default_factory=dict)  # per series: scored origins' times


def evaluate_checkpoint(
    ckpt_path: Path,
    source: Any,
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
        model = ckpt.forecaster()
        source = sources.within(source, ckpt.config.data)  # a database waits at most data.timeout
        panel = partition.read_like_training(ckpt, source, reporter, **_period(ckpt, start, end, at))
    use_threads(ckpt.config.train)
    with reporter.timed("windows"):
        ds = partition.dataset_for(ckpt, model.spec, panel, reporter)
    if at is None:
        chosen = _origins(ckpt, model.spec, ckpt_path, panel, ds, source, start, end, stride, reporter)
    else:
        chosen = _origins_at(model.spec, ckpt_path, panel, ds, at, source)
    with reporter.timed("forecast"):
        bt = backtest.run(model, ds, chosen)
    serve.check_finite(bt.forecast, [ds.ids[int(k)] for k in bt.series], source)
    mode = select or ckpt.config.train.select
    choice = _choice(ckpt, ds, mode)
    with reporter.timed("score"):
        result = backtest.score(bt, ds, season or calendar.season_length(ckpt.freq), choice)
    if choice is not None:
        scored = set(bt.series.tolist())
        mix = [name for k, name in enumerate(choice) if k in scored]
        result["selection"] = {"mode": mode, "mix": {n: mix.count(n) for n in FORECASTERS}}
    first = panel[int(bt.series[0])][1].label(int(bt.origins[0] - ds.offsets[bt.series[0]]))
    last = panel[int(bt.series[-1])][1].label(int(bt.origins[-1] - ds.offsets[bt.series[-1]]))
    result.update(
        checkpoint=str(ckpt_path),
        data=str(source),
        stride=stride,
        horizon=model.spec.horizon,
        targets=ckpt.targets,
        first_origin=first,
        last_origin=last,
    )
    written = _write(result, bt, ds, report_path, plot)
    return EvaluateOutcome(result, bt, ds, written, origin_times(bt, ds, panel))


def _period(ckpt: Checkpoint, start: str | None, end: str | None, at: Any) -> dict[str, str | None]:
    """The rows to read: those training saw (data.start … data.end) unless a period or origins are chosen."""
    if at is not None:
        return {"start": None, "end": None}
    default = ckpt.config.data
    return {"start": default.start if start is None else None, "end": default.end if end is None else None}


def _write(
    result: dict[str, Any], bt: backtest.Backtest, ds: Dataset, report_path: Path | None, plot: Path | None
) -> dict[str, Path]:
    written: dict[str, Path] = {}
    if report_path is not None:
        write_text(report_path, to_json(result, indent=2) + "\n")
        written["report"] = report_path
    if plot is not None:
        from lstmcast.forecast.plots import plot_evaluation

        plot_evaluation(plot, result, bt, ds)
        written["plot"] = plot
    return written


def origin_times(bt: backtest.Backtest, ds: Dataset, panel: Panel) -> dict[str | None, np.ndarray]:
    """Per series id, the first forecast time (int64 ns; the row for step-indexed data) of each scored origin."""
    out = {}
    for s in np.unique(bt.series):
        sid, series = panel[int(s)]
        rows = bt.origins[bt.series == s] - ds.offsets[s]
        out[sid] = rows.astype(np.int64) if series.index is None else _row_times(series, rows)
    return out


def _row_times(series: Series, rows: np.ndarray) -> np.ndarray:
    assert series.index is not None
    index = series.index[rows]
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").asi8


def _origins_at(
    spec: ModelSpec,
    source: Path,
    panel: Panel,
    ds: Dataset,
    at: dict[str | None, np.ndarray],
    data_path: Path,
) -> np.ndarray:
    """The dataset rows whose first forecast times are those of `at`, where this model can forecast them."""
    chosen = []
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
    spec: ModelSpec,
    source: Path,
    panel: Panel,
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
    split = ckpt.config.data.split
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


def _row_at(series: Series, when: str | int | None, flag: str) -> int:
    """The first row at or after `when` (a time, or a row number for step-indexed data)."""
    if series.index is None:
        try:
            return int(str(when))
        except ValueError:
            raise DataError(f"{flag} {shown(when)}: this data has no timestamps, give a row number") from None
    return calendar.row_at(series, str(when), flag)
