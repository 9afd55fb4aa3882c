"""Reading a CSV into a raw pandas frame: the columns asked for, value columns as numbers, times parsed.

Owns the readers — the fast path for ISO times in the first column (`fastcsv`), the chunked C
parser, the all-text reread that lets a message name the bad cell — the parsing of numbers and
times, and handing the memory a long parse freed back to the system. What is read is checked
and regularised by `frame`. Every problem with the user's file becomes a `DataError` naming the
file, column and row (1-based line numbers as an editor shows them, the header being line 1),
with the user's values capped (`errors.shown`). Before pandas reads a value: the path must be a
regular file (a pipe would hang the run), every row must have the header's number of fields
(pandas would cut or pad it silently), the columns read must be named once, and the file must
not change while its passes read it.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import gzip
import itertools
import os
import re
import stat
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from lstmcast.data import fastcsv
from lstmcast.errors import DataError, shown

READ_CHUNK = 250_000  # rows parsed at a time: bounds the memory the timestamps' text takes
Lines = np.ndarray | range  # the file line of each row

_OFFSET_SUFFIX = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def read_csv(path: Path, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The `wanted` columns of the CSV at `path`, at least one row.

    The fast readers give the `numeric` columns as float64 and the `timestamp` column parsed; a
    file they cannot read that way comes back as text, for `numeric_values` and `parse_times` to
    convert and name the bad cell. A missing, empty, non-UTF-8 or malformed file is a DataError, as is
    anything but a regular file, a row whose field count differs from the header's, a repeated
    wanted column name, and a file that changes while it is read. The file is opened once and every
    pass reads that one open file, so all of them see the same bytes.
    """
    f, opened = open_regular(path)
    if path.name.endswith(".gz"):  # gzip from the standard library: every pass decompresses again
        f = gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[assignment]
    with f:
        try:
            frame = _read(f, path, wanted, numeric, timestamp)
        except DataError:
            check_unchanged(f, path, opened)  # a file that moved under the reader explains the error better
            raise
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DataError(f"{path} is not a complete gzip file ({_first_line(exc)}) — check the file") from None
        except OSError as exc:  # the disk, or the file system, failed mid-read
            check_unchanged(f, path, opened)
            raise DataError(f"cannot read {path}: {exc.strerror or exc} — check the file and its disk") from None
        check_unchanged(f, path, opened)
    return frame


_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """The data file opened for reading, and its state then; anything but a regular file is a DataError.

    Opened without blocking, so a pipe swapped in after the check cannot hang the run: fstat
    refuses it before any read.
    """
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)  # follows a symbolic link to what it names
        if kind == stat.S_IFDIR:
            raise DataError(
                f"data path {path} is a folder without Parquet files — give the CSV or Parquet file inside it"
            )
        if kind == stat.S_IFREG:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            opened = os.fstat(fd)
            kind = stat.S_IFMT(opened.st_mode)
            if kind == stat.S_IFREG:
                os.set_blocking(fd, True)
                return os.fdopen(fd, "rb"), opened
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(
            f"data file {path} not found — check the path (relative paths in a config resolve against its folder)"
        ) from None
    except PermissionError:
        raise DataError(
            f"cannot read data file {path}: permission denied — let the user running lstmcast read it"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"data path {path} is a symbolic link that loops — point it at the data file") from None
        raise DataError(f"cannot open data file {path}: {exc.strerror or exc} — check the path") from None
    what = _KINDS.get(kind, "a socket" if kind == stat.S_IFSOCK else "not a regular file")
    raise DataError(
        f"data path {path} is {what}, not a regular file — save the data to a CSV file and give that "
        "(lstmcast reads the file more than once)"
    )


def check_unchanged(f: BinaryIO, path: Path, opened: os.stat_result) -> None:
    """A DataError when the file was written to, replaced or deleted while it was read: the passes may disagree."""
    rerun = "rerun once the program writing it has finished (writing to a temporary file and renaming it avoids this)"
    now = os.fstat(f.fileno())
    if (now.st_size, now.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
        raise DataError(f"{path} changed while lstmcast was reading it — {rerun}")
    try:
        current = os.stat(path)
    except OSError:
        raise DataError(f"{path} was deleted while lstmcast was reading it — {rerun}") from None
    if (current.st_dev, current.st_ino) != (now.st_dev, now.st_ino):
        raise DataError(f"{path} was replaced while lstmcast was reading it — {rerun}")


def _read(f: BinaryIO, path: Path, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """`read_csv` on the open file: the header checked, then the fastest reader that can read the file."""
    names = _header(f, path, wanted)
    checked = False  # every row's field count is known to be the header's
    try:
        frame = None
        if timestamp is not None and names[0] == timestamp:
            frame = _read_iso(f, wanted, numeric, timestamp)
            checked = frame is not None  # the ISO pass counted every line's fields
        if frame is None:
            _check_fields(f, path, len(names))
            checked = True
            frame = _read_fast(f, path, wanted, numeric, timestamp)
    except ValueError:  # a non-numeric cell: reread as text so the error can name its line
        frame = None
    try:
        if not checked:
            _check_fields(f, path, len(names))
        if frame is None:
            f.seek(0)
            frame = pd.read_csv(f, usecols=wanted, dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text — is it a CSV file?") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(
            f"{path}: malformed CSV ({_first_line(exc)}) — check quoting and the number of fields per line"
        ) from None
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows — it needs at least one row")
    return frame


def _header(f: BinaryIO, path: Path, wanted: list[str]) -> list[str]:
    """The header's names as written (pandas renames a repeated `load` to `load.1`); each wanted one there once."""
    try:
        f.seek(0)
        renamed = [str(c) for c in pd.read_csv(f, nrows=0).columns]
        f.seek(0)
        first = pd.read_csv(f, header=None, nrows=1, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty — it needs a header line and data rows") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text — is it a CSV file?") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the CSV header ({_first_line(exc)})") from None
    names = [str(c) for c in first.iloc[0]] if len(first) and first.shape[1] == len(renamed) else renamed
    absent = [c for c in wanted if c not in names]
    if absent:
        hint = " — fix the config or the file"
        if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
            hint = " — the file seems not to be comma-separated; save it with commas"
        raise DataError(f"{path}: column {shown(absent[0])} not found; columns are {_listed(names)}{hint}")
    for col in wanted:
        if names.count(col) > 1 or renamed[names.index(col)] != col:
            where = [str(i + 1) for i, name in enumerate(names) if name == col]
            raise DataError(
                f"{path}: column {shown(col)} appears {len(where)} times in the header (columns {', '.join(where)}) — "
                "rename or remove the extra one so it is clear which to read"
            )
    return names


def _listed(names: list[str], budget: int = 120) -> str:
    """Column names for a message: as many as fit in `budget` characters, then how many more."""
    parts: list[str] = []
    for name in names:
        part = shown(name, 40)
        if parts and sum(len(p) + 2 for p in parts) + len(part) > budget:
            return f"{', '.join(parts)} and {len(names) - len(parts):,} more"
        parts.append(part)
    return ", ".join(parts)


def _check_fields(f: BinaryIO, path: Path, fields: int) -> None:
    """A row with more or fewer fields than the header is a DataError (pandas would cut or pad it silently)."""
    bad = fastcsv.ragged_record(f, fields)
    if bad is None:
        return
    what = f"{path}: line {bad.line} has {_count(bad.fields, 'field')} but the header has {fields}"
    decimal = _decimal_comma(bad.text) if bad.fields == fields + 1 else None
    if decimal:
        raise DataError(
            f"{what} — {shown(decimal)} looks like a number with a decimal comma: write it with a '.' decimal point "
            "(or quote the field if the comma belongs to a text)"
        )
    raise DataError(f"{what} — give every row one value per column, and quote values that hold commas")


def _decimal_comma(text: str) -> str | None:
    """Two neighbouring fields that read as one number split at a decimal comma (`10`, `038`), joined; else None."""
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return None
    for whole, decimals in itertools.pairwise(field.strip() for field in fields):
        if _INTEGER.fullmatch(whole) and _DIGITS.fullmatch(decimals):
            return f"{whole},{decimals}"
    return None


_INTEGER, _DIGITS = re.compile(r"[-+]?[0-9]+"), re.compile(r"[0-9]+")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _first_line(exc: Exception, limit: int = 120) -> str:
    """A library's message, its first line, capped: it may quote the user's data."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_iso(f: BinaryIO, wanted: list[str], numeric: list[str], timestamp: str) -> pd.DataFrame | None:
    """The commonest file — ISO times in the first column, numbers after — without Python strings.

    Times are parsed from the file's bytes (fastcsv) and the numbers go chunk by chunk into one
    preallocated array: 16 bytes a row for a time and a value, and faster than plain read_csv of
    the same file, which builds a Python string per time (benchmarks/perf.py, figure 4, measures
    the load). None when the file is anything else (the general reader decides). A result also
    proves that every line has exactly the header's fields (fastcsv counts them in the same pass).
    """
    others = [c for c in wanted if c != timestamp]
    if any(c not in numeric for c in others):
        return None
    stamps = fastcsv.first_column_times(f, exact_fields=True)
    if stamps is None:
        return None
    values, filled = np.empty((len(stamps), len(others))), 0
    f.seek(0)
    reader = pd.read_csv(
        f, usecols=others, dtype="float64", keep_default_na=False, na_values=[""], chunksize=READ_CHUNK
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


def _read_fast(f: BinaryIO, path: Path, wanted: list[str], numeric: list[str], timestamp: str | None) -> pd.DataFrame:
    """The common case in one pass of the C parser: value columns straight to float64.

    Read in chunks whose timestamps are parsed at once, so the text of at most one chunk is
    alive at a time (as Python strings, one object a cell, it is many times the size of the
    parsed times; benchmarks/perf.py, figure 3, measures the peak memory).
    """
    dtypes = {c: ("float64" if c in numeric else str) for c in wanted}
    f.seek(0)
    reader = pd.read_csv(f, usecols=wanted, dtype=dtypes, keep_default_na=False, na_values=[""], chunksize=READ_CHUNK)
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
            f"{path}: column {shown(timestamp)} mixes time zones or UTC offsets (e.g. daylight saving, or some times "
            "without an offset) — write every time in UTC or with one fixed offset"
        )
    return frame


def numeric_values(
    frame: pd.DataFrame, columns: list[str], lines: Lines, path: Path | str, row: str = "line"
) -> np.ndarray:
    """(rows, len(columns)) float64, empty cells NaN; a cell that is no number, or infinite, is a DataError.

    Messages name the cell by `row` and its number in `lines` (a CSV's file line; a Parquet or query row).
    """
    out = np.empty((len(frame), len(columns)))
    for j, col in enumerate(columns):
        text = frame[col]
        if text.dtype == np.float64:  # parsed by the fast path: nothing to report but infinities
            if len(columns) == 1:  # no copy: the frame's own column
                out = text.to_numpy()[:, None]
            else:
                out[:, j] = text.to_numpy()
            _check_finite(out[:, j], col, lines, path, row)
            continue
        nums = pd.to_numeric(text, errors="coerce")
        bad = nums.isna().to_numpy() & text.notna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: {row} {lines[first]}, column {shown(col)}: {shown(text.iloc[first])} is not a number — "
                "fix the value or leave the cell empty to treat it as missing"
            )
        out[:, j] = nums.to_numpy(dtype=np.float64, na_value=np.nan)
        _check_finite(out[:, j], col, lines, path, row)
    return out


def _check_finite(column: np.ndarray, col: str, lines: Lines, path: Path | str, row: str) -> None:
    if np.isinf(column).any():
        first = int(np.flatnonzero(np.isinf(column))[0])
        raise DataError(f"{path}: {row} {lines[first]}, column {shown(col)}: infinite value — replace it")


def parse_times(text: pd.Series, lines: Lines, path: Path | str, col: str, row: str = "line") -> pd.DatetimeIndex:
    """A column of time text as a DatetimeIndex; empty, numeric, unreadable or mixed-offset times are a DataError."""
    if text.isna().any():
        first = int(np.flatnonzero(text.isna().to_numpy())[0])
        raise DataError(
            f"{path}: {row} {lines[first]}: empty timestamp in column {shown(col)} — fill it or drop the row"
        )
    sample = text.iloc[:100]  # cheap test first: converting every string of a long file is slow
    if pd.to_numeric(sample, errors="coerce").notna().all() and pd.to_numeric(text, errors="coerce").notna().all():
        raise DataError(
            f"{path}: column {shown(col)} holds numbers, not times — write ISO times (2024-01-31 13:00) "
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
                f"{path}: column {shown(col)} mixes time zones or UTC offsets (e.g. daylight saving, or some times "
                "without an offset) — write every time in UTC or with one fixed offset"
            ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    first = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    raise DataError(
        f"{path}: {row} {lines[first]}: cannot parse {shown(text.iloc[first])} in column {shown(col)} as a time — "
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
