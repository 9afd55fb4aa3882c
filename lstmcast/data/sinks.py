"""Writers: lstmcast's tables out of the process.

Owns the forecast table ([series id,] time label, one column per target and quantile, forecaster)
as CSV, Parquet (pyarrow, `lstmcast[parquet]`) or rows of a database table (`lstmcast.data.sqlsink`),
the `model_id` that keys forecasts, and report tables such as the training history. Files are
written atomically (`lstmcast.atomic.atomic_write`: a temporary file in the same folder, fsync,
then a rename), so a reader never sees half a file; a database table gets one transaction per run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.atomic import atomic_write


def write_forecast(
    path: str | Path | Any,
    labels: list[pd.Index],
    columns: list[str],
    values: np.ndarray,
    label_name: str,
    ids: list[str | None],
    series_col: str | None,
    forecasters: list[str],
) -> None:
    """Write a forecast: [series id,] time label, one column per target (and quantile), forecaster.

    `values` is (series, horizon, columns); long format (one block per series) when `series_col` is
    set. The last column names what produced each row: model, seasonal_naive or naive. `path`
    ending in .parquet is written as Parquet, a `sqlsink.Table` as rows of that table, else as CSV.
    """
    parts = []
    for sid, idx, block, name in zip(ids, labels, values, forecasters, strict=True):
        part = pd.DataFrame(block, columns=columns)
        part.insert(0, label_name, idx)
        if series_col is not None:
            part.insert(0, series_col, sid)
        part["forecaster"] = name
        parts.append(part)
    write_output(path, pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0], label_name, series_col)


def write_output(path: str | Path | Any, frame: pd.DataFrame, label_name: str, series_col: str | None) -> None:
    """A forecast frame to its destination: a database table, a Parquet file or a CSV."""
    if not isinstance(path, str | Path):  # a sqlsink.Table
        path.write_forecast(frame, label_name, series_col)
    elif str(path).endswith(".parquet"):
        write_parquet(path, frame)
    else:
        write_frame(path, frame)


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    """Write `frame` as Parquet atomically (temporary file, fsync, rename), as every other file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    atomic_write(Path(path), lambda f: pq.write_table(table, f))


def model_id(path: str | Path) -> str:
    """A checkpoint's identity in forecast tables: the first 16 hex digits of the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def bound(destination: Any, loaded: str, d: Any) -> Any:
    """A database destination keyed by `loaded` (the id of the checkpoint bytes predict loaded, not of whatever
    the file holds by the time rows are written) and waiting at most `d.timeout` (data.timeout); a path as it is."""
    if destination is None or isinstance(destination, str | Path):
        return destination
    from lstmcast.config import timeout_seconds

    return dataclasses.replace(destination, loaded=loaded, timeout=timeout_seconds(d.timeout, "data.timeout"))


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of plain values (e.g. one per epoch) as a frame for `write_frame`."""
    return pd.DataFrame(rows)


def write_frame(path: str | Path, frame: pd.DataFrame) -> None:
    """Write `frame` as CSV atomically: no index column, `\\n` line ends, floats to 8 significant digits."""
    atomic_write(
        Path(path), lambda f: frame.to_csv(f, index=False, lineterminator="\n", float_format="%.8g"), text=True
    )
