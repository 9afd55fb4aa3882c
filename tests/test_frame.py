from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmcast.data import readers
from lstmcast.data.calendar import future_labels, row_at, season_length
from lstmcast.data.frame import load_series
from lstmcast.data.grid import Grid
from lstmcast.errors import DataError


def csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def load(path: Path, **kw):
    args = {"timestamp": "t", "target": ["y"], "features": []}
    args.update(kw)
    return load_series(path, **args)


def error_of(path: Path, **kw) -> str:
    with pytest.raises(DataError) as exc:
        load(path, **kw)
    return str(exc.value)


HOURLY = "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 02:00,3\n2024-01-01 03:00,4\n"


def test_gaps_are_filled_by_interpolation_and_counted(tmp_path):
    path = csv(
        tmp_path,
        "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 04:00,5\n2024-01-01 05:00,\n2024-01-01 06:00,7\n",
    )
    series = load(path, max_filled=0.5)  # 3 of these 7 rows are filled; the default bound is a fifth
    assert series.freq == "h"
    assert series.values[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert (series.filled_rows, series.filled_cells) == (2, 1)


def test_ffill_repeats_the_last_value(tmp_path):
    path = csv(tmp_path, "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 03:00,5\n2024-01-01 04:00,6\n")
    assert load(path, missing="ffill").values[:, 0].tolist() == [1, 2, 2, 5, 6]


def test_missing_error_names_the_gap(tmp_path):
    path = csv(tmp_path, "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 03:00,5\n2024-01-01 04:00,6\n")
    assert "2024-01-01 02:00:00" in error_of(path, missing="error")


def test_rows_are_sorted_by_time(tmp_path):
    path = csv(tmp_path, "t,y\n2024-01-01 02:00,3\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 03:00,4\n")
    series = load(path)
    assert series.values[:, 0].tolist() == [1, 2, 3, 4]
    assert series.index[0] == pd.Timestamp("2024-01-01 00:00")


def test_duplicate_timestamp_names_the_first_duplicate_and_lines(tmp_path):
    path = csv(tmp_path, HOURLY + "2024-01-01 02:00,9\n")
    message = error_of(path)
    assert "duplicate timestamp 2024-01-01 02:00:00" in message and "lines 4 and 6" in message


def test_non_numeric_value_names_column_and_line(tmp_path):
    path = csv(tmp_path, "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,oops\n2024-01-01 02:00,3\n")
    message = error_of(path)
    assert "line 3" in message and "'y'" in message and "'oops'" in message


def test_missing_column_lists_the_columns_found(tmp_path):
    message = error_of(csv(tmp_path, HOURLY), target=["load"])
    assert "'load' not found" in message and "'t', 'y'" in message


def test_semicolon_file_gets_a_delimiter_hint(tmp_path):
    assert "comma-separated" in error_of(csv(tmp_path, HOURLY.replace(",", ";")))


def test_unparseable_timestamp_names_the_line(tmp_path):
    message = error_of(csv(tmp_path, HOURLY + "yesterday,5\n"))
    assert "line 6" in message and "'yesterday'" in message


def test_mixed_time_zones_are_refused(tmp_path):
    text = "t,y\n2024-01-01 00:00+00:00,1\n2024-01-01 01:00+01:00,2\n2024-01-01 02:00+00:00,3\n"
    assert "time zones" in error_of(csv(tmp_path, text))


def test_empty_and_header_only_files(tmp_path):
    assert "is empty" in error_of(csv(tmp_path, ""))
    assert "no data rows" in error_of(csv(tmp_path, "t,y\n"))


def test_irregular_times_without_freq_are_refused(tmp_path):
    text = "t,y\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 02:00,3\n2024-01-01 02:37,4\n"
    assert "irregular" in error_of(csv(tmp_path, text))


def test_no_timestamp_column_numbers_the_rows(tmp_path):
    series = load(csv(tmp_path, "x,y\n0,1\n0,2\n0,\n0,4\n"), timestamp=None, max_filled=0.5)  # 1 of 4 filled
    assert series.index is None and series.freq is None
    assert series.values[:, 0].tolist() == [1, 2, 3, 4]
    assert list(future_labels(series, 2)) == [series.rows, series.rows + 1]


def test_start_and_end_select_rows_inclusively(tmp_path):
    series = load(csv(tmp_path, HOURLY), start="2024-01-01 01:00", end="2024-01-01 02:00")
    assert series.values[:, 0].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("h", ["2024-03-01 03:00", "2024-03-01 04:00", "2024-03-01 05:00"]),
        ("D", ["2024-03-04", "2024-03-05", "2024-03-06"]),
        ("MS", ["2024-06-01", "2024-07-01", "2024-08-01"]),
    ],
)
def test_forecast_timestamps_continue_the_series_at_its_frequency(tmp_path, freq, expected):
    stamps = pd.date_range("2024-03-01", periods=3, freq=freq)
    text = "t,y\n" + "".join(f"{s},{i}\n" for i, s in enumerate(stamps))
    series = load(csv(tmp_path, text))
    assert series.freq == freq
    assert list(future_labels(series, 3)) == list(pd.DatetimeIndex(expected))


def test_season_length_follows_the_frequency():
    assert [season_length(f) for f in ("h", "15min", "D", "W-SUN", "MS", "QS-OCT", None)] == [24, 96, 7, 52, 12, 4, 1]


def test_values_are_float64_targets_first(tmp_path):
    series = load(csv(tmp_path, "t,x,y\n2024-01-01,5,1\n2024-01-02,6,2\n2024-01-03,7,3\n"), features=["x"])
    assert series.columns == ["y", "x"] and series.values.dtype == np.float64
    assert series.values[0].tolist() == [1, 5]


def test_a_file_read_in_chunks_loads_as_one_and_names_the_right_line(tmp_path, monkeypatch):
    from lstmcast.data import readers

    stamps = pd.date_range("2024-01-01", periods=50, freq="h").strftime("%Y-%m-%d %H:%M")
    text = "t,y\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps))
    whole = load(csv(tmp_path, text))
    monkeypatch.setattr(readers, "READ_CHUNK", 7)  # 8 chunks
    chunked = load(csv(tmp_path, text))
    assert np.array_equal(chunked.values, whole.values) and chunked.times().equals(whole.times())
    lines = text.splitlines()
    lines[40] = "2024-01-02 15:xx,39"  # line 41 of the file, in the sixth chunk
    assert "line 41" in error_of(csv(tmp_path, "\n".join(lines) + "\n"))


def test_offsets_that_change_between_chunks_are_one_clear_error(tmp_path, monkeypatch):
    from lstmcast.data import readers

    monkeypatch.setattr(readers, "READ_CHUNK", 2)
    text = (
        "t,y\n2024-03-30 22:00+01:00,1\n2024-03-30 23:00+01:00,2\n2024-03-31 01:00+02:00,3\n2024-03-31 02:00+02:00,4\n"
    )
    assert "mixes time zones or UTC offsets" in error_of(csv(tmp_path, text))


@pytest.mark.parametrize("tz", [None, "Asia/Kolkata"])
def test_a_regular_series_stores_no_time_per_row_and_answers_like_its_index(tmp_path, tz):
    """Times on a fixed step become a Grid; every lookup gives what the full DatetimeIndex gives."""
    made = pd.date_range("2024-03-30 20:00", periods=50, freq="h", tz=tz)
    stamps = made.strftime("%Y-%m-%dT%H:%M:%S%z") if tz else made.strftime("%Y-%m-%d %H:%M:%S")
    full = pd.DatetimeIndex(pd.to_datetime(stamps), name="t")  # what the file holds, parsed the usual way
    path = tmp_path / "d.csv"
    pd.DataFrame({"t": stamps, "y": np.arange(50.0)}).to_csv(path, index=False)
    series = load(path)
    assert isinstance(series.index, Grid) and len(series.index) == 50
    assert series.times().equals(full)
    for key in (0, 17, -1, slice(None, None, 7), slice(45, None), np.array([3, 0, -2]), np.arange(50) % 3 == 0):
        got, want = series.index[key], full[key]
        assert got == want if isinstance(want, pd.Timestamp) else got.equals(want), key
    for when in ("2024-03-30 19:00", "2024-03-31 04:00", "2024-03-31 04:30", "2024-04-05"):
        assert row_at(series, when, "--start") == full.searchsorted(pd.Timestamp(when).tz_localize(full.tz)), when


def _outcome(path: Path, fast: bool):
    """What loading gives, with or without the fast ISO reader: (values, times, freq) or the error message."""
    from unittest import mock

    with mock.patch.object(readers, "_read_iso", readers._read_iso if fast else lambda *args: None):
        try:
            series = load(path)
        except DataError as exc:
            return str(exc)
    return series.values, series.times(), series.freq


stamp_formats = st.sampled_from(
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S+01:00"]
)
cell_values = st.one_of(
    st.sampled_from(["", "1", "-2.5", "1e3", "nan", "inf", "x", "NA", '"7"']), st.floats(-1e6, 1e6).map(str)
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=stamp_formats, steps=st.lists(st.sampled_from([1, 1, 1, 1, 2, 0, -1]), min_size=3, max_size=40), data=st.data()
)
def test_the_fast_iso_reader_gives_what_the_general_reader_gives(tmp_path_factory, fmt, steps, data):
    """Every file loads (or fails, with the same message) exactly as it would without the fast path."""
    unit = pd.Timedelta(days=1) if fmt == "%Y-%m-%d" else pd.Timedelta(hours=1)
    times = [pd.Timestamp("2024-02-27") + unit * int(k) for k in np.cumsum(steps)]  # with repeats and reversals
    values = [data.draw(cell_values) for _ in steps]
    path = tmp_path_factory.mktemp("fast") / "d.csv"
    path.write_text("t,y\n" + "".join(f"{t.strftime(fmt)},{v}\n" for t, v in zip(times, values, strict=True)))
    fast, general = _outcome(path, fast=True), _outcome(path, fast=False)
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
    else:
        assert np.array_equal(fast[0], general[0], equal_nan=True)
        assert fast[1].equals(general[1]) and fast[2] == general[2]
