"""The numpy fast path for the time column: identical to pandas whenever it answers, None whenever unsure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmcast.data.fastcsv import first_column_times

# tmp_path is shared by a test's examples on purpose: each example overwrites the same file.
EXAMPLES = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
FORMS = ["%Y-%m-%d", "%Y-%m-%d{sep}%H:%M", "%Y-%m-%d{sep}%H:%M:%S"]


def reference(path: Path) -> np.ndarray:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.to_datetime(frame[frame.columns[0]]).to_numpy()


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "series.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def assert_same_as_pandas(path: Path, **kwargs) -> np.ndarray:
    got = first_column_times(path, **kwargs)
    assert got is not None
    expected = reference(path)
    assert got.dtype == expected.dtype == np.dtype("datetime64[us]")
    np.testing.assert_array_equal(got, expected)
    return got


stamps = st.one_of(
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 12, 31, 23, 59, 59)),
    st.builds(
        dt.datetime,
        st.sampled_from([1904, 1996, 2000, 2024, 2096]),
        st.just(2),
        st.just(29),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
    ),
)
cells = st.text(alphabet="0123456789.-eE abcxyz", max_size=8)


@EXAMPLES
@given(
    times=st.lists(stamps, min_size=1, max_size=40),
    form=st.sampled_from(FORMS),
    sep=st.sampled_from([" ", "T"]),
    n_values=st.integers(1, 3),
    data=st.data(),
    newline=st.sampled_from(["\n", "\r\n"]),
    final_newline=st.booleans(),
    trailing_blank=st.integers(0, 2),
    chunk_bytes=st.sampled_from([1, 7, 64, 1 << 24]),
)
@pytest.mark.slow
def test_valid_files_match_pandas(
    tmp_path, times, form, sep, n_values, data, newline, final_newline, trailing_blank, chunk_bytes
):
    fmt = form.format(sep=sep)
    rows = [
        ",".join([t.strftime(fmt), *data.draw(st.lists(cells, min_size=n_values, max_size=n_values))]) for t in times
    ]
    header = ",".join(["timestamp"] + [f"v{i}" for i in range(n_values)])
    text = newline.join([header, *rows]) + (newline * (1 + trailing_blank) if final_newline else "")
    assert_same_as_pandas(write(tmp_path, text), chunk_bytes=chunk_bytes)


@EXAMPLES
@given(
    times=st.lists(stamps, min_size=1, max_size=8),
    form=st.sampled_from(FORMS),
    position=st.integers(0, 10_000),
    junk=st.sampled_from(list(b'\n\r", :-T+Z.0159a\x00\xff')),
    action=st.sampled_from(["replace", "insert", "delete"]),
)
def test_damaged_files_are_none_or_match_pandas(tmp_path, times, form, position, junk, action):
    text = "timestamp,y\n" + "".join(f"{t.strftime(form.format(sep=' '))},1\n" for t in times)
    raw = bytearray(text.encode())
    at = position % len(raw)
    if action == "replace":
        raw[at] = junk
    elif action == "insert":
        raw.insert(at, junk)
    else:
        del raw[at]
    path = write(tmp_path, bytes(raw))
    got = first_column_times(path)
    if got is not None:
        np.testing.assert_array_equal(got, reference(path))


@pytest.mark.parametrize(
    "body",
    [
        "t,y\n2024-13-01,1\n",  # month 13
        "t,y\n2024-00-01,1\n",  # month 0
        "t,y\n2024-02-30,1\n",  # Feb 30
        "t,y\n1900-02-29,1\n",  # 1900 is not a leap year
        "t,y\n2024-04-31,1\n",  # April has 30 days
        "t,y\n2024-01-00,1\n",  # day 0
        "t,y\n2024-01-01 24:00,1\n",  # hour 24
        "t,y\n2024-01-01 23:60,1\n",  # minute 60
        "t,y\n2024-01-01 23:59:60,1\n",  # leap second
        't,y\n"2024-01-01",1\n',  # quoted time
        't,y\n2024-01-01,"1"\n',  # quotes anywhere else
        '"t",y\n2024-01-01,1\n',  # quoted header
        "t,y\n2024-01-01 00:00+01:00,1\n",  # offset
        "t,y\n2024-01-01T00:00:00Z,1\n",  # Z
        "t,y\n2024-01-01 00:00:00.5,1\n",  # fractional seconds
        "t,y\n2024-01-01 00:00,1\n2024-01-01 00:00:00,2\n",  # mixed forms
        "t,y\n2024-01-01,1\n2024-01-01 00:00,2\n",  # mixed forms, date first
        "t,y\n2024-01-01 00:00,1\n2024-01-01T00:00,2\n",  # mixed separators
        "t,y\n2024-01-01,1\n\n2024-01-02,2\n",  # blank line in the middle
        "t,y\r\n2024-01-01,1\r\n\r\n2024-01-02,2\r\n",  # blank CRLF line in the middle
        "t\n2024-01-01\n2024-01-02\n",  # single column
        "t,y\n",  # header only
        "t,y",  # header only, no newline
        "",  # empty file
        "\nt,y\n2024-01-01,1\n",  # pandas would take the blank first line as no header at all
        "t,y\n2024-01-01 ,1\n",  # space after the time
        "t,y\n 2024-01-01,1\n",  # space before the time
        "t,y\n2024-1-01,1\n",  # not zero padded
        "t,y\n2024/01/01,1\n",  # other separators
        "t,y\n2024-01-01x00:00,1\n",  # unknown date/time separator
        "t,y\n20a4-01-01,1\n",  # non-digit
        "t,y\n2024-01-01,1,2\n",  # more fields than the header: pandas uses the first column as the index
        "t,y\n2024-01-01,1\r2024-01-02,2\n",  # bare CR: pandas splits the line there
        b"t,y\n2024-01-01,\xff\n",  # not UTF-8: pandas raises
        b"t\xff,y\n2024-01-01,1\n",  # not UTF-8 in the header
    ],
)
def test_unsupported_or_invalid_files_give_none(tmp_path, body):
    assert first_column_times(write(tmp_path, body)) is None


@pytest.mark.parametrize(
    "body",
    [
        "t,y\r\n2024-01-01 10:00,1\r\n2024-02-29 23:59,2\r\n",  # CRLF
        "\ufefft,y\n2024-01-01T10:00:05,1\n",  # UTF-8 BOM
        "t,y\n2024-01-01,1\n2024-01-02,2\n\n\n",  # trailing blank lines
        "t,y\r\n2024-01-01,1\r\n\r\n",  # trailing blank CRLF line
        "t,y\n2024-01-01 00:00:00,1\n2024-01-01 00:00:01,2",  # no final newline
        "t,y\n2024-01-01,1\r",  # final bare CR ends the last line for pandas too
        "t,y,z\n2024-01-01,1\n2024-01-02,2,3\n",  # fewer fields than the header is fine for pandas
        "t,y\n1969-12-31,1\n0001-01-01,2\n0000-02-29,3\n9999-12-31,4\n",  # the whole 4-digit year range
        "t,y\n2024-01-01,\n",  # empty value
        "t,y\n2024-01-01,caf\u00e9\n",  # UTF-8 text in another column
    ],
)
def test_accepted_variants_match_pandas(tmp_path, body):
    assert_same_as_pandas(write(tmp_path, body))


def test_lines_straddling_chunk_boundaries_match_the_default(tmp_path):
    times = pd.date_range("1999-12-31 23:00", periods=500, freq="37min").strftime("%Y-%m-%dT%H:%M:%S")
    path = write(tmp_path, "timestamp,y,z\n" + "".join(f"{t},{i * 0.5},{i}\n" for i, t in enumerate(times)))
    whole = assert_same_as_pandas(path)
    np.testing.assert_array_equal(first_column_times(path, chunk_bytes=64), whole)
    np.testing.assert_array_equal(first_column_times(path, chunk_bytes=5), whole)  # lines longer than a chunk


def test_date_only_and_minute_forms(tmp_path):
    got = assert_same_as_pandas(write(tmp_path, "day,y\n2024-03-01,1\n2023-03-01,2\n"))
    assert got.tolist() == [dt.datetime(2024, 3, 1), dt.datetime(2023, 3, 1)]
    got = assert_same_as_pandas(write(tmp_path, "t,y\n1970-01-01 00:01,1\n"))
    assert got.view(np.int64).tolist() == [60_000_000]
