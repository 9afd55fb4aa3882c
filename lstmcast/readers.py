"""Reading a CSV into a raw pandas frame: the columns asked for, value columns as numbers, times parsed.

Owns the readers — the fast path for ISO times in the first column (`fastcsv`), the chunked C
parser, the all-text reread that lets a message name the bad cell — the parsing of numbers and
times, and handing the memory a long parse freed back to the system. What is read is checked
and regularised by `frame`. Every problem with the user's file becomes a `DataError` naming the
file, column and row (1-based line numbers as an editor shows them, the header being line 1).
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast import fastcsv
from lstmcast.errors import DataError

READ_CHUNK = 250_000  # rows parsed at a time: bounds the memory the timestamps' text takes
Lines = np.ndarray | range  # the file line of each row

_OFFSET_SUFFIX = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def read_csv(path: Path, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The `wanted` columns of the CSV at `path`, at least one row.

    The fast readers give the `numeric` columns as float64 and the `timestamp` column parsed; a
    file they cannot read that way comes back as text, for `numeric_values` and `parse_times` to
    convert and name the bad cell. A missing, empty, non-UTF-8 or malformed file is a DataError.
    """
    if not path.exists():
        raise DataError(
            f"data file {path} not found — check the path (relative paths in a config resolve against its folder)"
        )
    if path.is_dir():
        raise DataError(f"data path {path} is a folder — give the CSV file inside it")
    try:
        header = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty — it needs a header line and data rows") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text — is it a CSV file?") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the CSV header ({_first_line(exc)})") from None
    found = [str(c) for c in header.columns]
    absent = [c for c in wanted if c not in found]
    if absent:
        hint = ""
        if len(found) == 1 and any(sep in found[0] for sep in ";\t|"):
            hint = " — the file seems not to be comma-separated; save it with commas"
        raise DataError(
            f"{path}: column {absent[0]!r} not found; columns are {', '.join(map(repr, found))}{hint or ' — fix the config or the file'}"
        )
    try:
        frame = None
        if timestamp is not None and found[0] == timestamp:
            frame = _read_iso(path, wanted, numeric, timestamp)
        if frame is None:
            frame = _read_fast(path, wanted, numeric, timestamp)
    except ValueError:  # a non-numeric cell: reread as text so the error can name its line
        frame = None
    try:
        if frame is None:
            frame = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text — is it a CSV file?") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(
            f"{path}: malformed CSV ({_first_line(exc)}) — check quoting and the number of fields per line"
        ) from None
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows — it needs at least one row")
    return frame


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_iso(path: Path, wanted: list[str], numeric: list[str], timestamp: str) -> pd.DataFrame | None:
    """The commonest file — ISO times in the first column, numbers after — without Python strings.

    Times are parsed from the file's bytes (fastcsv) and the numbers go chunk by chunk into one
    preallocated array: 16 bytes a row for a time and a value, and faster than plain read_csv of
    the same file, which builds a Python string per time (benchmarks/perf.py, figure 4, measures
    the load). None when the file is anything else (the general reader decides).
    """
    others = [c for c in wanted if c != timestamp]
    if any(c not in numeric for c in others):
        return None
    stamps = fastcsv.first_column_times(path)
    if stamps is None:
        return None
    values, filled = np.empty((len(stamps), len(others))), 0
    reader = pd.read_csv(
        path, usecols=others, dtype="float64", keep_default_na=False, na_values=[""], chunksize=READ_CHUNK
    )
    with reader:
        for chunk in reader:
            if filled + len(chunk) > len(stamps):
                return None
            values[filled : filled + len(chunk)] = chunk[others].to_numpy()
            filled += len(chunk)
    if filled != len(stamps):
        return None
    columns = {timestamp: stamps, **{c: values[:, j] for j, c in enumerate(others)}}
    return pd.DataFrame(columns, copy=False)  # the arrays themselves (DataFrame.insert would copy the times)


def _read_fast(path: Path, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The common case in one pass of the C parser: value columns straight to float64.

    Read in chunks whose timestamps are parsed at once, so the text of at most one chunk is
    alive at a time (as Python strings, one object a cell, it is many times the size of the
    parsed times; benchmarks/perf.py, figure 3, measures the peak memory).
    """
    dtypes = {c: ("float64" if c in numeric else str) for c in wanted}
    reader = pd.read_csv(
        path, usecols=wanted, dtype=dtypes, keep_default_na=False, na_values=[""], chunksize=READ_CHUNK
    )
    parts = []
    with reader:
        for chunk in reader:
            if timestamp is not None and len(chunk):
                first = 2 + READ_CHUNK * len(parts)
                chunk[timestamp] = parse_times(chunk[timestamp], np.arange(first, first + len(chunk)), path, timestamp)
            parts.append(chunk)
    if not parts:  # a header and no rows; read_csv says so
        return pd.DataFrame(columns=wanted)
    if len(parts) == 1:
        return parts[0]
    # Column by column, dropping each column's pieces once joined: peak memory is one column's copy.
    columns = {}
    for col in wanted:
        pieces = [part.pop(col) for part in parts]
        columns[col] = pd.concat(pieces, ignore_index=True)
        del pieces
    frame = pd.DataFrame(columns)
    if (
        timestamp is not None
        and len(frame)
        and not isinstance(frame[timestamp].dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType)
    ):
        raise DataError(
            f"{path}: column {timestamp!r} mixes time zones or UTC offsets (e.g. daylight saving, or some times "
            "without an offset) — write every time in UTC or with one fixed offset"
        )
    return frame


def numeric_values(frame: pd.DataFrame, columns: list[str], lines: Lines, path: Path) -> np.ndarray:
    """(rows, len(columns)) float64, empty cells NaN; a cell that is no number, or infinite, is a DataError."""
    out = np.empty((len(frame), len(columns)))
    for j, col in enumerate(columns):
        text = frame[col]
        if text.dtype == np.float64:  # parsed by the fast path: nothing to report but infinities
            if len(columns) == 1:  # no copy: the frame's own column
                out = text.to_numpy()[:, None]
            else:
                out[:, j] = text.to_numpy()
            _check_finite(out[:, j], col, lines, path)
            continue
        nums = pd.to_numeric(text, errors="coerce")
        bad = nums.isna().to_numpy() & text.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: line {lines[row]}, column {col!r}: {text.iloc[row]!r} is not a number — "
                "fix the value or leave the cell empty to treat it as missing"
            )
        out[:, j] = nums.to_numpy(dtype=np.float64, na_value=np.nan)
        _check_finite(out[:, j], col, lines, path)
    return out


def _check_finite(column: np.ndarray, col: str, lines: Lines, path: Path) -> None:
    if np.isinf(column).any():
        row = int(np.flatnonzero(np.isinf(column))[0])
        raise DataError(f"{path}: line {lines[row]}, column {col!r}: infinite value — replace it")


def parse_times(text: pd.Series, lines: Lines, path: Path, col: str) -> pd.DatetimeIndex:
    """A column of time text as a DatetimeIndex; empty, numeric, unreadable or mixed-offset times are a DataError."""
    if text.isna().any():
        row = int(np.flatnonzero(text.isna().to_numpy())[0])
        raise DataError(f"{path}: line {lines[row]}: empty timestamp in column {col!r} — fill it or drop the row")
    sample = text.iloc[:100]  # cheap test first: converting every string of a long file is slow
    if pd.to_numeric(sample, errors="coerce").notna().all() and pd.to_numeric(text, errors="coerce").notna().all():
        raise DataError(
            f"{path}: column {col!r} holds numbers, not times — write ISO times (2024-01-31 13:00) "
            "or set data.timestamp: null to number the rows"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.DatetimeIndex(pd.to_datetime(text))
    except (ValueError, TypeError, OverflowError) as exc:
        has_offset = text.str.contains(_OFFSET_SUFFIX)
        if "Mixed timezones" in str(exc) or (has_offset.any() and not has_offset.all()):
            raise DataError(
                f"{path}: column {col!r} mixes time zones or UTC offsets (e.g. daylight saving, or some times "
                "without an offset) — write every time in UTC or with one fixed offset"
            ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    raise DataError(
        f"{path}: line {lines[row]}: cannot parse {text.iloc[row]!r} in column {col!r} as a time — "
        "write all times in one format, e.g. 2024-01-31 13:00"
    )


def return_freed_memory() -> None:
    """Give the heap pages a long parse freed back to the system.

    glibc keeps freed memory of many mid-sized allocations (the parser's chunks) in its heap,
    resident for the rest of a training run unless trimmed (benchmarks/perf.py, figure 3,
    measures the peak RSS of a run).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: that allocator manages its own
        ctypes.CDLL("libc.so.6").malloc_trim(0)
