"""Forecast a partition of whole series with a trained checkpoint: the one path every served forecast takes.

series (a Panel) ──serve.plan──▶ who serves each series ──the model (the checkpoint's scaler,
calendar and series vectors) over each series' last window──▶ forecasts in original units
──serve.served_table──▶ baselines for the other series, a non-finite model forecast moved to the fallback

`Predictor` holds a checkpoint loaded once (per process, or per worker of an engine) and what
predict was asked; `predictor(frame)` is the pure function an engine maps over partitions of a
data set — a pandas frame of whole series in (the data's columns), forecast rows out — and the
single process calls the same steps (`panel` → `forecast` → `frame`) on each batch it reads.
Everything works on arrays across series: the cost is in rows, not in the number of series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lstmcast.config import quantile_levels
from lstmcast.data import calendar, sinks
from lstmcast.data.calendar import Labels
from lstmcast.data.frame import layout, panel_of, read_batches, read_data, report_filled
from lstmcast.data.panel import Panel
from lstmcast.data.sources import Source, source_of
from lstmcast.errors import DataError, shown
from lstmcast.forecast import metrics, serve
from lstmcast.learn import scaling
from lstmcast.learn.dataset import Dataset, assemble
from lstmcast.learn.windows import EVAL_BATCH
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.model.lstm import Forecaster, ModelSpec
from lstmcast.report import Reporter

FORWARD_BATCH = 64 * EVAL_BATCH  # series whose last windows go through the model at once
# The CPU's matrix kernels round a row differently by where it falls in a block of rows (and a lone row takes a
# matrix-vector path): every forward call gets whole blocks of ALIGN rows (the last padded by repeating rows), so a
# series' forecast is the same, bit for bit, whatever batch, partition, worker or thread count computes it.
ALIGN = 64


@dataclass
class Forecast:
    """One partition's forecast: per series its horizon's labels, the value columns, the table, who served."""

    ids: list[str | None]
    labels: Labels
    columns: list[str]
    table: np.ndarray  # (series, horizon, columns) in original units
    plan: serve.Plan
    unseen: list[str] = field(default_factory=list)  # series the scaler never saw (scaled by their own history)
    notes: list[str] = field(default_factory=list)  # how the data was read (times converted to the model's zone)


@dataclass(frozen=True)
class Choices:
    """predict's flags over the checkpoint's settings (None: the checkpoint's): predict.fallback, train.select,
    predict.short_history."""

    fallback: str | None = None
    select: str | None = None
    short_history: str | None = None

    def resolved(self, ckpt: Checkpoint) -> Choices:
        p = ckpt.config.predict
        return Choices(
            self.fallback or p.fallback, self.select or ckpt.config.train.select, self.short_history or p.short_history
        )


@dataclass
class Predictor:
    """A checkpoint loaded once and predict's choices, resolved against it."""

    path: Path
    ckpt: Checkpoint
    model: Forecaster
    choices: Choices
    model_id: str  # the hash of exactly the bytes loaded: a promote swapping the file meanwhile cannot rename it

    @classmethod
    def load(cls, path: str | Path, choices: Choices = Choices()) -> Predictor:
        ckpt, model_id = checkpoint.load_with_id(path)
        return cls(Path(path), ckpt, ckpt.forecaster(), choices.resolved(ckpt), model_id)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    def panel(self, frame: pd.DataFrame, source: Source | None = None, first_row: int | None = None) -> Panel:
        """Raw rows of whole series (the data's columns) → the validated panel, read as training read it."""
        source = source or Source("the partition")
        spec, rules = layout(self.ckpt.config.data, source, **self.rules())
        return panel_of(frame, source, spec, rules, first_row)

    def rules(self) -> dict[str, Any]:
        """How predict reads data: the model's frequency, and the horizon's future rows when it has future features."""
        d = self.ckpt.config.data
        future = self.spec.horizon if d.future_features else 0
        freq = self.ckpt.freq or "auto"
        return {"future_rows": future, "freq": freq, "freq_from": "the model's frequency", "last_observed": True}

    def batches(self, source: Source, batch_rows: int) -> Iterator[tuple[Panel, Forecast]]:
        """Each batch of whole series of `source` (read as in training), and its forecast."""
        for panel in read_batches(self.ckpt.config.data, source, batch_rows, **self.rules()):
            yield panel, self.forecast(panel, None, source)

    def forecast(self, panel: Panel, reporter: Reporter | None = None, source: Any = "the data") -> Forecast:
        return forecast(self.ckpt, self.model, panel, reporter, self.choices, source)

    def frame(self, made: Forecast) -> pd.DataFrame:
        """The forecast rows: [series id,] time label, one column per target (and quantile), forecaster."""
        d = self.ckpt.config.data
        series_col = d.series_id if self.ckpt.series or len(made.ids) > 1 else None
        label = d.timestamp or "step"
        return sinks.forecast_frame(made.labels, made.columns, made.table, label, made.ids, series_col, made.plan.names)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pure function an engine maps over partitions of whole series: rows in, forecast rows out."""
        return self.frame(self.forecast(self.panel(frame)))


def served_only(made: Forecast) -> Forecast:
    """`made` without its values: who served which series (what a run's summary needs), not the forecasts."""
    labels = Labels(np.empty((len(made.ids), 0), np.int64), made.labels.unit, made.labels.tz, made.labels.name)
    empty = np.empty((len(made.ids), 0, 0))
    return Forecast(made.ids, labels, made.columns, empty, made.plan, made.unseen, made.notes)


def join(parts: list[Forecast]) -> Forecast:
    """Several batches' forecasts as one: their series one after another, in one concatenation."""
    if len(parts) == 1:
        return parts[0]
    ids = [sid for made in parts for sid in made.ids]
    names = [name for made in parts for name in made.plan.names]
    plan = serve.Plan(names, {})
    start = 0
    for made in parts:
        for reason, where in made.plan.why.items():
            plan.why.setdefault(reason, []).extend(start + i for i in where)
        start += len(made.ids)
    first = parts[0].labels
    labels = Labels(np.concatenate([m.labels.values for m in parts]), first.unit, first.tz, first.name)
    table = np.concatenate([m.table for m in parts])
    notes = list(dict.fromkeys(note for m in parts for note in m.notes))
    return Forecast(ids, labels, parts[0].columns, table, plan, [u for m in parts for u in m.unseen], notes)


def read_like_training(
    ckpt: Checkpoint,
    source: Any,
    reporter: Reporter,
    only: list[str] | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
) -> Panel:
    """Read data the way the checkpoint's training data was read: same columns, frequency and gap policy."""
    d = ckpt.config.data
    panel = read_data(d, source, freq=ckpt.freq or "auto", start=start, end=end, freq_from="the model's frequency")
    panel = only_series(panel, only, source)
    panel, note = calendar.on_clock_of(panel, ckpt.time_zone, ckpt.calendar, source)
    if note:
        reporter.info(note)
    report_filled(panel, reporter, d.missing)
    return panel


def only_series(panel: Panel, only: list[str] | None, source: Any) -> Panel:
    """The series named by --series (all without it); a name the data lacks is a DataError."""
    if not only:
        return panel
    where = panel.positions(only)
    if (where < 0).any():
        known = sorted(str(s) for s in panel.ids)
        examples = ", ".join(shown(sid, 40) for sid in known[:3])
        absent = only[int(np.flatnonzero(where < 0)[0])]
        raise DataError(f"{source}: no series {shown(absent)} — it has {len(panel)} series, e.g. {examples}")
    return panel.take(np.sort(np.unique(where)))


def dataset_for(
    ckpt: Checkpoint, spec: ModelSpec, panel: Panel, reporter: Reporter | None, keep_last: int | None = None
) -> Dataset:
    """Scale and window data for a trained model: its scaler, calendar and series embedding (`keep_last`: only
    each series' last rows, see `assemble`)."""
    codes = None
    if spec.embeds:
        where = pd.Index(ckpt.series or [None]).get_indexer(list(panel.ids))
        if (where < 0).any():
            unknown = panel.ids[int(np.flatnonzero(where < 0)[0])]
            raise DataError(
                f"series {shown(unknown)} was not in the training data and the model learned one vector per series "
                "(model.series_embedding) — retrain including it"
            )
        codes = where
    ds = assemble(
        panel,
        ckpt.scaler,
        lookback=spec.lookback,
        horizon=spec.horizon,
        calendar=ckpt.calendar,
        n_future_features=len(ckpt.config.data.future_features),
        series_codes=codes,
        keep_last=keep_last,
    )
    if ds.unseen and reporter is not None:
        reporter.warning(
            f"{len(ds.unseen)} series not seen in training (e.g. {shown(ds.unseen[0])}) are scaled by their own history"
        )
    return ds


def forecast(
    ckpt: Checkpoint,
    model: Forecaster,
    panel: Panel,
    reporter: Reporter | None,
    choices: Choices,
    source: Any,
) -> Forecast:
    """The horizon after each series' last row, by the forecaster `serve` chooses for it.

    `choices` come from the checkpoint or the command line (predict.fallback not yet resolved). With fallback
    `error`, a series the model cannot serve ends the run; with short_history `error`, so does a series the model
    trained on arriving shorter than its lookback (or most series of the batch arriving so).
    """
    spec = model.spec
    panel, note = calendar.on_clock_of(panel, ckpt.time_zone, ckpt.calendar, source)
    fallback = serve.fallback_for(ckpt, str(choices.fallback))
    plan = serve.plan(ckpt, spec, panel, fallback, str(choices.select))
    if fallback == "error":  # every series the model cannot serve, named
        serve.refuse(plan, panel, spec, source)
    if choices.short_history == "error":
        serve.check_history(ckpt, spec, panel, plan, source)
    labels = calendar.panel_labels(panel, spec.horizon)
    unseen: list[str] = []

    def model_rows(positions: list[int]) -> np.ndarray:
        sub = panel if len(positions) == len(panel) else panel.take(positions)
        ds = dataset_for(ckpt, spec, sub, None, keep_last=spec.lookback)  # the model reads the last window only
        unseen.extend(ds.unseen)
        return _model_table(ckpt, model, sub, ds, Labels(labels.values[positions], labels.unit, labels.tz))

    table = serve.served_table(ckpt, spec, panel, plan, fallback, model_rows, source)
    made = Forecast(list(panel.ids), labels, columns(ckpt), table, plan, unseen, [note] if note else [])
    if reporter is not None:
        describe(made, reporter, len(panel))
    return made


def describe(made: Forecast, reporter: Reporter, series: int) -> None:
    """The log lines of a forecast: how its data was read, series scaled by their own history, and who a baseline
    served and why."""
    for note in made.notes:
        reporter.info(note)
    if made.unseen:
        reporter.warning(
            f"{len(made.unseen)} series not seen in training (e.g. {shown(made.unseen[0])}) are scaled by their own "
            "history"
        )
    for reason, line in serve.describe(made.plan, made.ids, series):  # a model failing on its inputs: a warning
        (reporter.warning if reason == "not_finite" else reporter.info)(line)
    if any(len(where) > 3 for where in made.plan.why.values()):  # those lines named only three
        for _, line in serve.describe(made.plan, made.ids, series, most=None):
            reporter.detail(line)


def columns(ckpt: Checkpoint) -> list[str]:
    """The forecast's value columns: one per target, then one per target and quantile level."""
    names = list(ckpt.targets)
    for level in quantile_levels(ckpt.config.train):
        names += [f"{t}_{metrics.quantile_name(level)}" for t in ckpt.targets]
    return names


def _model_table(ckpt: Checkpoint, model: Forecaster, panel: Panel, ds: Dataset, labels: Labels) -> np.ndarray:
    """(series, horizon, columns) model forecasts from each series' last window, in original units."""
    spec = model.spec
    ends = ds.offsets[1:]  # one past each series' last row
    future = _future_inputs(ckpt, panel, ds, labels) if spec.n_future else None
    x = ds.data.rows[torch.as_tensor((ends - spec.lookback)[:, None] + np.arange(spec.lookback))]  # (S, lookback, C)
    series_codes = ds.data.series_of_row[torch.as_tensor(ends - 1)] if ds.data.series_of_row is not None else None
    parts = []
    with torch.no_grad():
        for begin in range(0, len(x), FORWARD_BATCH):
            rows = np.arange(begin, min(begin + FORWARD_BATCH, len(x)))
            padded = torch.as_tensor(np.resize(rows, -(-len(rows) // ALIGN) * ALIGN))
            codes = None if series_codes is None else series_codes[padded]
            out = model(x[padded], None if future is None else future[padded], codes)
            parts.append(out[: len(rows)].numpy())
    raw = np.concatenate(parts)  # (S, horizon, nt[, Q])
    nt, series_index = spec.n_targets, np.arange(len(panel))
    if not spec.quantiles:
        return scaling.inverse_rows(raw, ds.mean, ds.std, series_index, slice(0, nt))
    per_level = scaling.inverse_rows(np.moveaxis(raw, -1, 1), ds.mean, ds.std, series_index, slice(0, nt))
    return np.concatenate([per_level[:, spec.median], *[per_level[:, q] for q in range(len(spec.quantiles))]], axis=-1)


def _future_inputs(ckpt: Checkpoint, panel: Panel, ds: Dataset, labels: Labels) -> torch.Tensor:
    """(series, horizon, n_future): the given future features, scaled like training, then the calendar."""
    n_ff = len(ckpt.config.data.future_features)
    parts = []
    if n_ff:
        assert panel.future is not None
        cols = slice(len(panel.columns) - n_ff, len(panel.columns))
        parts.append(((panel.future - ds.mean[:, None, cols]) / ds.std[:, None, cols]).astype(np.float32))
    if ckpt.calendar:
        stamps = labels.values
        parts.append(calendar.features_at(stamps, panel, ckpt.calendar).reshape(*stamps.shape, -1))
    return torch.from_numpy(np.concatenate(parts, axis=-1))


def source_for(data: Any, ckpt: Checkpoint) -> Source:
    """--data as a Source; a database URL given without --query reads the checkpoint's data.query."""
    return source_of(data, ckpt.config.data.query)
