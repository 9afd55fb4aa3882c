"""Where the data comes from: a CSV, a Parquet file or folder, or a database query → one raw frame.

Every source gives `frame` what `readers.read_csv` gives for a CSV — the wanted columns, value
columns as float64, the timestamp parsed (typed Parquet and database times kept as they are) —
so the same validation, errors and limits apply to all of them. Parquet is read batch by batch
within each row group, only the wanted columns; a query's rows come a chunk at a time. Each batch
is converted to numbers and times at once, so the Python objects of at most one batch are alive
(benchmarks/perf.py, figure 7, compares the memory and speed of the three). A bad value is named
by source, row group (Parquet) and row, and column. pyarrow and SQLAlchemy are imported only
when such a source is read; `Source.require` checks for them before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.config import DataConfig, timeout_seconds
from lstmcast.data import db
from lstmcast.data.readers import (
    READ_CHUNK,
    _listed,
    check_unchanged,
    numeric_values,
    open_regular,
    parse_times,
    read_csv,
)
from lstmcast.errors import ConfigError, DataError, shown
from lstmcast.extras import require
from lstmcast.locations import is_url, refuse_secrets

_RESOLUTION = {"D": 0, "s": 1, "ms": 2, "us": 3, "ns": 4}
SQL_CHUNK = 50_000  # rows fetched at a time: a row is a tuple of Python objects until converted
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


@dataclass(frozen=True)
class Source:
    """A data location as given (a path or a database URL) and, for a database, the table or SELECT to read
    and how long the database may take to answer (data.timeout; None: its default)."""

    location: str
    query: str | None = None
    timeout: float | None = None

    @functools.cached_property
    def kind(self) -> str:
        """csv, parquet or sql (looked at once: a folder is parquet when it holds Parquet files)."""
        if is_url(self.location):
            return "sql"
        path = Path(self.location)
        if path.name.endswith((".parquet", ".pq")) or (path.is_dir() and any(_parquet_files_in(path))):
            return "parquet"
        return "csv"

    @property
    def row_word(self) -> str:
        return "line" if self.kind == "csv" else "row"

    @property
    def first_row(self) -> int:
        """The number messages give the first data row: a CSV's line 2 (after the header), else row 1."""
        return 2 if self.kind == "csv" else 1

    def __str__(self) -> str:
        if self.kind != "sql":
            return self.location
        if not (self.query or "").strip():
            return db.redacted(self.location)
        what = "table" if self.query and _TABLE_NAME.fullmatch(self.query.strip()) else "query"
        return f"{db.redacted(self.location)} ({what} {shown(' '.join((self.query or '').split()), 60)})"

    def require(self, need_query: bool = True) -> None:
        """Stop before any work when this source needs an optional extra that is not installed.

        A database URL needs a query, except where a checkpoint's data.query may supply it (`need_query`).
        """
        kind = self.kind
        if kind == "parquet":
            require("pyarrow", "parquet", f"reading {self.location}")
        elif kind == "sql":
            db.require_for_url(self.location)
            db.parse(self.location)  # a password in clear is refused now, not after training
            if need_query and not (self.query or "").strip():
                raise ConfigError(
                    f"{self} needs a table name or a SELECT — set data.query or pass --query (e.g. --query load)"
                )


def source_of(location: str | Path | Source, query: str | None = None) -> Source:
    """A `Source`; `query` fills in the query of a database Source that names none (a checkpoint's data.query)."""
    if isinstance(location, Source):
        if location.query is None and query is not None and location.kind == "sql":
            return dataclasses.replace(location, query=query)
        return location
    text = str(location)
    refuse_secrets(text, "data location")  # a libpq connection string (host=… password=…) is never echoed or stored
    if not is_url(text) and text.endswith(".zst"):
        raise DataError(f"{text}: zstd-compressed CSV is not supported — decompress it (zstd -d) or use .csv.gz")
    return Source(text, query if is_url(text) else None)


def within(location: Any, d: DataConfig) -> Any:
    """`location` as a Source that waits at most `d.timeout` for its database (a checkpoint's or a config's)."""
    if location is None:
        return None
    return dataclasses.replace(source_of(location), timeout=timeout_seconds(d.timeout, "data.timeout"))


def read_source(source: Source, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The `wanted` columns of the source, at least one row: `numeric` ones float64, `timestamp` parsed or as typed."""
    kind = source.kind
    if kind == "csv":
        return read_csv(Path(source.location), wanted, numeric, timestamp)
    source.require()
    if kind == "parquet":
        return _read_parquet(source, wanted, numeric, timestamp)
    return _read_sql(source, wanted, numeric, timestamp)


def batches(
    source: Source, wanted: list[str], numeric: list[str], timestamp: str | None, series_id: str | None, rows: int
) -> Iterator[tuple[int, pd.DataFrame]]:
    """The source as frames of whole series, each about `rows` rows (one series may make it longer), with the
    number of its first row. A Parquet file or folder streams (memory bounded by a batch, not by the data);
    a CSV or a query is one frame. A series whose rows come back after other series' rows were passed on
    is a DataError: the rows of a series must be together (a data set partitioned or sorted by series)."""
    if source.kind != "parquet" or series_id is None:
        yield source.first_row, read_source(source, wanted, numeric, timestamp)
        return
    source.require()
    yield from _Batcher(source, wanted, numeric, timestamp, series_id, rows).run()


class _Batcher:
    """Parquet record batches → frames of whole series: the last series of a frame waits for its other rows."""

    def __init__(
        self, source: Source, wanted: list[str], numeric: list[str], timestamp: str | None, series_id: str, rows: int
    ) -> None:
        self.source, self.wanted, self.numeric, self.timestamp = source, wanted, numeric, timestamp
        self.series_id, self.rows = series_id, max(1, rows)
        self.pending: list[pd.DataFrame] = []
        self.pending_rows, self.first = 0, 1  # the global number of the first pending row
        self.passed = np.zeros(0, np.uint64)  # hashes of the series already passed on, sorted

    def run(self) -> Iterator[tuple[int, pd.DataFrame]]:
        for chunk in _parquet_chunks(self.source, self.wanted, self.numeric, self.timestamp):
            self.pending.append(chunk)
            self.pending_rows += len(chunk)
            if self.pending_rows >= self.rows:
                yield from self._emit(final=False)
        if self.pending_rows:
            yield from self._emit(final=True)
        elif self.first == 1:
            raise DataError(f"{self.source} has no rows — it needs at least one")

    def _emit(self, final: bool) -> Iterator[tuple[int, pd.DataFrame]]:
        frame = pd.concat(self.pending, ignore_index=True) if len(self.pending) > 1 else self.pending[0]
        ids = frame[self.series_id]
        cut = len(frame)
        if not final:  # the last series may go on in the next chunk: it waits
            last = ids.iloc[-1]
            tail = (ids != last).to_numpy(dtype=bool, na_value=True)[::-1]
            cut = len(frame) - (int(np.argmax(tail)) if tail.any() else len(frame))
            if cut == 0:
                self.pending = [frame]
                return
        self._check_new(ids.iloc[:cut], self.first)
        yield self.first, frame.iloc[:cut]
        self.pending = [frame.iloc[cut:].reset_index(drop=True)] if cut < len(frame) else []
        self.pending_rows, self.first = len(frame) - cut, self.first + cut

    def _check_new(self, ids: pd.Series, first: int) -> None:
        """No series of this frame was passed on before; then remember them."""
        distinct = pd.Series(ids.unique()).astype(str).to_numpy(dtype=object)
        hashes = pd.util.hash_array(distinct)
        seen = np.isin(hashes, self.passed)
        if seen.any():
            row = int(np.flatnonzero((ids == distinct[np.flatnonzero(seen)[0]]).to_numpy(dtype=bool))[0])
            raise DataError(
                f"{self.source}: row {first + row}: series {shown(ids.iloc[row])} comes back after rows of other series "
                "— predict reads a Parquet data set a batch of whole series at a time: keep each series' rows together "
                "(partition or sort the data set by series), or read it with --engine ray, which regroups it"
            )
        self.passed = np.union1d(self.passed, hashes)


# ---------------------------------------------------------------------------- converting batches


class _Columns:
    """Batches of the wanted columns converted as they arrive: numbers into float64 arrays, times parsed.

    Numbers and times go straight into arrays: of the right size when the row count is known (a
    Parquet file's metadata), else grown by half as rows arrive (numpy's resize is a realloc, which
    for large arrays remaps pages instead of copying, so a query does not hold its values twice).
    Other columns (series ids) are kept as pieces and joined at the end, as a CSV's chunks are.
    """

    def __init__(self, wanted: list[str], numeric: list[str], timestamp: str | None, rows: int | None) -> None:
        self.wanted, self.numeric, self.timestamp = wanted, numeric, timestamp
        self.capacity, self.rows = rows or 0, 0
        self.filled = {c: np.empty(self.capacity) for c in numeric}
        self.times: np.ndarray | None = None  # naive datetime64, or UTC with `tz`
        self.tz: Any = None
        self.pieces: dict[str, list[Any]] = {c: [] for c in wanted if c not in numeric and c != timestamp}

    def add(self, chunk: pd.DataFrame, where: str, first: int) -> None:
        """Convert one batch; `where` and `first` (the number of its first row) name a bad cell."""
        n, lines = len(chunk), range(first, first + len(chunk))
        values = numeric_values(chunk, self.numeric, lines, where, "row")
        self._grow(n)
        for j, col in enumerate(self.numeric):
            self.filled[col][self.rows : self.rows + n] = values[:, j]
        for col in self.pieces:
            self.pieces[col].append(chunk[col].reset_index(drop=True))
        if self.timestamp is not None:
            column = chunk[self.timestamp]
            if column.dtype.kind != "M":
                column = pd.Series(parse_times(column, lines, where, self.timestamp, "row"))
            self._add_times(column, where)
        self.rows += n

    def _grow(self, n: int) -> None:
        if self.rows + n <= self.capacity:
            return
        self.capacity = max(self.rows + n, self.capacity + self.capacity // 2)
        for array in (*self.filled.values(), *([self.times] if self.times is not None else [])):
            array.resize(self.capacity, refcheck=False)  # nothing else refers to these arrays yet

    def _add_times(self, column: pd.Series, where: str) -> None:
        tz = getattr(column.dtype, "tz", None)
        values = (column.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else column).to_numpy()
        if self.times is None:
            self.times, self.tz = np.empty(self.capacity, values.dtype), tz
        elif (tz is None) != (self.tz is None) or str(tz) != str(self.tz):
            raise DataError(
                f"{where}: column {shown(self.timestamp)} mixes time zones or UTC offsets — write every time in UTC "
                "or with one fixed offset"
            )
        elif values.dtype != self.times.dtype:  # text parsed to another resolution: keep the finer one
            finer = max(values.dtype, self.times.dtype, key=lambda d: _RESOLUTION.get(np.datetime_data(d)[0], 9))
            self.times, values = self.times.astype(finer), values.astype(finer)
        self.times[self.rows : self.rows + len(values)] = values

    def frame(self, label: object) -> pd.DataFrame:
        if not self.rows:
            raise DataError(f"{label} has no rows — it needs at least one")
        columns: dict[str, Any] = {}
        for col in self.wanted:
            if col in self.filled:
                columns[col] = self.filled[col][: self.rows]
            elif col == self.timestamp:
                times = pd.Series(self.times[: self.rows], copy=False)
                columns[col] = times if self.tz is None else times.dt.tz_localize("UTC").dt.tz_convert(self.tz)
            else:
                columns[col] = pd.concat(self.pieces.pop(col), ignore_index=True)
        return pd.DataFrame(columns, copy=False)


def _check_columns(label: object, names: list[str], wanted: list[str]) -> None:
    """Every wanted column present, once."""
    for col in wanted:
        if col not in names:
            raise DataError(f"{label}: column {shown(col)} not found; columns are {_listed(names)} — fix the config")
        if names.count(col) > 1:
            raise DataError(
                f"{label}: column {shown(col)} appears {names.count(col)} times — rename the extra one "
                "so it is clear which to read"
            )


# ---------------------------------------------------------------------------- Parquet


def parquet_files(source: Source) -> list[Path]:
    """The Parquet files of a source: the file itself, or those of the folder in name order (at least one)."""
    path = Path(source.location)
    files = _parquet_files_in(path) if path.is_dir() else [path]
    if not files:
        raise DataError(f"data folder {path} holds no Parquet files (*.parquet) — give the file or folder holding them")
    return files


def _parquet_files_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith((".parquet", ".pq")) and p.is_file())
    except OSError:
        return []


def _read_parquet(source: Source, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """A Parquet file, or the files of a folder in name order (same schema), batch by batch, wanted columns only.

    Files are opened one at a time; each is checked not to change while it is read. A single file's
    numbers go into arrays sized from its metadata; a folder's are joined at the end, as a CSV's chunks.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(source.location)
    files = _parquet_files_in(path) if path.is_dir() else [path]
    columns, schema = None, None
    for file in files:
        f, stat = open_regular(file)
        with f:
            pf = _parquet_file(pq, pa, f, file)
            schema = _check_schema(file, pf.schema_arrow, wanted, schema)
            if columns is None:
                columns = _Columns(wanted, numeric, timestamp, pf.metadata.num_rows if len(files) == 1 else None)
            _read_row_groups(pa, pf, file, wanted, columns)
            check_unchanged(f, file, stat)
    if columns is None:  # a folder named *.parquet with no Parquet file in it
        raise DataError(f"data folder {path} holds no Parquet files (*.parquet) — give the file or folder holding them")
    return columns.frame(source)


def _parquet_chunks(
    source: Source, wanted: list[str], numeric: list[str], timestamp: str | None
) -> Iterator[pd.DataFrame]:
    """A Parquet file or folder as converted frames of at most READ_CHUNK rows (files in name order, same schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(source)
    schema = None
    for file in files:
        f, stat = open_regular(file)
        with f:
            pf = _parquet_file(pq, pa, f, file)
            schema = _check_schema(file, pf.schema_arrow, wanted, schema)
            for group in range(pf.num_row_groups):
                where, first = f"{file}: row group {group}", 1
                try:
                    for batch in pf.iter_batches(batch_size=READ_CHUNK, row_groups=[group], columns=wanted):
                        columns = _Columns(wanted, numeric, timestamp, batch.num_rows)
                        columns.add(batch.to_pandas(date_as_object=False), where, first)
                        first += batch.num_rows
                        yield columns.frame(file)
                except (pa.ArrowException, OSError) as exc:
                    raise DataError(f"{where}: cannot read it ({_first_line(exc)}) — the file may be damaged") from None
            check_unchanged(f, file, stat)


def _parquet_file(pq: Any, pa: Any, f: Any, file: Path) -> Any:
    try:
        return pq.ParquetFile(f)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{file} is not a readable Parquet file ({_first_line(exc)}) — it may be truncated or another kind of file"
        ) from None


def _check_schema(file: Path, arrow: Any, wanted: list[str], first: tuple[Path, dict] | None) -> tuple[Path, dict]:
    """The wanted columns present, once, and of the first file's types; (first file, its types)."""
    _check_columns(file, list(arrow.names), wanted)
    types = {c: arrow.field(c).type for c in wanted}
    if first is None:
        return file, types
    for col in wanted:
        if types[col] != first[1][col]:
            raise DataError(
                f"{file}: column {shown(col)} is {types[col]} but {first[1][col]} in {first[0].name} — "
                "give every Parquet file of the folder the same schema"
            )
    return first


def _read_row_groups(pa: Any, pf: Any, file: Path, wanted: list[str], columns: _Columns) -> None:
    first = 1  # the file's row numbers, 1-based
    for group in range(pf.num_row_groups):
        where = f"{file}: row group {group}"
        try:
            for batch in pf.iter_batches(batch_size=READ_CHUNK, row_groups=[group], columns=wanted):
                chunk = batch.to_pandas(date_as_object=False)
                columns.add(chunk, where, first)
                first += len(chunk)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{where}: cannot read it ({_first_line(exc)}) — the file may be damaged") from None


def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- SQL


def _read_sql(source: Source, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The rows of a table or a SELECT, fetched a chunk at a time in a read-only transaction.

    Fetched through the driver's own cursor (server-side for PostgreSQL): SQLAlchemy connects,
    inspects and maps errors; its per-row Result objects would double the time of a long read.
    """
    timeout = source.timeout or timeout_seconds(DataConfig.timeout, "data.timeout")
    link = db.engine(source.location, timeout=timeout)
    label = str(source)
    try:
        with link.connect(label, DataError) as conn:
            _read_only(conn)
            statement = _statement(conn, source, wanted, label, link)
            columns = _Columns(wanted, numeric, timestamp, None)
            driver_errors = conn.dialect.loaded_dbapi.Error
            with link.failures(DataError, f"{label}: the query failed", "check data.query (or --query)", driver_errors):
                cursor = _cursor(conn)
                link.restart()
                cursor.execute(statement)  # no parameters: the text goes to the server as written (a % too)
                if cursor.description is None:
                    raise DataError(f"{label} returns no rows — data.query must be a table name or a SELECT")
                keys = [str(d[0]) for d in cursor.description]
                _check_columns(label, keys, wanted)
                while True:
                    link.restart()  # each fetch gets the whole time limit
                    rows = cursor.fetchmany(SQL_CHUNK)
                    if not rows:
                        break
                    chunk = pd.DataFrame.from_records(rows, columns=range(len(keys)))
                    del rows
                    chunk = chunk[[keys.index(c) for c in wanted]].set_axis(wanted, axis=1)
                    columns.add(chunk, label, columns.rows + 1)  # numbers and times converted here
                cursor.close()
        return columns.frame(label)
    finally:
        link.dispose()


def _cursor(conn: Any) -> Any:
    """The driver's cursor; for PostgreSQL a server-side one, so rows come as they are fetched."""
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        return driver.cursor(name="lstmcast_read")
    return driver.cursor()


def _read_only(conn: Any) -> None:
    """data.query may only read: a DELETE or UPDATE in it fails instead of changing the database.

    Besides the read-only connection `db.engine` opens (SQLite `mode=ro` without ATTACH; PostgreSQL
    default_transaction_read_only), this transaction itself is read-only."""
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif backend == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _statement(conn: Any, source: Source, wanted: list[str], label: str, link: db.Link) -> str:
    """The SQL to run: the query as written, or for a table name a SELECT of the wanted columns (checked first)."""
    import sqlalchemy as sa

    query = (source.query or "").strip().rstrip(";")
    if not _TABLE_NAME.fullmatch(query):
        return query
    schema, _, name = query.rpartition(".")
    with link.failures(DataError, f"{label}: cannot read the table list", "check the database"):
        inspector = sa.inspect(conn)
        if not inspector.has_table(name, schema=schema or None):
            tables = inspector.get_table_names(schema=schema or None)
            some = ", ".join(shown(t, 40) for t in tables[:5]) or "none"
            raise DataError(f"{label}: no table {shown(query)} — check data.query (tables there: {some})")
        names = [c["name"] for c in inspector.get_columns(name, schema=schema or None)]
    _check_columns(label, names, wanted)
    quote = conn.dialect.identifier_preparer.quote
    table = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
    return f"SELECT {', '.join(quote(c) for c in wanted)} FROM {table}"
