"""Raw frame (CSV, Parquet or query rows) → validated, regular, gap-filled series as numpy arrays (`Series`; many in a `Panel`).

Owns what is checked and repaired once `readers` has read the file: series ids, sorting,
duplicate times, the data.start/data.end range, the frequency and its grid (`Grid`), the rows
that give the known future, and filling gaps and empty cells. Every problem becomes a `DataError`
naming the source (and series), column and row (for a CSV, 1-based line numbers as an editor
shows them, the header being line 1; for Parquet and query results, 1-based row numbers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast.config import DataConfig
from lstmcast.data import fast
from lstmcast.data.grid import Grid, Rules, gap_error, onto_grid, regularise, resolve_freq, share_error
from lstmcast.data.panel import Panel, Series, Spec, concatenate
from lstmcast.data.readers import Lines, numeric_values, parse_times, return_freed_memory
from lstmcast.data.sources import Source, batches, read_source, source_of
from lstmcast.errors import DataError, shown
from lstmcast.report import Reporter


def load_series(path: str | Path | Source, **options: Any) -> Series:
    """Read, validate, sort, regularise and gap-fill one series from a source (`load_panel` options)."""
    return load_panel(path, series_id=None, **options).series(0)


def read_data(d: DataConfig, path: Path | Source, **rules: Any) -> Panel:
    """The series of `path` read with data config `d`'s columns and gap policy; `rules` add frame's options
    that differ between training (freq, start, end) and inference (the model's frequency, future rows)."""
    return load_panel(
        path,
        series_id=d.series_id,
        timestamp=d.timestamp,
        target=d.target,
        features=d.features,
        future_features=d.future_features,
        missing=d.missing,
        max_gap=d.max_gap,  # checkpoints store the whole config; older ones read back with the defaults
        max_filled=d.max_filled,
        query=d.query,  # a database URL given without --query reads what the config (or checkpoint) names
        **rules,
    )


def read_batches(d: DataConfig, source: Source, batch_rows: int, **rules: Any) -> Iterator[Panel]:
    """The series of `source` as panels of whole series of about `batch_rows` rows each (a Parquet data set
    streams: memory is bounded by a batch), read as `read_data` reads them."""
    source = source_of(source, d.query)  # a database URL without a query reads the config's (or checkpoint's)
    spec, rules_ = layout(d, source, **rules)
    wanted = [c for c in (spec.series_id, spec.timestamp) if c] + spec.value_cols
    for first, frame in batches(source, wanted, spec.value_cols, spec.timestamp, spec.series_id, batch_rows):
        yield panel_of(frame, source, spec, rules_, first)


def layout(
    d: DataConfig,
    source: Source,
    *,
    future_rows: int = 0,
    freq: str = "auto",
    start: str | None = None,
    end: str | None = None,
    freq_from: str = "data.freq",
    last_observed: bool = False,
) -> tuple[Spec, Rules]:
    """What to read of data config `d`'s data and by which rules (read_data's `rules`)."""
    spec = Spec(
        list(d.target) + list(d.features) + list(d.future_features),
        len(d.target),
        len(d.future_features),
        future_rows,
        d.series_id,
        d.timestamp,
    )
    rules = Rules(freq, freq_from, d.missing, start, end, d.max_gap, d.max_filled, last_observed, source.row_word)
    return spec, rules


def report_filled(panel: Panel, reporter: Reporter, missing: str) -> None:
    rows, cells = int(panel.filled_rows.sum()), int(panel.filled_cells.sum())
    if rows or cells:
        reporter.info(f"filled {rows} missing rows and {cells} empty cells ({missing})")


def load_panel(
    path: str | Path | Source,
    *,
    series_id: str | None,
    timestamp: str | None,
    target: list[str],
    features: list[str],
    future_features: list[str] = (),
    future_rows: int = 0,
    freq: str = "auto",
    missing: str = "interpolate",
    start: str | None = None,
    end: str | None = None,
    max_gap: int = DataConfig.max_gap,
    max_filled: float = DataConfig.max_filled,
    freq_from: str = "data.freq",
    last_observed: bool = False,
    query: str | None = None,
) -> Panel:
    """Every series of a CSV (long format when `series_id` names a column), each validated on its own.

    Series come sorted by id; all share one frequency. Errors name the series. With `future_rows`
    (predict with known-future covariates), each series' rows after its last target value hold the
    `future_features` of the rows to forecast; they are split off into `Series.future`. Gap filling
    may fill at most `max_gap` rows in a row and a `max_filled` share of a series' rows; with
    `last_observed` (predict), each series' last row must have its targets. `path` is a CSV, a
    Parquet file or folder, or a `Source` (a database URL and its query; `query` is the one to use
    when the Source names none, e.g. the checkpoint's data.query).
    """
    path = source_of(path, query)
    value_cols = list(target) + list(features) + list(future_features)
    wanted = [c for c in (series_id, timestamp) if c] + value_cols
    frame = read_source(path, wanted, value_cols, timestamp)
    rules = Rules(freq, freq_from, missing, start, end, max_gap, max_filled, last_observed, path.row_word)
    spec = Spec(value_cols, len(target), len(future_features), future_rows, series_id, timestamp)
    panel = panel_of(frame, path, spec, rules)
    if len(frame) >= 1_000_000:
        del frame  # the parse's own arrays go first
        return_freed_memory()
    return panel


def panel_of(frame: pd.DataFrame, source: Source, spec: Spec, rules: Rules, first_row: int | None = None) -> Panel:
    """A raw frame (the wanted columns, as `sources` reads them) → the validated panel of its series.

    Most series of a catalogue are clean (rows a fixed step apart, no empty cell): those are checked
    and laid out for all series at once (`fast`). Only the series that need a repair or an error
    message (gaps, empty cells, duplicates, irregular times, a single row) go through the
    per-series path, one by one; both give the same series. `first_row`: the number messages give the
    frame's first row (a batch of a larger source), by default the source's first.
    """
    first = source.first_row if first_row is None else first_row
    lines: Lines = range(first, len(frame) + first)
    if spec.series_id is not None:  # rows are grouped by series, so each needs its own line number
        lines = np.arange(first, len(frame) + first, dtype=np.int32 if len(frame) < 2**31 - 2 else np.int64)
    values = numeric_values(frame, spec.value_cols, lines, source, rules.row)
    codes, names = _codes(frame, spec.series_id, lines, source, rules.row)
    stamps = _stamps(frame, spec.timestamp, lines, source, rules.row)
    if stamps is not None and rules.freq == "auto" and len(names) > 1:
        rules = _shared_freq(stamps, codes, names, rules, source, str(spec.timestamp))
    made = None
    if len(names) > 1 and (stamps is None or rules.freq != "auto"):
        made = fast.clean_series(codes, len(names), stamps, values, spec, rules)
    if made is None:
        return _slow_series(source, names, codes, stamps, values, lines, spec, rules, range(len(names)))
    clean = fast.panel(names, values, stamps, made, spec)
    if made.clean.all():
        return clean
    todo = np.flatnonzero(~made.clean).tolist()
    slow = _slow_series(source, names, codes, stamps, values, lines, spec, rules, todo)
    return fast.merge(names, clean, slow, made.clean) if len(clean) else slow


def _slow_series(
    source: Source,
    names: list[str | None],
    codes: np.ndarray,
    stamps: pd.DatetimeIndex | None,
    values: np.ndarray,
    lines: Lines,
    spec: Spec,
    rules: Rules,
    todo: Any,
) -> Panel:
    """The series `todo` (positions in `names`), validated and repaired one by one."""
    order = np.argsort(codes, kind="stable") if spec.series_id is not None else None
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1)) if order is not None else None
    parts = []
    for k in todo:
        sid = names[k]
        rows: Any = slice(None) if order is None else order[bounds[k] : bounds[k + 1]]  # type: ignore[index]
        where = str(source) if sid is None else f"{source}: series {shown(sid)}"
        times = (stamps if order is None else stamps[rows]) if stamps is not None else None
        parts.append(_series(where, times, values[rows], lines[rows], spec, rules))
    return concatenate([names[k] for k in todo], parts)


def _stamps(frame: pd.DataFrame, timestamp: str | None, lines: Lines, path: Source, word: str) -> Any:
    """Every row's time, parsed once for the whole file: per series, format inference would cost more than parsing."""
    if timestamp is None:
        return None
    column = frame[timestamp]
    if column.dtype.kind == "M":  # the fast path parsed them chunk by chunk
        return pd.DatetimeIndex(column)
    return parse_times(column, lines, path, timestamp, word)


def _shared_freq(
    stamps: pd.DatetimeIndex, codes: np.ndarray, names: list[Any], rules: Rules, path: Source, col: str
) -> Rules:
    """One grid for all series: inferred from the longest series, then checked on every series."""
    longest = int(np.argmax(np.bincount(codes, minlength=len(names))))
    where = f"{path}: series {shown(names[longest])}"
    found = resolve_freq(stamps[np.flatnonzero(codes == longest)].sort_values(), "auto", where, col)
    return replace(rules, freq=found, freq_from=f"the frequency of the longest series, {shown(names[longest])},")


def _codes(
    frame: pd.DataFrame, series_id: str | None, lines: Lines, path: Source, word: str
) -> tuple[np.ndarray, list[Any]]:
    """Each row's series number and the series ids, sorted; one series of every row without `series_id`."""
    if series_id is None:
        return np.zeros(len(frame), np.int64), [None]
    ids = frame[series_id]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataError(f"{path}: {word} {lines[row]}: empty {shown(series_id)} — every row needs a series id")
    codes, names = pd.factorize(ids, sort=True)
    return codes.astype(np.int64), [str(n) for n in names]


def _series(
    where: str, times: pd.DatetimeIndex | None, values: np.ndarray, lines: Lines, spec: Spec, rules: Rules
) -> Series:
    value_cols, n_targets, n_future, future_rows = spec.value_cols, spec.n_targets, spec.n_future, spec.future_rows
    index, step_freq, positions, filled_rows = None, None, None, 0
    if times is not None:
        index, values, lines, step_freq, regular = regularise(where, times, values, lines, rules)
        if len(index) > 1 and not regular:
            values, index, positions = onto_grid(where, index, values, lines, step_freq, rules)
            filled_rows = len(values) - len(lines)

    future = None
    if future_rows:
        values, index, future = _split_future(where, values, index, value_cols, n_targets, n_future, future_rows)
    if index is not None and len(index) and isinstance(to_offset(step_freq), offsets.Tick):
        # regular by now (checked, or gaps filled from a date_range): keep two numbers, not a time per row
        index = Grid(index[0], pd.Timedelta(to_offset(step_freq)), len(index), index.name)
    for j, col in enumerate(value_cols):
        if np.isnan(values[:, j]).all():
            raise DataError(f"{where}: column {shown(col)} has no numeric values — check the column or the file")
    if rules.missing != "error":  # (with error, _fill refuses the first empty cell)
        _check_invented(where, values[:, :n_targets], index, lines, positions, rules)
    values, filled_cells = _fill(values, value_cols, rules.missing, where, lines, rules.row)
    return Series(
        values=values,
        columns=value_cols,
        n_targets=n_targets,
        index=index,
        freq=step_freq,
        filled_rows=filled_rows,
        filled_cells=filled_cells - filled_rows * len(value_cols),
        future=future,
    )


def _check_invented(
    where: str, targets: np.ndarray, index: Any, lines: Lines, positions: np.ndarray | None, rules: Rules
) -> None:
    """Gap filling may invent at most `max_gap` rows in a row and a `max_filled` share of the rows.

    A row counts as invented when it was missing or any of its targets is empty: both are filled
    the same way. A long run of them is a mistyped time or a dead sensor, not something to
    interpolate a forecast from; with `last_observed` (predict), the last row must be observed.
    """
    empty = np.isnan(targets).any(axis=1)
    count = int(np.count_nonzero(empty))
    if not count:
        return
    edges = np.diff(empty.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(stops - starts))
    if rules.last_observed and stops[-1] == len(empty):
        k = len(stops) - 1
    size, rows = int(stops[k] - starts[k]), len(empty)
    if size > rules.max_gap or (rules.last_observed and stops[k] == rows):
        first, last = _label(index, int(starts[k])), _label(index, int(stops[k]) - 1)
        if stops[k] == rows:
            raise DataError(
                f"{where}: the last {size:,} rows ({first} to {last}) have an empty target, and forecasts start "
                f"after the last row — give their values, or drop those rows"
                if rules.last_observed
                else f"{where}: the last {size:,} rows ({first} to {last}) have an empty target — more than "
                f"data.max_gap ({rules.max_gap}) to fill; give their values, drop them, or raise data.max_gap"
            )
        after = int(stops[k]) if positions is None else int(np.searchsorted(positions, stops[k]))
        raise gap_error(where, size, first, last, lines[after], rules, missing=False)
    if count > rules.max_filled * rows:
        raise share_error(where, count, rows, rules, missing=False)


def _label(index: Any, row: int) -> str:
    return f"step {row}" if index is None else str(index[row])


def _split_future(
    where: str,
    values: np.ndarray,
    index: pd.DatetimeIndex | None,
    value_cols: list[str],
    n_targets: int,
    n_future: int,
    horizon: int,
) -> tuple[np.ndarray, pd.DatetimeIndex | None, np.ndarray]:
    """Split the rows after the last target value off as the known future of the forecast rows."""
    observed = np.flatnonzero(~np.isnan(values[:, :n_targets]).all(axis=1))
    end = int(observed[-1]) + 1 if len(observed) else 0
    future = values[end : end + horizon, len(value_cols) - n_future :]
    names = ", ".join(value_cols[len(value_cols) - n_future :])
    if len(future) < horizon:
        raise DataError(
            f"{where}: data.future_features ({names}) must be given for the {horizon} rows after the last "
            f"{shown(value_cols[0])} value; found {len(future)} — append the future rows with the target left empty"
        )
    if np.isnan(future).any():
        row, col = map(int, np.argwhere(np.isnan(future))[0])
        when = index[end + row] if index is not None else end + row
        raise DataError(
            f"{where}: future row {when} lacks {shown(value_cols[len(value_cols) - n_future + col])} — fill it"
        )
    return values[:end], (index[:end] if index is not None else None), future


def _fill(
    values: np.ndarray, columns: list[str], missing: str, path: Path | str, lines: Lines, word: str
) -> tuple[np.ndarray, int]:
    holes = np.isnan(values)
    count = int(holes.sum())
    if not count:
        return values, 0
    if missing == "error":
        row, col = map(int, np.argwhere(holes)[0])
        where = f"{word} {lines[row]}" if row < len(lines) and len(lines) == len(values) else f"row {row + 1}"
        raise DataError(
            f"{path}: {where}, column {shown(columns[col])} is empty — fill it or set data.missing to interpolate or ffill"
        )
    frame = pd.DataFrame(values)
    if missing == "interpolate":
        frame = frame.interpolate(method="linear", limit_direction="both")
    else:
        frame = frame.ffill().bfill()
    return frame.to_numpy(dtype=np.float64), count
