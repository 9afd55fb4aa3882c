"""Fast path for parsing the time column of a plain ``timestamp,value`` CSV.

``pandas.read_csv`` followed by ``pd.to_datetime`` on ten million timestamps takes seconds and builds hundreds of
megabytes of Python strings. The usual file holds fixed-width naive ISO times in the first column, which can be
parsed straight from the raw bytes with vectorised numpy. Anything unusual returns ``None`` so the caller falls back
to pandas; the fast path must never disagree with
``pd.to_datetime(pd.read_csv(path, dtype=str, keep_default_na=False)[first_col])``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


def first_column_times(path: str | Path, chunk_bytes: int = 1 << 24) -> np.ndarray | None:
    """Parse the first CSV column as ``datetime64[us]``, or return None when the file is not the simple common case.

    Reads ``chunk_bytes`` at a time so memory stays at the output plus O(chunk), whatever the file size.
    """
    path = Path(path)
    with path.open("rb") as f:
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
            # More fields than the header makes pandas use the first column as the index, or raise; fewer is harmless.
            # Every kept line has a comma right after its time (checked below), so one comma per line proves the usual
            # two-column case cheaply; otherwise count per line.
            if n_commas != 1 or np.count_nonzero(seg == _COMMA) != keep:
                commas = np.flatnonzero(seg == _COMMA)
                if (np.diff(np.searchsorted(commas, np.concatenate(([0], ends)))) > n_commas).any():
                    return None
            if tmpl is None:
                tmpl = _template(seg[: ends[0]].tobytes())
                if tmpl is None:
                    return None
                # Every line but the last holds at least the field, its comma and a newline.
                out = np.empty((path.stat().st_size - len(header)) // (tmpl.size + 1) + 1, np.int64)
            if (lens < tmpl.size).any() or n_out + keep > out.size:  # the latter only if the file grew meanwhile
                return None
            if not _parse(sliding_window_view(seg, tmpl.size)[starts], tmpl, out[n_out : n_out + keep]):
                return None
            n_out += keep
    return out[:n_out].view("datetime64[us]") if n_out else None
