"""Fast byte-level passes over a CSV: the time column of a plain ``timestamp,value`` file, and fields per record.

``pandas.read_csv`` followed by ``pd.to_datetime`` on ten million timestamps takes seconds and builds hundreds of
megabytes of Python strings. The usual file holds fixed-width naive ISO times in the first column, which can be
parsed straight from the raw bytes with vectorised numpy. Anything unusual returns ``None`` so the caller falls back
to pandas; the fast path must never disagree with
``pd.to_datetime(pd.read_csv(path, dtype=str, keep_default_na=False)[first_col])``.

``ragged_record`` finds a record with more or fewer fields than the header, which pandas would silently cut or
pad, in one vectorised pass over the bytes (quotes followed by parity).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_NL, _CR, _COMMA = 10, 13, 44
_US_PER_DAY = 86_400_000_000
# Days since 1970-01-01 of the first day of month ``year * 12 + month - 1`` for years 0000-9999, and each month's
# length (leap years included): table lookups replace slow datetime64 casts and make invalid days easy to spot.
_MONTH_START = (
    np.arange(-1970 * 12, (10_000 - 1970) * 12 + 1).astype("datetime64[M]").astype("datetime64[D]").view(np.int64)
)
_MONTH_DAYS = np.diff(_MONTH_START)


def _is_utf8(data: bytes | np.ndarray) -> bool:
    """pandas decodes the whole file as UTF-8 and raises on bad bytes; the fast path must not quietly succeed then."""
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _template(first_line: bytes) -> np.ndarray | None:
    """The expected bytes of the first field plus its comma, '0' standing for any digit; None if no form fits."""
    for width in (10, 16, 19):
        if first_line[width : width + 1] == b",":
            sep = first_line[10:11] if width > 10 else b""
            if width > 10 and sep not in (b" ", b"T"):
                return None
            return np.frombuffer(b"0000-00-00" + sep + b"00:00:00"[: max(width - 11, 0)] + b",", np.uint8)
    return None


def _parse(rows: np.ndarray, tmpl: np.ndarray, out: np.ndarray) -> bool:
    """Write microseconds since the epoch for each row of field bytes into ``out``; False if any is not a valid time."""
    digit = tmpl == ord("0")
    if (rows[:, ~digit] != tmpl[~digit]).any():
        return False
    digits = rows[:, digit] - ord("0")
    if digits.max() > 9:  # uint8 wraps bytes below '0' to >= 208
        return False
    # Century, year, month, day, hour, minute, second, as far as the field's width goes; uint8 holds every two-digit
    # value and is the cheapest to compute with.
    pairs = digits[:, 0::2] * 10 + digits[:, 1::2]
    century, year, month, day, hour, minute, second = [*pairs.T] + [0] * (7 - pairs.shape[1])
    if not np.all((month >= 1) & (month <= 12) & (hour < 24) & (minute < 60) & (second < 60)):
        return False
    ym = (century * np.int32(100) + year) * 12 + month - 1
    if not np.all((day >= 1) & (day <= _MONTH_DAYS[ym])):
        return False
    np.multiply(_MONTH_START[ym] + day - 1, _US_PER_DAY, out=out)
    out += ((hour * np.int64(60) + minute) * 60 + second) * 1_000_000
    return True


def _blocks(f: BinaryIO, chunk_bytes: int) -> Iterator[tuple[bytearray, np.ndarray, np.ndarray]]:
    """Yield ``(raw, seg, ends)``: ``seg`` views the whole lines at the start of the reused buffer ``raw`` and ``ends``
    holds their newline offsets. The incomplete last line is carried over to the next read."""
    raw, carry = bytearray(max(chunk_bytes, 1)), 0
    while True:
        if carry == len(raw):  # a single line longer than the buffer
            raw = raw + bytearray(len(raw))
        got = f.readinto(memoryview(raw)[carry:])
        end = carry + got
        buf = np.frombuffer(raw, np.uint8, count=end)
        ends = np.flatnonzero(buf == _NL)
        if got == 0:
            if end:  # the last line has no newline: pretend it has one right after the data
                yield raw, buf, np.array([end])
            return
        if ends.size == 0:
            carry = end
            continue
        stop = int(ends[-1]) + 1
        yield raw, buf[:stop], ends
        raw[: end - stop] = raw[stop:end]
        carry = end - stop


def first_column_times(
    path: str | Path | BinaryIO, chunk_bytes: int = 1 << 24, *, exact_fields: bool = False
) -> np.ndarray | None:
    """Parse the first CSV column as ``datetime64[us]``, or return None when the file is not the simple common case.

    Reads ``chunk_bytes`` at a time so memory stays at the output plus O(chunk), whatever the file size. ``path``
    may be an open binary file, read from its start. With ``exact_fields``, a line with fewer fields than the header
    is not the common case either: a result then proves that every line has exactly the header's fields.
    """
    if not isinstance(path, str | Path):
        return _times_of(path, chunk_bytes, exact_fields)
    with Path(path).open("rb") as f:
        return _times_of(f, chunk_bytes, exact_fields)


def _times_of(f: BinaryIO, chunk_bytes: int, exact_fields: bool) -> np.ndarray | None:
    f.seek(0)
    header = f.readline().removeprefix(b"\xef\xbb\xbf").removesuffix(b"\n").removesuffix(b"\r")
    # pandas skips blank leading lines and splits on bare CR, so either would shift which line is the header.
    if not header.strip() or b'"' in header or b"\r" in header or not _is_utf8(header):
        return None
    n_commas = header.count(b",")
    n_out, out, tmpl, ended = 0, None, None, False
    for raw, seg, ends in _blocks(f, chunk_bytes):
        starts = np.concatenate(([0], ends[:-1] + 1))
        # raw.find is memchr, several times faster than a numpy comparison for these usually absent bytes.
        has_cr = False
        if raw.find(b"\r", 0, seg.size) >= 0:
            # A CR may only end a line; pandas would split the line at any other.
            has_cr = seg[np.maximum(ends - 1, 0)] == _CR
            if np.count_nonzero(seg == _CR) != np.count_nonzero(has_cr):
                return None
        if raw.find(b'"', 0, seg.size) >= 0 or (seg.max() >= 0x80 and not _is_utf8(seg)):
            return None
        lens = ends - starts - has_cr
        # Blank lines may only end the file, where pandas ignores them.
        blank = lens == 0
        keep = int(np.argmax(blank)) if blank.any() else blank.size
        if (ended and keep) or not blank[keep:].all():
            return None
        ended |= keep < blank.size
        if not keep:
            continue
        starts, ends, lens = starts[:keep], ends[:keep], lens[:keep]
        # More fields than the header makes pandas use the first column as the index, or raise; fewer is harmless to
        # pandas (but not with exact_fields).
        # Every kept line has a comma right after its time (checked below), so one comma per line proves the usual
        # two-column case cheaply; otherwise count per line.
        if n_commas != 1 or np.count_nonzero(seg == _COMMA) != keep:
            commas = np.flatnonzero(seg == _COMMA)
            per_line = np.diff(np.searchsorted(commas, np.concatenate(([0], ends))))
            if ((per_line != n_commas) if exact_fields else (per_line > n_commas)).any():
                return None
        if tmpl is None:
            tmpl = _template(seg[: ends[0]].tobytes())
            if tmpl is None:
                return None
            # Every line but the last holds at least the field, its comma and a newline.
            out = np.empty((os.fstat(f.fileno()).st_size - len(header)) // (tmpl.size + 1) + 1, np.int64)
        if (lens < tmpl.size).any() or n_out + keep > out.size:  # the latter only if the file grew meanwhile
            return None
        if not _parse(sliding_window_view(seg, tmpl.size)[starts], tmpl, out[n_out : n_out + keep]):
            return None
        n_out += keep
    return out[:n_out].view("datetime64[us]") if n_out else None


# ---------------------------------------------------------------------------- fields per record

_QUOTE, _BOM = 34, b"\xef\xbb\xbf"
RECORD_TEXT = 4096  # bytes of a ragged record kept for the message's hints


class Ragged(NamedTuple):
    """A record whose number of fields differs from the header's."""

    line: int  # 1-based line of the file where it starts, as an editor counts lines
    fields: int
    text: str  # the record (at most RECORD_TEXT bytes of it)


def ragged_record(f: BinaryIO, fields: int, chunk_bytes: int = 1 << 24) -> Ragged | None:
    """The first data record whose field count is not ``fields`` (the header's), split as pandas splits records.

    ``pandas.read_csv(usecols=...)`` drops a row's extra fields and fills missing ones without a word, so a
    decimal comma (``…,10,038``) would silently become another number. This pass counts the commas of every line
    from the raw bytes, a block at a time: commas and line ends inside double quotes do not count, blank lines
    are skipped (as pandas skips them), CR, LF and CRLF all end lines. A file whose quotes it cannot follow
    vectorised (a quote inside an unquoted field, which pandas keeps as text) is counted by Python's csv module.
    None when every record fits, or when a quote is left open at the end (pandas reports that itself).
    """
    scan = _FieldScan(fields)
    f.seek(0)
    for raw, seg, ends in _blocks(f, chunk_bytes):
        found = scan.block(raw, seg, ends)
        if found is _UNSURE:
            return _ragged_by_csv(f, fields)
        if found is not None:
            return found  # type: ignore[return-value]
    return None


_UNSURE = object()


class _FieldScan:
    """Field counting across blocks: a quoted field may hold line ends, so a record may span blocks."""

    def __init__(self, fields: int) -> None:
        self.commas = fields - 1  # a record's commas outside quotes
        self.line = 1  # the file line the next block starts on
        self.in_quote = False  # the next block starts inside a quoted field
        self.open_commas = 0  # commas of a record that began in an earlier block and goes on
        self.open_line = 0  # the line that record began on (0: none is open)
        self.header_seen = False
        self.first = True

    def block(self, raw: bytearray, seg: np.ndarray, ends: np.ndarray) -> Ragged | object | None:
        n, size = self.commas, seg.size
        bare = None
        if raw.find(b"\r", 0, size) >= 0:  # a CR not followed by LF ends a line too
            crs = np.flatnonzero(seg == _CR)
            bare = crs[(crs + 1 >= size) | (seg[np.minimum(crs + 1, size - 1)] != _NL)]
        quoted = self.in_quote or raw.find(b'"', 0, size) >= 0
        if self.header_seen and not quoted and (bare is None or not bare.size):
            commas = np.flatnonzero(seg == _COMMA)
            if commas.size == n * ends.size and (
                n == 0 or ((commas[n - 1 :: n] < ends).all() and (commas[n::n] > ends[:-1]).all())
            ):
                self.line += ends.size
                return None  # the usual block: every line holds exactly the header's fields
        breaks = np.union1d(ends, bare) if bare is not None and bare.size else ends  # every line end
        found = self._general(seg, breaks, np.flatnonzero(seg == _QUOTE) if quoted else np.empty(0, np.int64))
        self.first = False
        self.line += breaks.size
        return found

    def _general(self, seg: np.ndarray, breaks: np.ndarray, quotes: np.ndarray) -> Ragged | object | None:
        """Any block: quotes, bare CRs, blank lines, the header, a record going on into the next block."""
        if not _quotes_open_fields(seg, quotes, self.in_quote, self.first):
            return _UNSURE
        parity = int(self.in_quote)
        stops = breaks[(np.searchsorted(quotes, breaks) + parity) % 2 == 0]  # the line ends outside quotes
        commas = np.flatnonzero(seg == _COMMA)
        commas = commas[(np.searchsorted(quotes, commas) + parity) % 2 == 0]
        starts = np.concatenate(([0], stops[:-1] + 1))[: stops.size]
        counts = np.diff(np.searchsorted(commas, np.concatenate(([-1], stops))))
        lines = self.line + np.searchsorted(breaks, starts)
        continued = bool(self.open_line) and stops.size > 0  # the first record began in an earlier block
        if continued:
            counts[0] += self.open_commas
            lines[0] = self.open_line

        def blank(i: int) -> bool:  # pandas skips lines of nothing but spaces and tabs
            text = seg[starts[i] : stops[i]]
            return counts[i] == 0 and not (i == 0 and continued) and not text.tobytes().strip(b" \t\r")

        after = 0
        while not self.header_seen and after < stops.size:  # the header: the first line that is not blank
            if not blank(after):
                self.header_seen = True
                if counts[after] != self.commas:
                    return _UNSURE  # pandas counted its fields otherwise
            after += 1
        for i in np.flatnonzero(counts[after:] != self.commas) + after:
            if not blank(i):
                record = seg[starts[i] : min(stops[i], starts[i] + RECORD_TEXT)].tobytes()
                record = record.removeprefix(_BOM) if self.first and i == 0 else record
                return Ragged(int(lines[i]), int(counts[i]) + 1, record.decode("utf-8", "replace").rstrip("\r"))
        # What follows the last record's end goes on into the next block (a line end inside quotes ended it).
        tail = int(stops[-1]) + 1 if stops.size else 0
        if stops.size or not self.open_line:
            self.open_line = self.line + int(np.searchsorted(breaks, tail))
        self.open_commas = int(np.count_nonzero(commas >= tail)) + (self.open_commas if not stops.size else 0)
        self.in_quote = bool((quotes.size + parity) % 2)
        if not self.in_quote:
            self.open_line = self.open_commas = 0
        return None


def _quotes_open_fields(seg: np.ndarray, quotes: np.ndarray, in_quote: bool, first: bool) -> bool:
    """Whether every quote that opens a quoted region starts a field, as pandas reads quotes.

    Counting by quote parity matches pandas only then: pandas keeps a quote inside an unquoted field as text.
    A quote right after a closing one is the escaped quote of a doubled pair ("" inside a quoted field).
    """
    k = np.arange(quotes.size)
    opens = quotes[(k + in_quote) % 2 == 0]
    before = seg[np.maximum(opens - 1, 0)]
    ok = (opens == 0) | (before == _COMMA) | (before == _NL) | (before == _CR)
    if first:
        ok |= (opens == len(_BOM)) & (seg[: len(_BOM)].tobytes() == _BOM)
    escaped = np.isin(opens - 1, quotes)
    return bool((ok | escaped).all())


def _ragged_by_csv(f: BinaryIO, fields: int) -> Ragged | None:
    """`ragged_record` by Python's csv module, whose quoting rules are pandas' (slower: for unusual quoting)."""
    f.seek(0)
    text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="replace", newline="")
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # a huge cell is pandas' to refuse, not a reason to skip the count
    try:
        reader, header_seen, line = csv.reader(text, strict=False), False, 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or (len(record) == 1 and record[0] and not record[0].strip(" \t")):
                continue  # a blank line (`""` is a quoted empty field, not blank)
            if not header_seen:
                header_seen = True
                continue
            if len(record) != fields:
                return Ragged(start, len(record), ",".join(record)[:RECORD_TEXT])
        return None
    except csv.Error:
        return None  # pandas reports what it makes of the file
    finally:
        csv.field_size_limit(limit)
        text.detach()
