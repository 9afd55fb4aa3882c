"""Writers: lstmcast's tables out of the process.

Owns the forecast table ([series id,] time label, one column per target and quantile, forecaster)
as CSV, Parquet (pyarrow, `lstmcast[parquet]`) or rows of a database table (`lstmcast.data.sqlsink`),
the `model_id` that keys forecasts, and report tables such as the training history. Files are
written atomically (`lstmcast.atomic.atomic_write`: a temporary file in the same folder, fsync,
then a rename), so a reader never sees half a file; a database table gets one transaction per run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from lstmcast.atomic import OutputFolder, atomic_file, atomic_folder, atomic_write
from lstmcast.data.calendar import Labels


def forecast_frame(
    labels: Labels,
    columns: list[str],
    values: np.ndarray,
    label_name: str,
    ids: list[str | None],
    series_col: str | None,
    forecasters: list[str],
) -> pd.DataFrame:
    """The forecast as one frame built from arrays: [series id,] time label, one column per target (and
    quantile), forecaster — long format (one block of `horizon` rows per series) when `series_col` is set.

    `values` is (series, horizon, columns); the last column names what produced each row: model,
    seasonal_naive or naive.
    """
    horizon = values.shape[1]
    data: dict[str, Any] = {}
    if series_col is not None:
        data[series_col] = np.repeat(np.asarray(ids, dtype=object), horizon)
    data[label_name] = labels.flat()
    for j, column in enumerate(columns):
        data[column] = values[:, :, j].reshape(-1)
    data["forecaster"] = np.repeat(np.asarray(forecasters, dtype=object), horizon)
    return pd.DataFrame(data)


def output_of(text: str) -> Path | OutputFolder:
    """An --out path: one ending with '/' names a folder (a Parquet data set), anything else a file."""
    return OutputFolder(Path(text)) if text.endswith(("/", os.sep)) else Path(text)


@contextlib.contextmanager
def streamed(path: Path | Any, label_name: str, series_col: str | None) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Write forecast frames batch by batch into one destination that appears whole or not at all: a CSV or a
    Parquet file (streamed into a temporary file, renamed at the end), a folder (a Parquet data set: a file per
    batch, then `_SUCCESS`, swapped in whole), or a database table (one transaction at the end)."""
    if not isinstance(path, str | Path | OutputFolder):  # a sqlsink.Table: one transaction for the run
        frames: list[pd.DataFrame] = []
        yield frames.append
        path.write_forecast(
            pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0], label_name, series_col
        )
    elif isinstance(path, OutputFolder):
        with atomic_folder(path.path) as folder:
            parts = iter(range(1 << 62))
            yield lambda frame: _parquet_part(folder / f"part-{next(parts):05d}.parquet", frame)
    elif str(path).endswith(".parquet"):
        with atomic_file(Path(path)) as f, _ParquetStream(f) as stream:
            yield stream.write
    else:
        with atomic_file(Path(path), text=True) as f:
            first = [True]

            def write(frame: pd.DataFrame) -> None:
                frame.to_csv(f, index=False, header=first[0], lineterminator="\n", float_format="%.8g")
                first[0] = False

            yield write


class _ParquetStream:
    """One Parquet file written a row group per batch (the schema of the first batch)."""

    def __init__(self, f: IO[Any]) -> None:
        self.f, self.writer = f, None

    def __enter__(self) -> _ParquetStream:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.f, table.schema)
        self.writer.write_table(table)

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()


def _parquet_part(path: Path, frame: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


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
    if not hasattr(destination, "loaded"):  # a file or a folder: no rows to key
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
