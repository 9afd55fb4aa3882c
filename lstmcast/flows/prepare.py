"""The first step of training, shared with `lstmcast validate`: load and check the config's data, split it.

config ──data.path, read and validated──▶ series (too-short ones skipped and named) ──split──▶ train |
validation | test rows per series; the model's data-decided dimensions; the memory the run will need.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast.config import Config
from lstmcast.data import calendar, sources
from lstmcast.data.frame import read_data, report_filled
from lstmcast.data.panel import Panel
from lstmcast.errors import ConfigError, shown
from lstmcast.learn import resources
from lstmcast.learn.device import device_for
from lstmcast.learn.split import Split, check_length
from lstmcast.learn.split import by_length as split_by_length
from lstmcast.learn.split import parts as split_parts
from lstmcast.model.lstm import Dims, expected_shapes, spec_for
from lstmcast.report import Reporter


@dataclass
class Prepared:
    panel: Panel
    splits: list[Split]
    data_path: sources.Source
    calendar: list[str]
    skipped: list[str]

    @property
    def rows(self) -> int:
        return len(self.panel.values)

    @property
    def freq(self) -> str | None:
        return self.panel.freq


def prepare(cfg: Config, reporter: Reporter) -> Prepared:
    """Load and validate the config's data; every series kept is long enough for every split."""
    d, w = cfg.data, cfg.window
    if d.path is None:
        raise ConfigError(
            "data.path is not set — add it to the config or pass --data CSV (or a Parquet file, or a URL)"
        )
    if not d.target:
        raise ConfigError("data.target is not set — name the column (or list of columns) to forecast")
    data_path = sources.within(sources.source_of(d.path, d.query), d)  # a database waits at most data.timeout
    panel = read_data(d, data_path, freq=d.freq, start=d.start, end=d.end)
    report_filled(panel, reporter, d.missing)
    if len(panel) == 1:  # one series too short is the error, named by its source
        check_length(int(panel.lengths[0]), w.lookback, w.horizon, d.split.val, d.split.test, str(data_path))
    found = split_by_length(panel.lengths, w.lookback, w.horizon, d.split.val, d.split.test)
    fits = np.array([split is not None for split in found], dtype=bool)
    if not fits.any():
        longest = int(panel.lengths.max())
        check_length(longest, w.lookback, w.horizon, d.split.val, d.split.test, f"{data_path}: the longest series")
    skipped = [str(panel.ids[k]) for k in np.flatnonzero(~fits).tolist()]
    kept = panel if fits.all() else panel.take(np.flatnonzero(fits))
    splits = [split for split in found if split is not None]
    if skipped:
        reporter.info(
            f"skipped {len(skipped)} of {len(panel)} series too short for lookback + horizon in every split "
            f"(e.g. {', '.join(shown(s, 40) for s in skipped[:3])}; all are listed in metrics.json)"
        )
        reporter.detail(f"series skipped as too short: {', '.join(shown(s, 80) for s in skipped)}")
    names = calendar.calendar_names(d.calendar, kept.freq) if d.timestamp else []
    return Prepared(kept, splits, data_path, names, skipped)


def model_dims(cfg: Config, prep: Prepared) -> Dims:
    """The model's data-decided dimensions: value columns plus a sine/cosine pair per calendar input."""
    first = prep.panel[0][1]
    calendar_columns = 2 * len(prep.calendar)
    return Dims(
        n_inputs=len(first.columns) + calendar_columns,
        n_targets=first.n_targets,
        n_future=len(cfg.data.future_features) + calendar_columns,
        n_series=len(prep.panel),
    )


def check_memory(cfg: Config, prep: Prepared, dims: Dims) -> None:
    """Refuse, before allocating, a run whose model, data or activations cannot fit in memory."""
    spec = spec_for(cfg, dims)
    resources.check(
        resources.training_needs(
            parameters=sum(math.prod(shape) for shape in expected_shapes(spec).values()),
            members=cfg.train.ensemble,
            rows=prep.rows,
            columns=dims.n_inputs,
            batch=cfg.train.batch_size,
            steps=cfg.window.lookback // cfg.model.patch,
            hidden=cfg.model.hidden_size,
            layers=cfg.model.num_layers,
        )
    )


def data_fingerprint(panel: Panel) -> str:
    """A digest of the series' ids and values: --resume must continue on the same data."""
    digest = hashlib.sha256()
    digest.update("\x00".join(str(sid) for sid in panel.ids).encode())
    digest.update(np.ascontiguousarray(panel.offsets).data)
    digest.update(np.ascontiguousarray(panel.values).data)  # the bytes, without copying them
    return digest.hexdigest()[:16]


def validate(cfg: Config, reporter: Reporter) -> dict[str, Any]:
    """Check the config and data as `train` would, without training; a summary of what it found."""
    device_for(cfg.train)
    prep = prepare(cfg, reporter)
    check_memory(cfg, prep, model_dims(cfg, prep))
    w = cfg.window
    windows = {
        k: len(v) for k, v in split_parts(prep.splits, prep.panel.offsets, w.lookback, w.horizon, w.stride).items()
    }
    first = prep.panel[0][1]
    summary: dict[str, Any] = {"data": str(prep.data_path), "rows": prep.rows, "freq": prep.freq or "steps"}
    if len(prep.panel) > 1:
        summary["series"] = f"{len(prep.panel)} kept, {len(prep.skipped)} too short"
    else:
        summary["period"] = f"{first.label(0)} … {first.label(first.rows - 1)}"
        sp = prep.splits[0]
        summary["split rows"] = f"train {sp.train}, validation {sp.val}, test {sp.test}"
    summary["filled"] = f"{int(prep.panel.filled_rows.sum())} rows, {int(prep.panel.filled_cells.sum())} cells"
    summary["calendar"] = ", ".join(prep.calendar) or "none"
    summary["windows"] = ", ".join(f"{k} {v}" for k, v in windows.items())
    if prep.skipped:
        summary["skipped series"] = ", ".join(prep.skipped[:10]) + (" …" if len(prep.skipped) > 10 else "")
    return summary
